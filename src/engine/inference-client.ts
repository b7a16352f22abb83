import { Worker } from 'node:worker_threads';
import type { GraphManifest } from '../onnx/convert.js';
import type { RuntimeOptions } from './ort-session.js';
import type { VisionInput } from './vision-input.js';
import type { VisualAnswer, VisualQuery } from './visual-query.js';
import type { VisionOutputs } from './vlm-runner.js';
import { deserializeError, type WorkerReply } from './worker-protocol.js';

interface Pending {
  resolve: (value: VisualAnswer | VisionOutputs) => void;
  reject: (e: Error) => void;
  onToken?: (token: number) => void;
}

/**
 * The main thread's handle on the inference worker. Queries run one at a time in the worker (they
 * share its sessions and cores); tokens stream back as they are generated.
 */
export class InferenceClient {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private tail: Promise<unknown> = Promise.resolve();

  private constructor(private readonly worker: Worker) {
    worker.on('message', (msg: WorkerReply) => this.onReply(msg));
    worker.on('error', (err) => this.failAll(err));
    worker.on('exit', (code) => this.failAll(new Error(`the inference worker exited (code ${code})`)));
  }

  /** `warmKernels`: create the pruning kernels' sessions now (a pruned first query then pays nothing for them). */
  static async start(
    dir: string,
    manifest: GraphManifest,
    runtime: RuntimeOptions,
    { warmKernels = false } = {},
  ): Promise<InferenceClient> {
    const worker = new Worker(new URL('./inference-worker.js', import.meta.url));
    const client = new InferenceClient(worker);
    await new Promise<void>((resolve, reject) => {
      const onMessage = (msg: WorkerReply) => {
        if (msg.type === 'opened') resolve();
        else if (msg.type === 'error') reject(deserializeError(msg.error));
        else return;
        worker.off('message', onMessage);
      };
      worker.on('message', onMessage);
      worker.once('error', reject);
      worker.postMessage({ type: 'open', dir, manifest, runtime, warmKernels });
    }).catch(async (err) => {
      await worker.terminate();
      throw err;
    });
    return client;
  }

  query(query: VisualQuery, onToken?: (token: number) => void): Promise<VisualAnswer> {
    // Posting copies the vision inputs, so the caller keeps its arrays; they are small next to the model.
    return this.request<VisualAnswer>((id) => this.worker.postMessage({ type: 'query', id, query }), onToken);
  }

  /** Runs the vision encoder alone on the units of `vision`. */
  encode(vision: VisionInput): Promise<VisionOutputs> {
    return this.request<VisionOutputs>((id) => this.worker.postMessage({ type: 'encode', id, vision }));
  }

  /** Requests run one at a time, in the order they were made. */
  private request<T extends VisualAnswer | VisionOutputs>(
    send: (id: number) => void,
    onToken?: (token: number) => void,
  ): Promise<T> {
    const run = () =>
      new Promise<T>((resolve, reject) => {
        const id = this.nextId++;
        this.pending.set(id, { resolve: (v) => resolve(v as T), reject, onToken });
        send(id);
      });
    const result = this.tail.then(run, run);
    this.tail = result.catch(() => undefined);
    return result;
  }

  /**
   * Lets the requests already made finish (at most `waitMs`), then ends the worker: terminating it while
   * ONNX Runtime is inside a run aborts the whole process (a native Napi::Error), e.g. a camera's frame still
   * in the vision encoder when the daemon stops.
   */
  async close(waitMs = 10_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.tail, new Promise((resolve) => (timer = setTimeout(resolve, waitMs)))]);
    clearTimeout(timer);
    this.worker.removeAllListeners('exit');
    await this.worker.terminate();
  }

  private onReply(msg: WorkerReply): void {
    if (msg.type === 'token') this.pending.get(msg.id)?.onToken?.(msg.token);
    else if (msg.type === 'answer') this.settle(msg.id)?.resolve(msg.answer);
    else if (msg.type === 'encoded') this.settle(msg.id)?.resolve(msg.vision);
    else if (msg.type === 'error' && msg.id !== undefined) this.settle(msg.id)?.reject(deserializeError(msg.error));
  }

  private settle(id: number): Pending | undefined {
    const p = this.pending.get(id);
    this.pending.delete(id);
    return p;
  }

  private failAll(err: Error): void {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}
