import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import sharp from 'sharp';
import { DEFAULT_BUDGETS, METHOD_NAMES } from '../../src/prune/registry.js';
import { REPO_ROOT, tempDir, testVideo } from '../helpers/fixtures.js';
import { tinyIdefics3Checkpoint } from '../helpers/idefics3-checkpoint.js';

const SIEVE = join(REPO_ROOT, 'bin', 'sieve.js');
const FRAMES = 4;
const TOKENS_PER_FRAME = 16;

function sieve(...args: string[]) {
  const r = spawnSync(process.execPath, [SIEVE, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface AskJson {
  answer: string;
  frames: { index: number; t: number }[];
  tokens: { prompt: number; visual_per_frame: number; visual_input: number; stages: { stage: string }[] };
  kept_per_frame: number[][];
}

describe('sieve ask on a SmolVLM2 (smolvlm) checkpoint, end to end on a real H.264 video', () => {
  let model: string;
  let video: string;
  const ask = (...extra: string[]) =>
    sieve(
      'ask',
      video,
      'what colour is the square ?',
      '--model',
      model,
      '--frames',
      String(FRAMES),
      '--max-new-tokens',
      '3',
      '--json',
      ...extra,
    );
  before(async () => {
    model = tinyIdefics3Checkpoint();
    video = await testVideo();
  });

  it('answers unpruned: one unit of 16 tokens per frame, the prompt in SmolVLM2 video layout', () => {
    const r = ask();
    assert.equal(r.code, 0, r.stderr);
    const out: AskJson = JSON.parse(r.stdout);
    assert.ok(out.answer.length > 0);
    assert.equal(out.frames.length, FRAMES);
    assert.equal(out.tokens.visual_per_frame, TOKENS_PER_FRAME);
    assert.equal(out.tokens.visual_input, FRAMES * TOKENS_PER_FRAME);
    assert.deepEqual(
      out.kept_per_frame,
      Array.from({ length: FRAMES }, () => Array.from({ length: TOKENS_PER_FRAME }, (_, i) => i)),
    );
  });

  for (const method of METHOD_NAMES) {
    it(`--method ${method} at its default budget answers with kept tokens inside each frame's grid, or refuses`, () => {
      const r = ask('--method', method);
      if (r.code !== 0) {
        assert.equal(r.code, 2, `a refusal is a usage error: ${r.stderr}`);
        assert.match(r.stderr, new RegExp(method));
        assert.doesNotMatch(r.stderr, /\n\s+at .+:\d+:\d+/, 'no stack trace');
        return;
      }
      const out: AskJson = JSON.parse(r.stdout);
      assert.ok(out.answer.length > 0, method);
      assert.equal(out.kept_per_frame.length, FRAMES);
      for (const kept of out.kept_per_frame) {
        assert.deepEqual(
          kept,
          [...new Set(kept)].sort((a, b) => a - b),
          'ascending, each once',
        );
        for (const id of kept) assert.ok(Number.isInteger(id) && id >= 0 && id < TOKENS_PER_FRAME, `${id}`);
      }
      const kept = out.kept_per_frame.flat().length;
      if (method === 'none') assert.equal(kept, FRAMES * TOKENS_PER_FRAME);
      else assert.ok(kept <= Math.ceil(FRAMES * TOKENS_PER_FRAME * DEFAULT_BUDGETS[method]) + FRAMES, `${kept}`);
    });
  }

  it('answers about a single image as a one-frame video (one unit, not split into tiles)', async () => {
    const png = join(tempDir('image'), 'red.png');
    await sharp({ create: { width: 48, height: 36, channels: 3, background: { r: 200, g: 30, b: 30 } } })
      .png()
      .toFile(png);
    const r = sieve('ask', png, 'what colour is it ?', '--model', model, '--max-new-tokens', '2', '--json');
    assert.equal(r.code, 0, r.stderr);
    const out: AskJson = JSON.parse(r.stdout);
    assert.equal(out.frames.length, 1);
    assert.equal(out.tokens.visual_input, TOKENS_PER_FRAME);
  });

  it('--show-kept is refused: SmolVLM squashes frames into squares, the overlay crops them', () => {
    const r = ask('--show-kept', join(model, 'kept'));
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--show-kept .*smolvlm/);
  });
});
