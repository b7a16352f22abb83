import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { REPO_ROOT, tempDir } from '../helpers/fixtures.js';

const sieve = (...args: string[]) =>
  spawnSync(process.execPath, [join(REPO_ROOT, 'bin', 'sieve.js'), ...args], { encoding: 'utf8', timeout: 300_000 });

const EXAMPLES = join(REPO_ROOT, 'models', 'demo', 'examples');

/** Two shipped clips in a folder and their labelled questions as JSON lines. */
function tuneInputs(): { videos: string; questions: string; count: number } {
  const videos = tempDir('tune-videos');
  const records = readFileSync(join(EXAMPLES, 'test.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { video: string; question: string; answer: string })
    .filter((r) => /test-200000000[01]\.mp4$/.test(r.video))
    .slice(0, 6);
  for (const r of records) copyFileSync(join(EXAMPLES, r.video), join(videos, r.video.replace('videos/', '')));
  const questions = join(tempDir('tune-questions'), 'questions.jsonl');
  writeFileSync(
    questions,
    records
      .map((r) => JSON.stringify({ video: r.video.replace('videos/', ''), question: r.question, answer: r.answer }))
      .join('\n'),
  );
  return { videos, questions, count: records.length };
}

describe('sieve tune', () => {
  it('measures agreement per method and budget, recommends one, writes it into a pipeline, and resumes', () => {
    const { videos, questions, count } = tuneInputs();
    const out = tempDir('tune-out');
    const pipeline = join(out, 'cameras.yaml');
    writeFileSync(
      pipeline,
      '# two cameras\nmodel: ../models/demo\ncameras:\n  a:\n    source: {type: file, path: a.mp4}\n' +
        '  b:\n    source: {type: file, path: b.mp4}\n    pruning: {method: pool}\n',
    );
    const args = ['tune', '--videos', videos, '--questions', questions, '--methods', 'pool,divprune'];
    const first = sieve(...args, '--budgets', '0.5', '--out', out, '--write', pipeline);
    assert.equal(first.status, 0, first.stderr);
    assert.match(first.stdout, /\| none \| 1 \| 100\.0% \| /);
    const report = JSON.parse(readFileSync(join(out, 'tune.json'), 'utf8'));
    assert.deepEqual(
      report.rows.map((r: { method: string; budget: number }) => `${r.method}@${r.budget}`),
      ['none@1', 'pool@0.5', 'divprune@0.5'],
    );
    for (const row of report.rows) {
      assert.equal(row.answered, count);
      assert.ok(row.agreement >= 0 && row.agreement <= 1);
      assert.ok(row.accuracy !== undefined, 'labelled questions give an accuracy');
    }
    const none = report.rows[0];
    for (const row of report.rows.slice(1)) assert.ok(row.meanVisualTokens < none.meanVisualTokens, 'pruned runs');
    const { method, budget } = report.recommended;
    const chosen = report.rows.find(
      (r: { method: string; budget: number }) => r.method === method && r.budget === budget,
    );
    assert.ok(method === 'none' || chosen.agreement >= 0.95, 'the recommendation keeps the target agreement');
    assert.ok(existsSync(join(out, 'tune.svg')) && existsSync(join(out, 'tune.png')), 'plot written');
    assert.match(readFileSync(join(out, 'tune.svg'), 'utf8'), /<svg[^>]*>[\s\S]*divprune[\s\S]*<\/svg>/);

    const written = parse(readFileSync(pipeline, 'utf8'));
    for (const camera of ['a', 'b']) assert.equal(written.cameras[camera].pruning.method, method);
    assert.match(readFileSync(pipeline, 'utf8'), /^# two cameras/, 'comments kept');

    // The state holds every answer: a second run with one more budget only asks the new ones.
    const lines = readFileSync(join(out, 'state.jsonl'), 'utf8').trim().split('\n');
    assert.equal(lines.length, 1 + 3 * count);
    const second = sieve(...args, '--budgets', '0.5,0.25', '--out', out);
    assert.equal(second.status, 0, second.stderr);
    assert.match(second.stderr, new RegExp(`resuming: ${3 * count} of ${5 * count} answers`));
    assert.equal(readFileSync(join(out, 'state.jsonl'), 'utf8').trim().split('\n').length, 1 + 5 * count);

    // Under a memory budget the planner's peak is in the table and filters the recommendation.
    const roomy = sieve(...args, '--budgets', '0.5,0.25', '--out', out, '--memory-budget', '100000');
    assert.equal(roomy.status, 0, roomy.stderr);
    assert.match(roomy.stdout, /\| predicted peak \|/);
    const planned = JSON.parse(readFileSync(join(out, 'tune.json'), 'utf8'));
    for (const row of planned.rows) assert.ok(row.predictedPeakBytes > 50 * 1024 * 1024, `${row.method} planned`);
    const tight = sieve(...args, '--budgets', '0.5,0.25', '--out', out, '--memory-budget', '1');
    assert.equal(tight.status, 0, tight.stderr);
    assert.match(
      tight.stdout,
      /Recommended: \*\*none @ 1\*\*: .*fit the memory budget.*baseline does not fit it either/,
    );
  });

  it('refuses bad inputs with the file and line, and a state file made under other settings', () => {
    const { videos } = tuneInputs();
    const questions = join(tempDir('tune-bad'), 'q.jsonl');
    writeFileSync(questions, '{"question": "what colour is the circle ?"}\n{"question": \n');
    const bad = sieve('tune', '--videos', videos, '--questions', questions, '--out', tempDir('tune-bad-out'));
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /q\.jsonl:2 is not valid JSON/);
    const empty = sieve('tune', '--videos', tempDir('no-videos'));
    assert.equal(empty.status, 2);
    assert.match(empty.stderr, /no videos in/);

    const out = tempDir('tune-settings');
    const plain = join(tempDir('tune-plain'), 'q.txt');
    writeFileSync(plain, 'what colour is the circle ?\n');
    const base = ['tune', '--videos', videos, '--questions', plain, '--methods', 'pool', '--budgets', '0.5'];
    assert.equal(sieve(...base, '--out', out).status, 0);
    const other = sieve(...base, '--out', out, '--frames', '4');
    assert.equal(other.status, 2);
    assert.match(other.stderr, /other settings[\s\S]*--restart/);
    assert.equal(sieve(...base, '--out', out, '--frames', '4', '--restart').status, 0);
  });
});
