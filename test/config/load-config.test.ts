// biome-ignore-all lint/suspicious/noTemplateCurlyInString: these tests feed the literal ${VAR} syntax to the loader
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig, parseConfig } from '../../src/config/load-config.js';
import { UsageError } from '../../src/errors.js';
import { REPO_ROOT } from '../helpers/fixtures.js';

describe('config files', () => {
  it('the shipped example parses and states the defaults', () => {
    const { config } = loadConfig(join(REPO_ROOT, 'config', 'sieve.example.yaml'), {});
    assert.equal(config.pruning.method, 'none');
    assert.equal(config.sampling.frames, 8);
    assert.equal(config.pruning.options.vitcop.tau_static, 0.9);
  });

  it('substitutes ${VAR} and ${VAR:-default} in values, and resolves the model next to the file', () => {
    const c = parseConfig(
      'model: ${MODELS}/demo\npruning: { method: "${METHOD:-vitcop}", budget: 0.111 }\n',
      '/etc/sieve/sieve.yaml',
      { MODELS: 'm' },
    );
    assert.equal(c.model, '/etc/sieve/m/demo');
    assert.equal(c.pruning.method, 'vitcop');
    assert.throws(() => parseConfig('model: ${UNSET}\n', 'x.yaml', {}), /UNSET is not set/);
  });

  it('numbers from ${VAR} are numbers: coerced after substitution where the key takes a number', () => {
    const c = parseConfig(
      [
        'runtime: { threads: "${THREADS}" }',
        'sampling: { frames: "${FRAMES:-12}" }',
        'generation: { temperature: "${TEMP:-0.5}", max_new_tokens: "${MAX}" }',
        'pruning: { method: vitcop, budget: "${BUDGET}" }',
      ].join('\n'),
      'c.yaml',
      { THREADS: '2', MAX: '16', BUDGET: '0.222' },
    );
    assert.equal(c.runtime.threads, 2);
    assert.equal(c.sampling.frames, 12);
    assert.equal(c.generation.temperature, 0.5);
    assert.equal(c.generation.max_new_tokens, 16);
    assert.equal(c.pruning.budget, 0.222);
    assert.throws(() => parseConfig('runtime: { threads: "${T}" }', 'c.yaml', { T: 'two' }), /runtime\.threads/);
    assert.throws(() => parseConfig('sampling: { frames: "${F}" }', 'c.yaml', { F: '2000' }), /sampling\.frames/);
  });

  it('names the key and the problem for bad values, unknown keys and broken YAML', () => {
    assert.throws(
      () => parseConfig('pruning: { budget: 2 }', 'c.yaml', {}),
      (e: Error) => e instanceof UsageError && /pruning\.budget/.test(e.message),
    );
    assert.throws(() => parseConfig('runtime: { ep: gpu }', 'c.yaml', {}), /runtime\.ep/);
    assert.throws(() => parseConfig('sampling: { frames: 4, fps: 1 }', 'c.yaml', {}), /frames or fps/);
    assert.throws(() => parseConfig('colour: red', 'c.yaml', {}), /Unrecognized key/);
    assert.throws(() => parseConfig('runtime: [ep', 'c.yaml', {}), /not valid YAML/);
    assert.throws(() => loadConfig('/no/such/sieve.yaml', {}), /does not exist/);
  });
});
