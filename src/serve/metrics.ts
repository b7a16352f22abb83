/**
 * Prometheus metrics of a running daemon (`GET /metrics`): every name starts with `sieve_`. Queue and
 * camera figures are read from the scheduler and the cameras when scraped; query figures are recorded by
 * the surfaces that answer (HTTP now, MQTT and alerts may record theirs with observeQuery too).
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Daemon } from './daemon.js';

/** Seconds: from 5 ms to 2 min (a query on a loaded edge device can wait a while in the queue). */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120];
const TOKEN_BUCKETS = [8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192];

/** One answered query, as a surface saw it. */
export interface QueryObservation {
  /** Which surface took it: http, mqtt, alerts… */
  surface: string;
  /** camera: about a camera's window; images: about images sent with it. */
  kind: 'camera' | 'images';
  /** From the request's arrival to the first token of the answer (queue time included). */
  ttftS?: number;
  /** From the request's arrival to the end of the answer. */
  latencyS: number;
  /** Visual tokens entering the language model and their layer-averaged count after pruning. */
  visualTokens?: { input: number; kept: number };
}

export class SieveMetrics {
  readonly registry = new Registry();
  private readonly ttft: Histogram<'surface' | 'kind'>;
  private readonly latency: Histogram<'surface' | 'kind'>;
  private readonly kept: Histogram<'surface' | 'kind'>;
  private readonly visualTotal: Counter<'stage'>;
  private readonly replies: Counter<'surface' | 'outcome'>;
  private readonly requests: Counter<'route' | 'status'>;

  constructor(daemon: Daemon) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'sieve_' });
    new Gauge({
      name: 'sieve_rss_bytes',
      help: 'Resident set size of the daemon process',
      registers,
      collect() {
        this.set(process.memoryUsage.rss());
      },
    });
    new Gauge({
      name: 'sieve_query_queue_depth',
      help: 'Queries waiting in the scheduler (not the running one)',
      registers,
      collect() {
        this.set(daemon.scheduler.stats().depth);
      },
    });
    new Gauge({
      name: 'sieve_query_running',
      help: 'Queries running now',
      registers,
      collect() {
        this.set(daemon.scheduler.stats().running);
      },
    });
    new Counter({
      name: 'sieve_scheduler_queries_total',
      help: 'Queries the scheduler saw, by outcome: accepted, completed, failed, busy (refused), expired (deadline)',
      labelNames: ['outcome'],
      registers,
      collect() {
        const { depth: _depth, running: _running, ...counts } = daemon.scheduler.stats();
        this.reset();
        for (const [outcome, n] of Object.entries(counts)) this.inc({ outcome }, n);
      },
    });
    type Status = ReturnType<Daemon['status']>[number];
    const cameraCounter = (name: string, help: string, value: (s: Status) => number) =>
      new Counter({
        name,
        help,
        labelNames: ['camera'],
        registers,
        collect() {
          this.reset();
          for (const s of daemon.status()) this.inc({ camera: s.camera }, value(s));
        },
      });
    const cameraGauge = (name: string, help: string, value: (s: Status) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['camera'],
        registers,
        collect() {
          this.reset();
          for (const s of daemon.status()) this.set({ camera: s.camera }, value(s));
        },
      });
    cameraCounter(
      'sieve_camera_frames_dropped_total',
      'Sampled frames dropped because the vision encoder was busy',
      (s) => s.frames.dropped,
    );
    cameraCounter('sieve_camera_frames_encoded_total', 'Frames through the vision encoder', (s) => s.frames.encoded);
    cameraCounter(
      'sieve_camera_frames_unchanged_total',
      'Frames skipped by the change gate',
      (s) => s.frames.unchanged,
    );
    cameraCounter('sieve_camera_reconnects_total', "Times the camera's source reconnected", (s) => s.source.reconnects);
    cameraGauge('sieve_camera_window_frames', "Frames in the camera's rolling window", (s) => s.window.frames);
    cameraGauge('sieve_camera_up', '1 when the source delivers frames (live), else 0', (s) =>
      s.source.state === 'live' ? 1 : 0,
    );

    this.ttft = new Histogram({
      name: 'sieve_query_ttft_seconds',
      help: 'Time from a query’s arrival to the first token of its answer (queue time included)',
      labelNames: ['surface', 'kind'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.latency = new Histogram({
      name: 'sieve_query_latency_seconds',
      help: 'Time from a query’s arrival to the end of its answer (queue time included)',
      labelNames: ['surface', 'kind'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.kept = new Histogram({
      name: 'sieve_visual_tokens_kept',
      help: 'Visual tokens per answer after pruning (layer-averaged count)',
      labelNames: ['surface', 'kind'],
      buckets: TOKEN_BUCKETS,
      registers,
    });
    this.visualTotal = new Counter({
      name: 'sieve_visual_tokens_total',
      help: 'Visual tokens over all answers: input (entering the LLM) and kept (layer-averaged after pruning)',
      labelNames: ['stage'],
      registers,
    });
    this.replies = new Counter({
      name: 'sieve_query_replies_total',
      help: 'Replies to queries by surface and outcome (answer, busy, deadline, shutting_down, bad_request, error)',
      labelNames: ['surface', 'outcome'],
      registers,
    });
    this.requests = new Counter({
      name: 'sieve_http_requests_total',
      help: 'HTTP requests by route and status code',
      labelNames: ['route', 'status'],
      registers,
    });
  }

  /** Records an answered query. */
  observeQuery(q: QueryObservation): void {
    const labels = { surface: q.surface, kind: q.kind };
    if (q.ttftS !== undefined) this.ttft.observe(labels, q.ttftS);
    this.latency.observe(labels, q.latencyS);
    if (q.visualTokens) {
      this.kept.observe(labels, q.visualTokens.kept);
      this.visualTotal.inc({ stage: 'input' }, q.visualTokens.input);
      this.visualTotal.inc({ stage: 'kept' }, q.visualTokens.kept);
    }
  }

  /** Counts a reply to a query: an answer or why there was none. */
  countReply(surface: string, outcome: string): void {
    this.replies.inc({ surface, outcome });
  }

  countRequest(route: string, status: number): void {
    this.requests.inc({ route, status: String(status) });
  }

  /** The exposition text and its content type. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
