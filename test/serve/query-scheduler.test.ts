import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BusyError, DeadlineError, QueryScheduler, ShuttingDownError } from '../../src/serve/query-scheduler.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('query scheduler: one bounded, fair queue', () => {
  it('takes cameras and clients in turn, one query at a time', async () => {
    const s = new QueryScheduler({ capacity: 20, deadlineMs: 10_000 });
    const order: string[] = [];
    let running = 0;
    const job = (name: string) => async () => {
      running++;
      assert.equal(running, 1, 'one at a time');
      order.push(name);
      await sleep(5);
      running--;
      return name;
    };
    const done = [
      ...['a1', 'a2', 'a3'].map((n) => s.submit({ client: 'http', camera: 'door', run: job(n) })),
      ...['b1', 'b2'].map((n) => s.submit({ client: 'mqtt', camera: 'door', run: job(n) })),
      s.submit({ client: 'http', camera: 'yard', run: job('c1') }),
    ];
    assert.deepEqual(await Promise.all(done), ['a1', 'a2', 'a3', 'b1', 'b2', 'c1']);
    // a1 starts at once; then one query per camera and client in turn, however many one of them sent.
    assert.deepEqual(order, ['a1', 'a2', 'b1', 'c1', 'a3', 'b2']);
  });

  it('a full queue refuses at once (busy, with a retry time); every accepted query settles once', async () => {
    const s = new QueryScheduler({ capacity: 2, deadlineMs: 10_000 });
    let release: () => void = () => undefined;
    const first = s.submit({
      client: 'x',
      run: () =>
        new Promise<number>((resolve) => {
          release = () => resolve(1);
        }),
    });
    await sleep(1); // the first one is running, not waiting
    const queued = [s.submit({ client: 'x', run: async () => 2 }), s.submit({ client: 'y', run: async () => 3 })];
    await assert.rejects(s.submit({ client: 'z', run: async () => 4 }), (e: Error) => {
      assert.ok(e instanceof BusyError);
      assert.ok(e.retryAfterS >= 1);
      return true;
    });
    release();
    assert.deepEqual(await Promise.all([first, ...queued]), [1, 2, 3]);
    assert.deepEqual(s.stats(), { depth: 0, running: 0, accepted: 3, completed: 3, failed: 0, busy: 1, expired: 0 });
  });

  it('a query that waited past its deadline is answered with an error, not run', async () => {
    const s = new QueryScheduler({ capacity: 5, deadlineMs: 10_000 });
    let ran = false;
    const slow = s.submit({ client: 'a', run: () => sleep(60) });
    const late = s.submit({ client: 'b', deadlineMs: 20, run: async () => (ran = true) });
    await slow;
    await assert.rejects(
      late,
      (e: Error) => e instanceof DeadlineError && /past its deadline of 0\.0 s/.test(e.message),
    );
    assert.equal(ran, false);
  });

  it('close: the running query finishes, the waiting ones get "shutting down", new ones are refused', async () => {
    const s = new QueryScheduler({ capacity: 5, deadlineMs: 10_000 });
    const running = s.submit({
      client: 'a',
      run: async () => {
        await sleep(30);
        return 'done';
      },
    });
    const waiting = s.submit({ client: 'b', run: async () => 'never' });
    const closing = s.close();
    await assert.rejects(waiting, ShuttingDownError);
    assert.equal(await running, 'done');
    await closing;
    await assert.rejects(s.submit({ client: 'c', run: async () => 1 }), ShuttingDownError);
  });

  it('a failing query rejects with its own error and the queue goes on', async () => {
    const s = new QueryScheduler({ capacity: 5, deadlineMs: 10_000 });
    const bad = s.submit({ client: 'a', run: async () => Promise.reject(new Error('bad frame')) });
    const good = s.submit({ client: 'a', run: async () => 'ok' });
    await assert.rejects(bad, /bad frame/);
    assert.equal(await good, 'ok');
  });
});
