import type { Daemon, WindowAnswer } from './daemon.js';
import type { AlertConfig } from './pipeline-config.js';
import { BusyError, DeadlineError, ShuttingDownError } from './query-scheduler.js';

/**
 * An alert's state: the model's answer to its yes/no prompt, read as yes or no. Any other answer is
 * `unknown` (the raw answer goes with it), and changes the state like yes and no do.
 */
export type AlertState = 'yes' | 'no' | 'unknown';

/** An alert's state after an evaluation, with the answer it comes from. */
export interface AlertStatus {
  camera: string;
  alert: string;
  prompt: string;
  state: AlertState;
  /** The model's answer as it came. */
  answer: string;
  /** When it was evaluated (ISO time). */
  at: string;
  /** The state before, or null for the first evaluation. */
  previous: AlertState | null;
  frames: WindowAnswer['frames'];
  latency_ms: number;
}

export interface AlertStats {
  /** Prompts answered. */
  evaluated: number;
  /** State changes (the first state of each alert included). */
  changed: number;
  /** Not run because the queue was full, past its deadline, or shutting down. */
  skipped: number;
  /** Not run because no new frame had arrived since the last evaluation. */
  idle: number;
  /** Failed for another reason (logged). */
  failed: number;
}

type AlertDaemon = Pick<Daemon, 'ask' | 'cameras' | 'pipeline'>;

/** Reads an answer as yes or no: its first word, case and punctuation aside ("Yes.", "no, …"). */
export function alertState(answer: string): AlertState {
  const first = answer
    .trim()
    .toLowerCase()
    .split(/[^a-z]+/)
    .find(Boolean);
  if (first === 'yes' || first === 'true') return 'yes';
  if (first === 'no' || first === 'false') return 'no';
  return 'unknown';
}

/**
 * Standing yes/no prompts about cameras (`cameras.<name>.alerts` of the pipeline): each is asked every
 * `every_s` through the daemon's scheduler (client "alerts") when new frames arrived since its last
 * evaluation, and its listeners hear of it only when the state changes. A full queue, a passed deadline or
 * shutting down skips an evaluation silently (counted); other failures are logged.
 */
export class Alerts {
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly current = new Map<string, AlertStatus>();
  private readonly listeners = new Set<(status: AlertStatus) => void>();
  private readonly counts: AlertStats = { evaluated: 0, changed: 0, skipped: 0, idle: 0, failed: 0 };
  private readonly lastFailure = new Map<string, string>();
  private stopped = false;

  constructor(
    private readonly daemon: AlertDaemon,
    private readonly log: (camera: string, line: string) => void = () => undefined,
  ) {}

  /** The alerts of every camera, as the pipeline lists them. */
  get configured(): { camera: string; alert: AlertConfig }[] {
    return Object.entries(this.daemon.pipeline.cameras).flatMap(([camera, c]) =>
      c.alerts.map((alert) => ({ camera, alert })),
    );
  }

  /** Calls `listener` on every state change; returns the function that stops it. */
  onChange(listener: (status: AlertStatus) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The last state of every alert evaluated so far. */
  states(): AlertStatus[] {
    return [...this.current.values()];
  }

  stats(): AlertStats {
    return { ...this.counts };
  }

  start(): void {
    for (const { camera, alert } of this.configured) {
      let running = false;
      let lastFrameAt: number | undefined;
      const timer = setInterval(() => {
        if (running || this.stopped) return;
        const newest = this.daemon.cameras.get(camera)?.window.snapshot({ maxFrames: 1 }).at(-1)?.receivedAt;
        if (newest === undefined || newest === lastFrameAt) {
          this.counts.idle++;
          return;
        }
        lastFrameAt = newest;
        running = true;
        void this.evaluate(camera, alert).finally(() => {
          running = false;
        });
      }, alert.every_s * 1000);
      this.timers.push(timer);
    }
  }

  stop(): void {
    this.stopped = true;
    for (const timer of this.timers.splice(0)) clearInterval(timer);
  }

  private async evaluate(camera: string, alert: AlertConfig): Promise<void> {
    const key = `${camera}/${alert.name}`;
    let answer: WindowAnswer;
    try {
      answer = await this.daemon.ask(
        camera,
        { question: alert.prompt, ...(alert.window_s !== undefined ? { windowS: alert.window_s } : {}) },
        { client: 'alerts' },
      );
    } catch (err) {
      if (err instanceof BusyError || err instanceof DeadlineError || err instanceof ShuttingDownError) {
        this.counts.skipped++;
        return;
      }
      this.counts.failed++;
      const message = err instanceof Error ? err.message : String(err);
      // The same failure again and again (no frames yet, say) is logged once.
      if (this.lastFailure.get(key) !== message) this.log(camera, `alert ${alert.name} failed: ${message}`);
      this.lastFailure.set(key, message);
      return;
    }
    this.lastFailure.delete(key);
    this.counts.evaluated++;
    if (this.stopped) return;
    const state = alertState(answer.answer);
    const before = this.current.get(key);
    if (before?.state === state) return;
    const status: AlertStatus = {
      camera,
      alert: alert.name,
      prompt: alert.prompt,
      state,
      answer: answer.answer,
      at: new Date().toISOString(),
      previous: before?.state ?? null,
      frames: answer.frames,
      latency_ms: answer.latency_ms.total,
    };
    this.current.set(key, status);
    this.counts.changed++;
    for (const listener of this.listeners) {
      try {
        listener(status);
      } catch (err) {
        this.log(camera, `alert ${alert.name}: a listener failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }
}
