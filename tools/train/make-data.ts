/**
 * Training-data writer: runs the product's generator (src/synth) for one split and encodes the clips
 * with the product's encoder (src/media/video-encoder.ts), each clip with its scene's compression.
 *
 *   node dist/tools/train/make-data.js --split train --n 4000 \
 *     --out ~/vlm-sieve-train-v2/data/train0 [--offset 0] [--labels] [--version 2]
 */
import { encodeVideo } from '../../src/media/video-encoder.js';
import { writeSplit } from '../../src/synth/dataset.js';

function arg(name: string, dflt?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  if (dflt === undefined) throw new Error(`missing --${name}`);
  return dflt;
}

const t0 = Date.now();
const res = await writeSplit({
  split: arg('split'),
  n: Number(arg('n')),
  out: arg('out'),
  offset: Number(arg('offset', '0')),
  labels: process.argv.includes('--labels'),
  variant: { version: arg('version', '1') === '2' ? 2 : 1 },
  concurrency: Number(arg('concurrency', '2')),
  encode: (frames, opts) => encodeVideo(frames, opts),
  onClip: (d, t) => {
    if (d % 500 === 0 || d === t) console.log(`${d}/${t} clips (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  },
});
console.log(`wrote ${res.clips} clips, ${res.questions} questions to ${res.jsonl}`);
