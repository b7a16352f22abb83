import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO_ROOT, tempDir, tinyCheckpoint } from '../helpers/fixtures.js';

const doctor = (model: string) =>
  spawnSync(process.execPath, [join(REPO_ROOT, 'bin', 'sieve.js'), 'doctor'], {
    encoding: 'utf8',
    env: { ...process.env, SIEVE_MODEL: model },
  });

describe('sieve doctor', () => {
  it('says the default model loads, and lists the execution providers with whether their libraries exist', () => {
    const r = doctor(tinyCheckpoint());
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /default model\s+\S+ \(loads: clip 64 px \+ 4-layer decoder\)/);
    assert.match(r.stdout, /execution providers\s+cpu/);
  });

  it('calls a model with a 0-byte weights file broken, not present (exit 1)', () => {
    const dir = tempDir('doctor');
    cpSync(tinyCheckpoint(), dir, { recursive: true });
    writeFileSync(join(dir, 'model.safetensors'), '');
    const r = doctor(dir);
    assert.equal(r.status, 1);
    assert.match(r.stdout, /default model\s+broken: .*model\.safetensors/);
  });
});
