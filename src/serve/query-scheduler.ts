import { SieveError } from '../errors.js';

/** The queue is full: the caller should come back later (HTTP 503 with Retry-After; an MQTT error reply). */
export class BusyError extends SieveError {
  constructor(
    readonly depth: number,
    readonly retryAfterS: number,
  ) {
    super(`busy: ${depth} queries are waiting`, `try again in ${retryAfterS} s`);
  }
}

/** A query waited past its deadline before it could run; it was not run. */
export class DeadlineError extends SieveError {
  constructor(waitedMs: number, deadlineMs: number) {
    super(
      `the query waited ${(waitedMs / 1000).toFixed(1)} s in the queue, past its deadline of ${(deadlineMs / 1000).toFixed(1)} s`,
      'ask again, give a longer deadline, or ask less often',
    );
  }
}

/** The daemon is stopping: a queued query is answered with this instead of being run. */
export class ShuttingDownError extends SieveError {
  constructor() {
    super('shutting down: the query was not run', 'ask again when the daemon is back');
  }
}

export interface QueryTicket<T> {
  /** Who asked (a client id, an MQTT client, "alerts"): queries are taken in turn across these… */
  client: string;
  /** …and across cameras. */
  camera?: string;
  /** Milliseconds the query may wait before it starts (default: the scheduler's). */
  deadlineMs?: number;
  run: () => Promise<T>;
}

interface Waiting {
  run: () => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  enqueuedAt: number;
  deadlineMs: number;
}

export interface SchedulerStats {
  depth: number;
  running: number;
  accepted: number;
  completed: number;
  failed: number;
  busy: number;
  expired: number;
}

/**
 * The one queue every query surface (MQTT, HTTP, alerts, standing questions) goes through: bounded,
 * fair (one queue per camera and client, served in turn), one query at a time (they share the inference
 * worker), a deadline per query. Every accepted query settles exactly once: its answer, or an error
 * (its deadline passed; the daemon is shutting down). A full queue refuses at once with BusyError.
 */
export class QueryScheduler {
  private readonly queues = new Map<string, Waiting[]>();
  /** Keys in service order; the next query comes from the first key with one waiting. */
  private turn: string[] = [];
  private running = 0;
  private closed = false;
  private idle?: () => void;
  private readonly counts = { accepted: 0, completed: 0, failed: 0, busy: 0, expired: 0 };

  constructor(
    private readonly options: { capacity: number; deadlineMs: number; concurrency?: number } = {
      capacity: 32,
      deadlineMs: 60_000,
    },
  ) {}

  submit<T>(ticket: QueryTicket<T>): Promise<T> {
    if (this.closed) return Promise.reject(new ShuttingDownError());
    if (this.depth >= this.options.capacity) {
      this.counts.busy++;
      const retryAfterS = Math.max(1, Math.ceil(this.depth / 2));
      return Promise.reject(new BusyError(this.depth, retryAfterS));
    }
    this.counts.accepted++;
    const key = `${ticket.camera ?? ''}\u0000${ticket.client}`;
    return new Promise<T>((resolve, reject) => {
      let queue = this.queues.get(key);
      if (!queue) {
        queue = [];
        this.queues.set(key, queue);
        this.turn.push(key);
      }
      queue.push({
        run: ticket.run,
        resolve: (v) => resolve(v as T),
        reject,
        enqueuedAt: performance.now(),
        deadlineMs: ticket.deadlineMs ?? this.options.deadlineMs,
      });
      this.pump();
    });
  }

  /** Queries waiting (not the ones running). */
  get depth(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.length;
    return n;
  }

  stats(): SchedulerStats {
    return { depth: this.depth, running: this.running, ...this.counts };
  }

  /** Refuses new queries, answers the waiting ones with ShuttingDownError, and waits for the running ones. */
  async close(): Promise<void> {
    this.closed = true;
    for (const queue of this.queues.values()) for (const w of queue.splice(0)) w.reject(new ShuttingDownError());
    this.queues.clear();
    this.turn = [];
    if (this.running > 0) await new Promise<void>((resolve) => (this.idle = resolve));
  }

  private pump(): void {
    while (this.running < (this.options.concurrency ?? 1)) {
      const next = this.take();
      if (!next) return;
      const waitedMs = performance.now() - next.enqueuedAt;
      if (waitedMs > next.deadlineMs) {
        this.counts.expired++;
        next.reject(new DeadlineError(waitedMs, next.deadlineMs));
        continue;
      }
      this.running++;
      next
        .run()
        .then(
          (value) => {
            this.counts.completed++;
            next.resolve(value);
          },
          (err: unknown) => {
            this.counts.failed++;
            next.reject(err instanceof Error ? err : new Error(String(err)));
          },
        )
        .finally(() => {
          this.running--;
          if (this.running === 0) this.idle?.();
          if (!this.closed) this.pump();
        });
    }
  }

  /** The oldest query of the next key in turn; that key goes to the back of the line. */
  private take(): Waiting | undefined {
    for (let key = this.turn.shift(); key !== undefined; key = this.turn.shift()) {
      const queue = this.queues.get(key);
      const next = queue?.shift();
      if (queue && queue.length > 0) this.turn.push(key);
      else this.queues.delete(key);
      if (next) return next;
    }
    return undefined;
  }
}
