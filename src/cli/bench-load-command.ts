/**
 * `sieve bench load`: the HTTP API under load. A daemon in this process with the demo clip looped as
 * several cameras, its HTTP surface on a free loopback port, and N clients each posting camera questions
 * in a closed loop (half of them streaming): latency, throughput, busy replies, errors and lost replies.
 */
import { join } from 'node:path';
import type { Command } from 'commander';
import { Daemon } from '../serve/daemon.js';
import { HttpSurface } from '../serve/http-surface.js';
import { SieveMetrics } from '../serve/metrics.js';
import { pipelineSchema } from '../serve/pipeline-config.js';
import { addBenchOutOption, writeBenchResult } from './bench-results.js';
import { formatBytes, parseInteger, parseNumber, progressReporter } from './cli-output.js';
import { defaultModelDir, PACKAGE_ROOT } from './default-model.js';

const DEMO_CLIP = join(PACKAGE_ROOT, 'models', 'demo', 'examples', 'videos', 'test-2000000000.mp4');
const QUESTION = 'what colour is the circle?';

interface LoadFlags {
  clients: string;
  cameras: string;
  minutes: string;
  capacity: string;
  out: string;
}

/** How one request ended. */
type Outcome =
  | { kind: 'answer'; latencyMs: number; ttftMs?: number; content: string }
  | { kind: 'busy'; retryAfterS: number }
  | { kind: 'error'; status: number; code: string }
  | { kind: 'lost'; message: string };

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : 0;
}

/** One chat completion about a camera; streaming ones also time their first content chunk. */
async function ask(url: string, camera: string, stream: boolean): Promise<Outcome> {
  const t0 = performance.now();
  let res: Response;
  try {
    res = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content: QUESTION }], stream, sieve: { camera } }),
    });
  } catch (err) {
    return { kind: 'lost', message: (err as Error).message };
  }
  try {
    if (res.status === 503 && res.headers.get('retry-after')) {
      await res.arrayBuffer();
      return { kind: 'busy', retryAfterS: Number(res.headers.get('retry-after')) };
    }
    if (res.status !== 200) {
      const body = (await res.json().catch(() => ({}))) as { error?: { code?: string } };
      return { kind: 'error', status: res.status, code: body.error?.code ?? 'unknown' };
    }
    if (!stream) {
      const body = (await res.json()) as { choices: { message: { content: string } }[] };
      return { kind: 'answer', latencyMs: performance.now() - t0, content: body.choices[0].message.content };
    }
    let ttftMs: number | undefined;
    let content = '';
    let buffered = '';
    let done = false;
    const decoder = new TextDecoder();
    for await (const bytes of res.body ?? []) {
      buffered += decoder.decode(bytes, { stream: true });
      for (let end = buffered.indexOf('\n\n'); end >= 0; end = buffered.indexOf('\n\n')) {
        const event = buffered.slice(0, end).replace(/^data: /, '');
        buffered = buffered.slice(end + 2);
        if (event === '[DONE]') done = true;
        else {
          const chunk = JSON.parse(event) as { choices?: { delta?: { content?: string } }[]; error?: { code: string } };
          if (chunk.error) return { kind: 'error', status: 200, code: chunk.error.code };
          const delta = chunk.choices?.[0]?.delta?.content;
          if (delta) {
            ttftMs ??= performance.now() - t0;
            content += delta;
          }
        }
      }
    }
    if (!done) return { kind: 'lost', message: 'the stream ended without [DONE]' };
    return { kind: 'answer', latencyMs: performance.now() - t0, ttftMs, content: content.trim() };
  } catch (err) {
    return { kind: 'lost', message: (err as Error).message };
  }
}

export async function benchLoad(flags: LoadFlags): Promise<void> {
  const clients = parseInteger(flags.clients, '--clients', 1, 1000);
  const cameraCount = parseInteger(flags.cameras, '--cameras', 1, 16);
  const minutes = parseNumber(flags.minutes, '--minutes', 0, 24 * 60, { exclusiveMin: true });
  const capacity = parseInteger(flags.capacity, '--capacity', 1, 10_000);
  const cameraNames = Array.from({ length: cameraCount }, (_, i) => `cam${i + 1}`);
  const camera = {
    source: { type: 'file', path: DEMO_CLIP, loop: true, speed: 1 },
    sampling: { fps: 2 },
    window: { seconds: 4, max_frames: 8 },
    pruning: { method: 'vitcop', budget: 0.111 },
  };
  const pipeline = pipelineSchema.parse({
    cameras: Object.fromEntries(cameraNames.map((name) => [name, camera])),
    queries: { capacity },
  });
  const daemon = await Daemon.start(pipeline, {
    modelDir: defaultModelDir(),
    modelName: 'models/demo',
    runtime: { ep: 'cpu', threads: 0 },
    log: () => undefined,
  });
  const http = await HttpSurface.start(daemon, {
    listen: '127.0.0.1:0',
    maxBodyBytes: 2 ** 20,
    log: (line) => process.stderr.write(`${line}\n`),
    metrics: new SieveMetrics(daemon),
  });
  const { url } = http.address;
  try {
    // Every camera has frames before the clock starts.
    const ready = performance.now();
    while (cameraNames.some((name) => daemon.cameras.get(name)?.window.size === 0)) {
      if (performance.now() - ready > 60_000) throw new Error('the cameras delivered no frames within 60 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    const outcomes: (Outcome & { stream: boolean })[] = [];
    let sent = 0;
    let maxDepth = 0;
    let peakRss = process.memoryUsage.rss();
    const wallMs = minutes * 60_000;
    const started = performance.now();
    const progress = progressReporter('load');
    const sampler = setInterval(() => {
      maxDepth = Math.max(maxDepth, daemon.scheduler.stats().depth);
      peakRss = Math.max(peakRss, process.memoryUsage.rss());
      const answered = outcomes.filter((o) => o.kind === 'answer').length;
      progress.update(
        Math.round((performance.now() - started) / 1000),
        Math.round(wallMs / 1000),
        `${answered} answers`,
      );
    }, 250);
    const client = async (i: number) => {
      const stream = i % 2 === 1;
      const cam = cameraNames[i % cameraNames.length];
      while (performance.now() - started < wallMs) {
        sent++;
        const outcome = await ask(url, cam, stream);
        outcomes.push({ ...outcome, stream });
        if (outcome.kind === 'busy') await new Promise((r) => setTimeout(r, outcome.retryAfterS * 1000));
      }
    };
    await Promise.all(Array.from({ length: clients }, (_, i) => client(i)));
    const elapsedS = (performance.now() - started) / 1000;
    clearInterval(sampler);
    progress.stop();

    const answers = outcomes.filter((o) => o.kind === 'answer');
    const latencies = answers.map((o) => o.latencyMs);
    const ttfts = answers.flatMap((o) => (o.ttftMs === undefined ? [] : [o.ttftMs]));
    const errors = outcomes.filter((o) => o.kind === 'error');
    const lost = outcomes.filter((o) => o.kind === 'lost');
    const status = daemon.status();
    const result = {
      clients,
      cameras: cameraCount,
      minutes,
      queueCapacity: capacity,
      wallSeconds: elapsedS,
      requests: {
        sent,
        answered: answers.length,
        busy: outcomes.filter((o) => o.kind === 'busy').length,
        errors: errors.length,
        lost: sent - outcomes.length + lost.length,
      },
      /** What the answers said, and how often (the demo clip's circle is purple; its first frames differ). */
      answerTexts: Object.fromEntries(
        [...new Set(answers.map((o) => o.content))].map((t) => [t, answers.filter((o) => o.content === t).length]),
      ),
      throughputPerS: answers.length / elapsedS,
      latencyMs: { p50: percentile(latencies, 0.5), p95: percentile(latencies, 0.95), max: Math.max(0, ...latencies) },
      streamTtftMs: { p50: percentile(ttfts, 0.5), p95: percentile(ttfts, 0.95) },
      maxQueueDepth: maxDepth,
      scheduler: daemon.scheduler.stats(),
      frames: Object.fromEntries(status.map((s) => [s.camera, s.frames])),
      peakRssBytes: Math.max(peakRss, process.resourceUsage().maxRSS * 1024),
      errorCodes: [...new Set(errors.map((e) => (e.kind === 'error' ? `${e.status} ${e.code}` : '')))],
      lostMessages: [...new Set(lost.map((l) => (l.kind === 'lost' ? l.message : '')))].slice(0, 5),
    };
    const file = writeBenchResult(flags.out, 'load', result);
    const r = result.requests;
    console.log(
      `${clients} clients on ${cameraCount} cameras for ${elapsedS.toFixed(0)} s: ${r.sent} requests, ` +
        `${r.answered} answered, ${r.busy} busy, ${r.errors} errors, ${r.lost} lost`,
    );
    console.log(
      `latency p50 ${result.latencyMs.p50.toFixed(0)} ms, p95 ${result.latencyMs.p95.toFixed(0)} ms; ` +
        `streaming TTFT p50 ${result.streamTtftMs.p50.toFixed(0)} ms, p95 ${result.streamTtftMs.p95.toFixed(0)} ms; ` +
        `${result.throughputPerS.toFixed(2)} answers/s; queue depth ≤ ${maxDepth}`,
    );
    console.log(
      `frames dropped: ${status.map((s) => `${s.camera} ${s.frames.dropped}/${s.frames.sampled}`).join(', ')}; ` +
        `peak RSS ${formatBytes(result.peakRssBytes)}; results in ${file}`,
    );
    if (r.lost > 0) process.exitCode = 1;
  } finally {
    await daemon.stop();
    await http.close();
  }
}

export function registerBenchLoadCommand(bench: Command): void {
  addBenchOutOption(
    bench
      .command('load')
      .description(
        'the HTTP API under load: concurrent clients asking about demo cameras (half streaming): ' +
          'p50/p95 latency, throughput, busy replies, lost replies',
      ),
  )
    .option('--clients <n>', 'concurrent clients, each asking again as soon as it has its reply', '10')
    .option('--cameras <n>', 'cameras (the demo clip looped at real time)', '2')
    .option('--minutes <n>', 'how long the clients ask', '5')
    .option('--capacity <n>', "the scheduler's queue capacity (queries.capacity)", '32')
    .action((flags: LoadFlags) => benchLoad(flags));
}
