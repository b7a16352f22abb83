import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { ffmpegBinaries } from '../../src/media/ffmpeg-binaries.js';
import { METHOD_NAMES } from '../../src/prune/registry.js';
import { REPO_ROOT, tempDir, testVideo } from '../helpers/fixtures.js';
import { tinyOnevisionCheckpoint } from '../helpers/onevision-checkpoint.js';

const SIEVE = join(REPO_ROOT, 'bin', 'sieve.js');
const QUESTION = 'what colour is the square ?';
/** The tiny checkpoint's 6×6 pooled tokens per video frame. */
const N = 36;
/** <|im_start|> user … what colour is the square ? <|im_end|> <|im_start|> assistant */
const TEXT_TOKENS = 11;

function sieve(...args: string[]) {
  const r = spawnSync(process.execPath, [SIEVE, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface AskJson {
  answer: string;
  frames: unknown[];
  tokens: {
    prompt: number;
    visual_per_frame: number;
    visual_input: number;
    visual_layer_averaged: number;
    stages: { tokens: number }[];
  };
  kept_per_frame: number[][];
}

describe('sieve ask on a llava_onevision checkpoint, end to end on a real H.264 video', () => {
  let model: string;
  let video: string;
  const ask = (...extra: string[]) =>
    sieve('ask', video, QUESTION, '--model', model, '--frames', '6', '--max-new-tokens', '3', '--json', ...extra);
  before(async () => {
    model = tinyOnevisionCheckpoint();
    video = await testVideo();
  });

  it('answers unpruned: 6 frames of 6×6 pooled tokens and one image_newline in the prompt', () => {
    const r = ask();
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as AskJson;
    assert.ok(out.answer.length > 0);
    assert.equal(out.frames.length, 6);
    assert.equal(out.tokens.visual_per_frame, N);
    assert.equal(out.tokens.visual_input, 6 * N);
    assert.equal(out.tokens.prompt, 6 * N + 1 + TEXT_TOKENS);
    assert.deepEqual(
      out.kept_per_frame,
      Array.from({ length: 6 }, () => Array.from({ length: N }, (_, i) => i)),
    );
  });

  for (const method of METHOD_NAMES.filter((m) => m !== 'none')) {
    it(`${method} at its default budget answers, keeping tokens inside each frame's grid`, () => {
      const r = ask('--method', method);
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout) as AskJson;
      assert.ok(out.answer.length > 0);
      assert.equal(out.kept_per_frame.length, 6);
      for (const kept of out.kept_per_frame) {
        assert.ok(
          kept.every((id, i) => Number.isInteger(id) && id >= 0 && id < N && (i === 0 || kept[i - 1] < id)),
          `kept ids ascend inside the 6×6 grid: ${kept}`,
        );
      }
      const last = out.tokens.stages.at(-1)?.tokens;
      assert.equal(
        out.kept_per_frame.reduce((a, k) => a + k.length, 0),
        last,
      );
      assert.ok(out.tokens.visual_layer_averaged < 6 * N, 'something was pruned before the LLM or inside it');
    });
  }
});

describe('sieve ask on a llava_onevision checkpoint: one image goes the anyres path', () => {
  let model: string;
  let image: string;
  before(async () => {
    model = tinyOnevisionCheckpoint(2);
    const { ffmpeg } = await ffmpegBinaries();
    image = join(tempDir('image'), 'frame.png');
    execFileSync(ffmpeg.path, ['-v', 'error', '-i', await testVideo(1), '-frames:v', '1', image]);
  });

  it('answers unpruned: base tile and the unpadded 3×3-tile grid of a 160×120 image, a newline per grid row', () => {
    const r = sieve('ask', image, QUESTION, '--model', model, '--max-new-tokens', '3', '--json');
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as AskJson;
    assert.ok(out.answer.length > 0);
    // 160×120 → pinpoint 144×144 (3×3 tiles of 12×12 patches), unpadded to 28×36 patches: no resize.
    assert.equal(out.tokens.visual_per_frame, 144 + 28 * 36);
    assert.equal(out.tokens.prompt, 144 + 28 * 36 + 28 + TEXT_TOKENS);
  });

  it('refuses to prune a single image with a usage error naming the method and the family', () => {
    const r = sieve('ask', image, QUESTION, '--model', model, '--max-new-tokens', '3', '--method', 'vitcop');
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /vitcop cannot prune a single image on llava_onevision/);
    assert.match(r.stderr, /hint: .*two or more frames/);
    assert.doesNotMatch(r.stderr, /\n\s+at .+:\d+:\d+/, 'no stack trace');
  });
});
