import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { ffmpegBinaries } from '../../src/media/ffmpeg-binaries.js';
import { DEFAULT_BUDGETS, METHOD_NAMES } from '../../src/prune/registry.js';
import { REPO_ROOT, tempDir, testVideo, tinyQwen2VlCheckpoint } from '../helpers/fixtures.js';

const SIEVE = join(REPO_ROOT, 'bin', 'sieve.js');

function sieve(...args: string[]) {
  const r = spawnSync(process.execPath, [SIEVE, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

// The tiny checkpoint's max_pixels (64·48) brings the 160×120 clip to 64×48: 12×16 patches, a 6×8 token grid.
const GRID = 6 * 8;

describe('sieve ask on a Qwen2-VL checkpoint, end to end on a real H.264 video', () => {
  let model: string;
  let video: string;
  before(async () => {
    model = tinyQwen2VlCheckpoint();
    video = await testVideo();
    // Convert once with every pruning method's layers, so the runs below reuse the graphs.
    const warm = sieve('ask', video, 'is there a circle ?', '--model', model, '--max-new-tokens', '1', '--json');
    assert.equal(warm.code, 0, warm.stderr);
  });

  const ask = (...extra: string[]) =>
    sieve('ask', video, 'what colour is the square ?', '--model', model, '--frames', '6', '--json', ...extra);

  it('answers unpruned: 6 frames make 3 temporal slices of 6×8 tokens, every one kept', () => {
    const r = ask('--max-new-tokens', '4');
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(typeof out.answer, 'string');
    assert.ok(out.answer.length > 0);
    assert.equal(out.frames.length, 6);
    assert.equal(out.tokens.visual_per_frame, GRID);
    assert.equal(out.tokens.visual_input, 3 * GRID);
    assert.equal(out.tokens.input_budget, 1);
    assert.deepEqual(
      out.kept_per_frame,
      Array.from({ length: 3 }, () => Array.from({ length: GRID }, (_, i) => i)),
    );
    // The chat template's text around one <|vision_start|><|video_pad|><|vision_end|>.
    assert.equal(out.tokens.prompt, 3 * GRID + 22);
  });

  it('answers about a single image: one unit of <|image_pad|> tokens', async () => {
    const { ffmpeg } = await ffmpegBinaries();
    const png = join(tempDir('image'), 'frame.png');
    execFileSync(ffmpeg.path, ['-v', 'error', '-f', 'lavfi', '-i', 'testsrc=size=160x120', '-frames:v', '1', png]);
    const r = sieve('ask', png, 'what colour is the square ?', '--model', model, '--max-new-tokens', '2', '--json');
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.tokens.visual_input, GRID);
    assert.equal(out.kept_per_frame.length, 1);
    // The system prompt, <|vision_start|> the image's pads <|vision_end|>, the question, the generation prompt.
    assert.equal(out.tokens.prompt, GRID + 22);
  });

  for (const method of METHOD_NAMES) {
    it(`--method ${method} at its default budget answers within each unit's grid, or refuses clearly`, () => {
      const r = ask('--method', method, '--max-new-tokens', '2');
      if (r.code === 2) {
        // A budget the method cannot reach on a 4-layer model is a usage error naming the method.
        assert.match(r.stderr, new RegExp(`^error: .*${method}`, 'm'));
        assert.doesNotMatch(r.stderr, /\n\s+at .+:\d+:\d+/, 'no stack trace');
        return;
      }
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout);
      assert.equal(out.method, method);
      assert.equal(typeof out.answer, 'string');
      const kept: number[][] = out.kept_per_frame;
      assert.equal(kept.length, 3, 'one list per temporal slice');
      for (const ids of kept) {
        assert.ok(ids.length >= 1, `${method}: every unit keeps a token`);
        assert.ok(
          ids.every((id) => Number.isInteger(id) && id >= 0 && id < GRID),
          `${method}: kept ids inside the grid: ${ids}`,
        );
        assert.equal(new Set(ids).size, ids.length, `${method}: no id twice`);
      }
      const budget = DEFAULT_BUDGETS[method];
      assert.ok(
        out.tokens.layer_averaged_budget <= budget + 2 / (3 * GRID),
        `${method}: layer-averaged ${out.tokens.layer_averaged_budget} within the budget ${budget}`,
      );
    });
  }

  it('--show-kept is refused on Qwen2-VL (its frames are not square encoder inputs)', () => {
    const r = ask('--show-kept', tempDir('kept'));
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /show-kept/);
  });
});
