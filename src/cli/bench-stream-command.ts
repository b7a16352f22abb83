/**
 * Benchmarks of the daemon's streaming path on the demo model: `sieve bench soak` (a long stream at high
 * speed with queries all along: memory slope, lost queries, drops) and `sieve bench window` (time to
 * first token of a query on a warm window against the same frames answered from pixels, as sieve ask does).
 */
import { join } from 'node:path';
import type { Command } from 'commander';
import { lastValueFrom, toArray } from 'rxjs';
import { VlmPipeline } from '../engine/answer-pipeline.js';
import type { PruneRequest } from '../engine/visual-query.js';
import { videoFrames } from '../media/sampler.js';
import { Daemon } from '../serve/daemon.js';
import { pipelineSchema } from '../serve/pipeline-config.js';
import { addBenchOutOption, writeBenchResult } from './bench-results.js';
import { formatBytes, parseInteger, parseNumber, progressReporter } from './cli-output.js';
import { defaultModelDir, PACKAGE_ROOT } from './default-model.js';
import { pruningLayers } from './run-settings.js';

const DEMO_CLIP = join(PACKAGE_ROOT, 'models', 'demo', 'examples', 'videos', 'test-2000000000.mp4');
const QUESTION = 'what colour is the circle?';
const VITCOP: PruneRequest = { method: 'vitcop', budget: 0.111, options: {}, seed: 0 };
const NONE: PruneRequest = { method: 'none', budget: 1, options: {}, seed: 0 };

/** Least-squares slope of y over x. */
function slope(points: readonly { x: number; y: number }[]): number {
  const n = points.length;
  const mx = points.reduce((a, p) => a + p.x, 0) / n;
  const my = points.reduce((a, p) => a + p.y, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.x - mx) * (p.y - my);
    den += (p.x - mx) ** 2;
  }
  return den > 0 ? num / den : 0;
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : 0;
}

async function benchSoak(flags: { minutes: string; speed: string; every: string; out: string }): Promise<void> {
  const streamMinutes = parseNumber(flags.minutes, '--minutes', 0, 24 * 60, { exclusiveMin: true });
  const speed = parseNumber(flags.speed, '--speed', 1, 1000);
  const everyS = parseNumber(flags.every, '--every', 0.1, 3600);
  const wallS = (streamMinutes * 60) / speed;
  const pipeline = pipelineSchema.parse({
    cameras: {
      soak: {
        source: { type: 'file', path: DEMO_CLIP, loop: true, speed },
        sampling: { fps: 2 },
        window: { seconds: 4, max_frames: 8 },
        pruning: { method: 'vitcop', budget: 0.111 },
      },
    },
  });
  const daemon = await Daemon.start(pipeline, {
    modelDir: defaultModelDir(),
    modelName: 'models/demo',
    runtime: { ep: 'cpu', threads: 0 },
    log: () => undefined,
  });
  const rss: { x: number; y: number }[] = [];
  const latencies: number[] = [];
  let sent = 0;
  let answered = 0;
  const failures: string[] = [];
  const started = performance.now();
  const progress = progressReporter('soak');
  const sampler = setInterval(() => {
    const minute = (performance.now() - started) / 60_000;
    rss.push({ x: minute, y: process.memoryUsage.rss() / 2 ** 20 });
    progress.update(Math.round((performance.now() - started) / 1000), Math.round(wallS), 'seconds of wall time');
  }, 1000);
  const pending = new Set<Promise<void>>();
  const asker = setInterval(() => {
    if (daemon.cameras.get('soak')?.window.size === 0) return;
    sent++;
    const t0 = performance.now();
    const query = daemon
      .ask('soak', { question: QUESTION }, { client: 'soak' })
      .then(() => {
        answered++;
        latencies.push(performance.now() - t0);
      })
      .catch((err: unknown) => {
        failures.push(err instanceof Error ? err.message : String(err));
      });
    pending.add(query);
    void query.finally(() => pending.delete(query));
  }, everyS * 1000);
  await new Promise((r) => setTimeout(r, wallS * 1000));
  clearInterval(asker);
  await Promise.all([...pending]);
  clearInterval(sampler);
  progress.stop();
  const status = daemon.status()[0];
  await daemon.stop();

  const tail = rss.filter((p) => p.x >= rss[rss.length - 1].x / 3);
  const result = {
    streamMinutes,
    speed,
    wallMinutes: wallS / 60,
    queryEveryS: everyS,
    queries: { sent, answered, failed: failures.length, lost: sent - answered - failures.length },
    latencyMs: { p50: percentile(latencies, 0.5), p95: percentile(latencies, 0.95) },
    frames: status.frames,
    rssMiB: { first: rss[0]?.y, last: rss[rss.length - 1]?.y, max: Math.max(...rss.map((p) => p.y)) },
    rssSlopeMiBPerMinuteLastTwoThirds: slope(tail),
    failures: failures.slice(0, 5),
  };
  const file = writeBenchResult(flags.out, 'soak', result);
  console.log(
    `${streamMinutes} min of stream at ${speed}× in ${(wallS / 60).toFixed(1)} min: ` +
      `${sent} queries, ${answered} answered, ${failures.length} failed, ${result.queries.lost} lost; ` +
      `latency p50 ${result.latencyMs.p50.toFixed(0)} ms, p95 ${result.latencyMs.p95.toFixed(0)} ms`,
  );
  console.log(
    `frames: ${status.frames.sampled} sampled, ${status.frames.encoded} encoded, ${status.frames.dropped} dropped; ` +
      `RSS ${result.rssMiB.first?.toFixed(0)} → ${result.rssMiB.last?.toFixed(0)} MiB ` +
      `(max ${result.rssMiB.max.toFixed(0)}), slope over the last two thirds ` +
      `${result.rssSlopeMiBPerMinuteLastTwoThirds.toFixed(2)} MiB/min; results in ${file}`,
  );
}

async function benchWindow(flags: { frames: string; repeat: string; out: string }): Promise<void> {
  const frameCount = parseInteger(flags.frames, '--frames', 1, 30);
  const repeat = parseInteger(flags.repeat, '--repeat', 1, 1000);
  const pipeline = await VlmPipeline.open(defaultModelDir(), {
    runtime: { ep: 'cpu', threads: 0 },
    pruningLayers: pruningLayers([VITCOP], frameCount),
  });
  try {
    const decodeStart = performance.now();
    const frames = await lastValueFrom(videoFrames(DEMO_CLIP, { frames: frameCount }).pipe(toArray()));
    const decodeMs = performance.now() - decodeStart;
    const window = [];
    for (const frame of frames) window.push(...(await pipeline.encode([frame])));
    const opts = (prune: PruneRequest) => ({ maxNewTokens: 1, prune });
    const rows = [];
    for (const prune of [NONE, VITCOP]) {
      await pipeline.answer(frames, QUESTION, opts(prune)); // warm-up
      await pipeline.answerEncoded(window, QUESTION, opts(prune));
      const ask: number[] = [];
      const win: number[] = [];
      for (let i = 0; i < repeat; i++) {
        // Interleaved, so both see the same machine state.
        const a = await pipeline.answer(frames, QUESTION, opts(prune));
        ask.push(a.timings.firstTokenMs + a.timings.preprocessMs);
        const w = await pipeline.answerEncoded(window, QUESTION, opts(prune));
        win.push(w.timings.firstTokenMs);
      }
      const askMs = percentile(ask, 0.5);
      const windowMs = percentile(win, 0.5);
      rows.push({
        method: prune.method,
        budget: prune.budget,
        askTtftMs: askMs,
        windowTtftMs: windowMs,
        ratio: windowMs / askMs,
      });
    }
    const peakRssBytes = process.resourceUsage().maxRSS * 1024;
    const file = writeBenchResult(flags.out, 'window', {
      frames: frameCount,
      repeat,
      decodeMs,
      methods: rows,
      peakRssBytes,
    });
    console.log(
      `${frameCount} frames of the demo clip, medians of ${repeat} interleaved runs ` +
        `(decode alone: ${decodeMs.toFixed(0)} ms)`,
    );
    console.log('method    budget  ask TTFT ms  window TTFT ms  window / ask');
    for (const r of rows) {
      console.log(
        [
          r.method.padEnd(8),
          String(r.budget).padStart(7),
          r.askTtftMs.toFixed(1).padStart(12),
          r.windowTtftMs.toFixed(1).padStart(14),
          `${r.ratio.toFixed(2)}×`.padStart(13),
        ].join(' '),
      );
    }
    console.log(`peak RSS ${formatBytes(peakRssBytes)}; results in ${file}`);
  } finally {
    await pipeline.close();
  }
}

export function registerBenchStreamCommands(bench: Command): void {
  addBenchOutOption(
    bench
      .command('soak')
      .description(
        'a long looped stream through the demo model at high speed with queries all along: ' +
          'RSS slope, lost queries, drops',
      ),
  )
    .option('--minutes <n>', 'minutes of stream time', '30')
    .option('--speed <factor>', 'how much faster than real time the stream plays', '10')
    .option('--every <seconds>', 'a query this often (wall-clock seconds)', '3')
    .action((flags: { minutes: string; speed: string; every: string; out: string }) => benchSoak(flags));
  addBenchOutOption(
    bench
      .command('window')
      .description(
        'time to first token of a query on a warm window vs the same frames answered from pixels (as sieve ask)',
      ),
  )
    .option('--frames <n>', 'frames in the window', '8')
    .option('--repeat <n>', 'timed runs of each, interleaved', '10')
    .action((flags: { frames: string; repeat: string; out: string }) => benchWindow(flags));
}
