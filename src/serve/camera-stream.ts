import { filter, type Observable, type Subscription, tap } from 'rxjs';
import type { EncodedFrame } from '../engine/answer-pipeline.js';
import type { Frame } from '../media/frame.js';
import type { SourceStatus } from '../media/source-status.js';
import { type ChangeGateOptions, changeGate } from './change-gate.js';
import { encodeLatest } from './encode-latest.js';
import { RollingWindow, type WindowFrame, type WindowLimits } from './rolling-window.js';

/** Where a camera's frames come from: sampled frames as they arrive, and how the source is doing. */
export interface CameraSource {
  frames(): Observable<Frame>;
  status(): SourceStatus;
  /** Ends the stream (stops ffmpeg); frames() completes. */
  stop(): void;
}

export interface CameraStatus {
  camera: string;
  source: SourceStatus;
  frames: {
    /** Sampled frames that reached the encoder stage. */
    sampled: number;
    encoded: number;
    /** Dropped because the encoder was busy with an earlier frame (backpressure). */
    dropped: number;
    /** Skipped by the change gate: nearly the same as the last kept frame. */
    unchanged: number;
  };
  window: { frames: number; span_s: number; bytes: number };
  /** The last encoder failure, if any (the stream goes on with the next frame). */
  lastError?: { message: string; at: string };
}

export interface CameraStreamOptions {
  window: WindowLimits;
  change?: ChangeGateOptions;
  /** Called for every dropped, skipped or failed frame and every window change, for logs and metrics. */
  onEvent?: (event: CameraEvent) => void;
}

export type CameraEvent =
  | { type: 'dropped'; camera: string; t: number }
  | { type: 'unchanged'; camera: string; t: number }
  | { type: 'encode-error'; camera: string; t: number; message: string }
  | { type: 'ended'; camera: string };

/**
 * One camera: its source's frames → the vision encoder, one frame at a time with at most one frame
 * waiting (older waiting frames are dropped and counted) → the change gate → the rolling window.
 * Queries read the window; they never wait for the encoder of this camera.
 */
export class CameraStream {
  readonly window: RollingWindow;
  private readonly counts = { sampled: 0, encoded: 0, dropped: 0, unchanged: 0 };
  private lastError?: { message: string; at: string };
  private subscription?: Subscription;
  private markEnded: () => void = () => undefined;
  /** Settles when the source has ended for good (a file that does not loop, or stop()). */
  readonly ended = new Promise<void>((resolve) => {
    this.markEnded = resolve;
  });

  constructor(
    readonly name: string,
    private readonly source: CameraSource,
    private readonly encode: (frame: Frame) => Promise<EncodedFrame>,
    private readonly options: CameraStreamOptions,
  ) {
    this.window = new RollingWindow(options.window);
  }

  start(): void {
    const emit = (event: CameraEvent) => this.options.onEvent?.(event);
    let stream = this.source.frames().pipe(
      tap(() => this.counts.sampled++),
      encodeLatest(
        (frame: Frame) => this.encodeOne(frame),
        (frame) => {
          this.counts.dropped++;
          emit({ type: 'dropped', camera: this.name, t: frame.timestampS });
        },
      ),
      filter((frame): frame is WindowFrame => frame !== undefined),
    );
    const change = this.options.change;
    if (change) {
      stream = stream.pipe(
        changeGate(change, (frame) => {
          this.counts.unchanged++;
          emit({ type: 'unchanged', camera: this.name, t: frame.timestampS });
        }),
      );
    }
    this.subscription = stream.subscribe({
      next: (frame) => this.window.add(frame),
      complete: () => {
        emit({ type: 'ended', camera: this.name });
        this.markEnded();
      },
      error: (err: unknown) => {
        this.lastError = { message: err instanceof Error ? err.message : String(err), at: new Date().toISOString() };
        emit({ type: 'ended', camera: this.name });
        this.markEnded();
      },
    });
  }

  stop(): void {
    this.source.stop();
    this.subscription?.unsubscribe();
    this.subscription = undefined;
    this.markEnded();
  }

  status(): CameraStatus {
    return {
      camera: this.name,
      source: this.source.status(),
      frames: { ...this.counts },
      window: {
        frames: this.window.size,
        span_s: Math.round(this.window.spanS * 1000) / 1000,
        bytes: this.window.bytes,
      },
      ...(this.lastError ? { lastError: this.lastError } : {}),
    };
  }

  /** An encoder failure on one frame is reported and skipped; the camera goes on. */
  private async encodeOne(frame: Frame): Promise<WindowFrame | undefined> {
    try {
      const encoded = await this.encode(frame);
      this.counts.encoded++;
      return { ...encoded, receivedAt: Date.now() };
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.lastError = { message, at: new Date().toISOString() };
      this.options.onEvent?.({ type: 'encode-error', camera: this.name, t: frame.timestampS, message });
      return undefined;
    }
  }
}
