/**
 * `sieve bench decode`: what sampling a video costs. Eight frames of a one-hour 1080p H.264 file (made once
 * in a cache folder) decoded by one linear pass and by the seek plan, side by side, with the same frames
 * checked; and the quick-start clip decoded with the bundled ffmpeg and with the system's, if there is one.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { lastValueFrom, toArray } from 'rxjs';
import { MediaError } from '../errors.js';
import { binaries, configureFfmpeg, type FfmpegOptions, findOnPath } from '../media/ffmpeg-binaries.js';
import { runFfmpeg } from '../media/ffmpeg-process.js';
import type { Frame } from '../media/frame.js';
import type { DecodePlan, DecodeStrategy } from '../media/frame-plan.js';
import { videoFrames } from '../media/sampler.js';
import { addBenchOutOption, writeBenchResult } from './bench-results.js';
import { displayPath, parseInteger } from './cli-output.js';
import { PACKAGE_ROOT } from './default-model.js';

const DEMO_CLIP = join(PACKAGE_ROOT, 'models', 'demo', 'examples', 'videos', 'test-2000000000.mp4');
const HOUR_FILE = 'hour-1080p25-h264.mp4';

interface BenchDecodeFlags {
  cache?: string;
  frames: string;
  fit: string;
  repeat: string;
  skipLinear?: boolean;
  out: string;
}

interface PlanTiming {
  strategy: DecodeStrategy;
  ms: number;
  plan: DecodePlan['strategy'];
  segments: number;
  runs: number;
  decodedFrames: number;
  timestamps: number[];
  pixelsSha1: string;
}

const log = (s: string) => process.stderr.write(`${s}\n`);

/** The one-hour file: one minute of ffmpeg's test pattern at ultrafast, concatenated 60 times without re-encoding. */
async function hourFile(cacheDir: string): Promise<string> {
  const file = join(cacheDir, HOUR_FILE);
  if (existsSync(file)) return file;
  await mkdir(cacheDir, { recursive: true });
  const minute = join(cacheDir, `minute-${process.pid}.mp4`);
  const list = join(cacheDir, `list-${process.pid}.txt`);
  const partial = join(cacheDir, `${HOUR_FILE}.${process.pid}.tmp`);
  configureFfmpeg({ ffmpegPath: 'bundled', ffprobePath: 'bundled' });
  const { ffmpeg } = await binaries();
  const run = async (job: Parameters<typeof runFfmpeg>[1]) => {
    const problems: string[] = [];
    const err = await runFfmpeg(ffmpeg.path, { ...job, onStderr: (l) => problems.push(l) }).exit;
    if (err) throw new MediaError(`cannot make the benchmark video: ${problems.slice(-3).join(' ') || err.message}`);
  };
  try {
    log(`making ${displayPath(file)}: one minute of 1080p at 25 fps (x264 ultrafast, keyframes every 10 s)…`);
    await run({
      inputs: [{ source: 'testsrc=size=1920x1080:rate=25:duration=60', options: ['-f', 'lavfi'] }],
      outputOptions: ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-an', '-f', 'mp4'],
      outputFile: minute,
    });
    log('…concatenated 60 times without re-encoding');
    await writeFile(list, `${Array.from({ length: 60 }, () => `file '${minute}'`).join('\n')}\n`);
    await run({
      inputs: [{ source: list, options: ['-f', 'concat', '-safe', '0'] }],
      outputOptions: ['-c', 'copy', '-movflags', '+faststart', '-f', 'mp4'],
      outputFile: partial,
    });
    await rename(partial, file);
  } finally {
    configureFfmpeg();
    await Promise.all([minute, list, partial].map((f) => rm(f, { force: true })));
  }
  return file;
}

async function timePlan(file: string, frames: number, fit: number, strategy: DecodeStrategy): Promise<PlanTiming> {
  let plan: DecodePlan | undefined;
  const t0 = performance.now();
  const decoded: Frame[] = await lastValueFrom(
    videoFrames(
      file,
      { frames },
      { strategy, onPlan: (p) => (plan = p), ...(fit > 0 ? { fit: { shortestEdge: fit } } : {}) },
    ).pipe(toArray()),
  );
  const ms = performance.now() - t0;
  const hash = createHash('sha1');
  for (const f of decoded) hash.update(f.rgb);
  return {
    strategy,
    ms,
    plan: plan?.strategy ?? 'linear',
    segments: plan?.segments.length ?? 0,
    runs: plan?.runs.length ?? 0,
    decodedFrames: plan?.decodedFrames ?? 0,
    timestamps: decoded.map((f) => f.timestampS),
    pixelsSha1: hash.digest('hex'),
  };
}

/** The quick-start clip's 8 frames with these binaries, as the first decode of a process does it. */
async function timeQuickStart(binaryPaths: FfmpegOptions, repeat: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < repeat + 1; i++) {
    configureFfmpeg(binaryPaths); // as a new process: the binaries are looked up (their versions are cached)
    const t0 = performance.now();
    await lastValueFrom(videoFrames(DEMO_CLIP, { frames: 8 }).pipe(toArray()));
    if (i > 0) times.push(performance.now() - t0); // the first run warms the version cache and the page cache
  }
  configureFfmpeg();
  return times;
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

async function benchDecode(flags: BenchDecodeFlags): Promise<void> {
  const frames = parseInteger(flags.frames, '--frames', 1, 1024);
  const fit = parseInteger(flags.fit, '--fit', 0, 8192);
  const repeat = parseInteger(flags.repeat, '--repeat', 1, 100);
  const cacheDir = resolve(
    flags.cache ?? join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'vlm-sieve', 'bench-decode'),
  );
  const file = await hourFile(cacheDir);

  log(`${frames} frames of ${displayPath(file)}, seek plan…`);
  const seek: PlanTiming[] = [];
  for (let i = 0; i < repeat; i++) seek.push(await timePlan(file, frames, fit, 'auto'));
  let linear: PlanTiming | undefined;
  if (!flags.skipLinear) {
    log('…and one linear pass (a minute or more)');
    linear = await timePlan(file, frames, fit, 'linear');
  }
  const best = seek.reduce((a, b) => (b.ms < a.ms ? b : a));
  if (linear && linear.pixelsSha1 !== best.pixelsSha1) {
    throw new MediaError('the seek plan and the linear pass decoded different frames: this is a bug');
  }

  log('the quick-start clip, bundled ffmpeg…');
  const quick: { binary: string; ffmpeg: string; ffprobe: string; medianMs: number; ms: number[] }[] = [];
  const bundled = { ffmpegPath: 'bundled', ffprobePath: 'bundled' };
  configureFfmpeg(bundled);
  const b = await binaries();
  const bundledMs = await timeQuickStart(bundled, repeat * 3);
  quick.push({
    binary: 'bundled',
    ffmpeg: b.ffmpeg.version,
    ffprobe: b.ffprobe.version,
    medianMs: median(bundledMs),
    ms: bundledMs,
  });
  const [sysFfmpeg, sysFfprobe] = await Promise.all([findOnPath('ffmpeg'), findOnPath('ffprobe')]);
  if (sysFfmpeg && sysFfprobe) {
    log(`…and the system's (${sysFfmpeg})`);
    const system = { ffmpegPath: sysFfmpeg, ffprobePath: sysFfprobe };
    configureFfmpeg(system);
    const s = await binaries();
    const systemMs = await timeQuickStart(system, repeat * 3);
    quick.push({
      binary: 'system',
      ffmpeg: s.ffmpeg.version,
      ffprobe: s.ffprobe.version,
      medianMs: median(systemMs),
      ms: systemMs,
    });
  }
  configureFfmpeg();

  const result = {
    video: {
      file: displayPath(file),
      duration: '1 h',
      size: '1920x1080',
      fps: 25,
      codec: 'h264 (x264 ultrafast, keyframes every 250 frames)',
    },
    frames,
    fit: fit > 0 ? { shortestEdge: fit } : null,
    seek: { ...best, allMs: seek.map((s) => s.ms) },
    ...(linear ? { linear, speedup: linear.ms / best.ms } : {}),
    quickStart: { clip: displayPath(DEMO_CLIP), frames: 8, binaries: quick },
  };
  const out = writeBenchResult(flags.out, 'decode', result);

  const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  console.log(`${frames} frames of a 1-hour 1080p H.264 file${fit > 0 ? `, kept at shortest edge ${fit}` : ''}:`);
  console.log(
    `  seek plan   ${s(best.ms)}  (${best.segments} segments in ${best.runs} ffmpeg run(s), ~${best.decodedFrames} frames decoded)`,
  );
  if (linear) {
    console.log(
      `  linear pass ${s(linear.ms)}  (~${linear.decodedFrames} frames decoded) — ×${(linear.ms / best.ms).toFixed(0)}, same frames`,
    );
  }
  console.log('quick-start clip, 8 frames (median of the first decode in a process):');
  for (const q of quick) console.log(`  ${q.binary.padEnd(8)} ${q.medianMs.toFixed(0)} ms  (ffmpeg ${q.ffmpeg})`);
  console.log(`results in ${displayPath(out)}`);
}

export function registerBenchDecodeCommand(bench: Command): void {
  addBenchOutOption(
    bench
      .command('decode')
      .description(
        'decode time of sampled frames: a 1-hour 1080p file by one linear pass and by seeks, the quick-start clip with each ffmpeg',
      ),
  )
    .option('--cache <dir>', 'where the 1-hour file is made once (default: ~/.cache/vlm-sieve/bench-decode)')
    .option('--frames <n>', 'frames sampled from the 1-hour file', '8')
    .option('--fit <px>', 'keep frames at this shortest edge, as a CLIP-224 processor needs (0: full size)', '224')
    .option('--repeat <n>', 'timed runs of the seek plan (the quick-start clip: 3× as many)', '3')
    .option('--skip-linear', 'do not time the linear pass (it takes a minute or more)')
    .action(async (flags: BenchDecodeFlags) => benchDecode(flags));
}
