/**
 * Training-data writer: runs the product's generator (src/synth) for one split and encodes the clips
 * with src/media/ffmpeg.ts's encodeVideo when it is built. Until that module exists it falls back to
 * an ffmpeg subprocess with libx264/yuv420p (training tooling only; the product never does this).
 *
 *   node dist/tools/train/make-data.js --split train --n 4000 \
 *     --out /root/vlm-sieve-train/data/train0 [--offset 0] [--labels]
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Frame } from '../../src/media/frame.js';
import type { EncodeVideo } from '../../src/synth/dataset.js';
import { writeSplit } from '../../src/synth/dataset.js';

function fallbackEncode(frames: Frame[], opts: { fps: number; out: string }): Promise<void> {
  const { width, height } = frames[0]!;
  return new Promise((resolve, reject) => {
    const p = spawn(
      'ffmpeg',
      [
        '-v',
        'error',
        '-y',
        '-f',
        'rawvideo',
        '-pix_fmt',
        'rgb24',
        '-s',
        `${width}x${height}`,
        '-r',
        String(opts.fps),
        '-i',
        '-',
        '-c:v',
        'libx264',
        '-pix_fmt',
        'yuv420p',
        '-crf',
        '18',
        '-threads',
        '1',
        opts.out,
      ],
      { stdio: ['pipe', 'ignore', 'pipe'] },
    );
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`ffmpeg failed: ${err}`))));
    for (const f of frames) p.stdin.write(f.rgb);
    p.stdin.end();
  });
}

async function encoder(): Promise<{ encode: EncodeVideo; name: string }> {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const product = path.resolve(here, '../../src/media/ffmpeg.js');
  if (existsSync(product) && !process.env.SYNTH_FALLBACK_ENCODER) {
    const mod = (await import(product)) as { encodeVideo?: EncodeVideo };
    if (typeof mod.encodeVideo === 'function') return { encode: mod.encodeVideo, name: 'src/media/ffmpeg.ts' };
  }
  return { encode: fallbackEncode, name: 'fallback ffmpeg subprocess (libx264 yuv420p crf 18)' };
}

function arg(name: string, dflt?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1]!;
  if (dflt === undefined) throw new Error(`missing --${name}`);
  return dflt;
}

const { encode, name } = await encoder();
const t0 = Date.now();
const res = await writeSplit({
  split: arg('split'),
  n: Number(arg('n')),
  out: arg('out'),
  offset: Number(arg('offset', '0')),
  labels: process.argv.includes('--labels'),
  concurrency: Number(arg('concurrency', '2')),
  encode,
  onClip: (d, t) => {
    if (d % 500 === 0 || d === t) console.log(`${d}/${t} clips (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  },
});
console.log(`encoder: ${name}; wrote ${res.clips} clips, ${res.questions} questions to ${res.jsonl}`);
