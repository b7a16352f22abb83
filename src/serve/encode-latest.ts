import { Observable, type OperatorFunction } from 'rxjs';

/**
 * Runs `work` on each value, one at a time, holding at most one value while it is busy: a newer
 * value replaces the one waiting, which is dropped and reported to `onDrop`. So a source faster than
 * the encoder never builds a queue; the stream stays current and its memory bounded.
 */
export function encodeLatest<T, R>(work: (value: T) => Promise<R>, onDrop: (value: T) => void): OperatorFunction<T, R> {
  return (source) =>
    new Observable<R>((subscriber) => {
      let busy = false;
      let waiting: { value: T } | undefined;
      let sourceDone = false;
      let closed = false;

      const run = (value: T): void => {
        busy = true;
        work(value).then(
          (result) => {
            if (closed) return;
            subscriber.next(result);
            next();
          },
          (err: unknown) => {
            if (!closed) subscriber.error(err);
          },
        );
      };
      const next = (): void => {
        busy = false;
        if (waiting) {
          const { value } = waiting;
          waiting = undefined;
          run(value);
        } else if (sourceDone) {
          subscriber.complete();
        }
      };

      const subscription = source.subscribe({
        next(value) {
          if (!busy) return run(value);
          if (waiting) onDrop(waiting.value);
          waiting = { value };
        },
        error: (err: unknown) => subscriber.error(err),
        complete() {
          sourceDone = true;
          if (!busy && !waiting) subscriber.complete();
        },
      });
      return () => {
        closed = true;
        waiting = undefined;
        subscription.unsubscribe();
      };
    });
}
