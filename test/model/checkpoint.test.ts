import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ModelError } from '../../src/errors.js';
import { loadCheckpoint } from '../../src/model/checkpoint.js';
import { type RandomCheckpointSpec, writeRandomCheckpoint } from '../../src/model/random-checkpoint.js';
import { openWeights } from '../../src/model/safetensors.js';
import { llavaConfig, tempDir } from '../helpers/fixtures.js';
import { maxRelativeError } from '../helpers/numeric.js';
import { LlavaReference } from '../reference/llava-reference.js';

const FIXTURES = join(import.meta.dirname, '../../../test/fixtures/hf-reference');

/** The fixtures' sizes: a random checkpoint with them must have exactly the fixture's tensors. */
function fixtureSpec(vision: 'clip' | 'siglip', text: 'llama' | 'qwen2'): RandomCheckpointSpec {
  return {
    vision: {
      family: vision,
      hiddenSize: 64,
      intermediateSize: 128,
      numLayers: 2,
      numHeads: 4,
      imageSize: 32,
      patchSize: 8,
    },
    text: {
      family: text,
      hiddenSize: 64,
      intermediateSize: 128,
      numLayers: 2,
      numHeads: 4,
      numKvHeads: 2,
      vocabSize: 128,
    },
    seed: 3,
  };
}

function write(spec: RandomCheckpointSpec): string {
  const dir = tempDir('ckpt');
  writeRandomCheckpoint(dir, spec);
  return dir;
}

function layout(dir: string): Record<string, number[]> {
  const store = openWeights(dir);
  const out = Object.fromEntries(store.names().map((n) => [n, store.shape(n)]));
  store.close();
  return out;
}

function std(values: Float32Array): number {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  return Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length);
}

/** Runs every part of the reference once and returns the names it read and the logits. */
function runReference(dir: string) {
  const ckpt = loadCheckpoint(dir);
  const config = llavaConfig(ckpt.config);
  const ref = new LlavaReference(config, ckpt.weights);
  const pixels = Float32Array.from({ length: 3 * config.vision.imageSize ** 2 }, (_, i) => Math.sin(i * 0.37));
  const vision = ref.vision(pixels);
  const image = ref.project(vision.features, vision.tokens);
  const prompt = ckpt.tokenizer.encode(
    ckpt.chatTemplate.renderChat(
      [
        {
          role: 'user',
          content: [
            { type: 'image', index: 1, timestamp: 0 },
            { type: 'text', text: 'what colour ?' },
          ],
        },
      ],
      { addGenerationPrompt: true },
    ),
  );
  const ids = prompt.flatMap((id) => (id === config.imageTokenId ? Array<number>(vision.tokens).fill(id) : [id]));
  const out = ref.decode(
    ref.embedPrompt(ids, image),
    ids.map((_, i) => i),
  );
  const names = ckpt.weights.names();
  ckpt.weights.close();
  return { config, ref, vision, image, out, names };
}

describe('random checkpoints', () => {
  for (const [vision, text, fixture] of [
    ['clip', 'llama', 'llava-tiny-clip-llama'],
    ['siglip', 'qwen2', 'llava-tiny-siglip-qwen2'],
  ] as const) {
    it(`${vision} + ${text}: exactly the tensor names and shapes transformers 4.46 saves`, () => {
      assert.deepEqual(layout(write(fixtureSpec(vision, text))), layout(join(FIXTURES, fixture)));
    });

    it(`${vision} + ${text}: the reference reads every tensor except the ones llava never uses`, () => {
      const { config, ref, names } = runReference(write(fixtureSpec(vision, text)));
      const missing = [...ref.readNames].filter((n) => !names.includes(n));
      assert.deepEqual(missing, []);
      const unused = names.filter((n) => !ref.readNames.has(n));
      const expectedUnused = (n: string) =>
        n.startsWith('vision_tower.vision_model.post_layernorm.') ||
        n.startsWith('vision_tower.vision_model.head.') ||
        Number(/encoder\.layers\.(\d+)\./.exec(n)?.[1] ?? -1) >= config.vision.featureLayer;
      assert.deepEqual(
        unused.filter((n) => !expectedUnused(n)),
        [],
      );
      assert.ok(unused.some((n) => n.includes(`encoder.layers.${config.vision.featureLayer}.`)));
    });
  }

  it('outputs are far from flat, and CLS attention is a distribution', () => {
    const { vision, out, image } = runReference(write(fixtureSpec('clip', 'llama')));
    const logits = out.logits!;
    assert.ok(std(logits) > 0.3, `logit std ${std(logits)}`);
    assert.ok(Math.max(...logits) - Math.min(...logits) > 2);
    assert.ok(std(image) > 0.1);
    // CLS row over all tokens sums to 1 per head; the selected patches miss only CLS itself.
    const total = vision.clsAttention.reduce((a, b) => a + b, 0);
    assert.ok(total > 0 && total < 4);
    assert.ok(std(vision.clsAttention) > 0.01, 'attention is not uniform');
    for (const k of out.kappa) assert.ok(std(k) > 0.01, 'κ varies over tokens');
  });

  it('SigLIP: the mean attention received sums to 1 over the patches', () => {
    const { vision } = runReference(write(fixtureSpec('siglip', 'qwen2')));
    assert.ok(Math.abs(vision.clsAttention.reduce((a, b) => a + b, 0) - 1) < 1e-5);
  });

  it('values depend on the seed only: same under sharding and close under F16/BF16', () => {
    const base = fixtureSpec('siglip', 'qwen2');
    const single = openWeights(write(base));
    const sharded = openWeights(write({ ...base, shards: 3, dtype: 'BF16' }));
    const half = openWeights(write({ ...base, dtype: 'F16' }));
    const reseeded = openWeights(write({ ...base, seed: 4 }));
    assert.equal(sharded.files.length, 4);
    assert.ok(sharded.files[0]!.endsWith('model.safetensors.index.json'));
    assert.deepEqual(sharded.names(), single.names());
    for (const name of single.names()) {
      const a = single.get(name);
      assert.ok(maxRelativeError(sharded.get(name), a) < 2 ** -8, name);
      assert.ok(maxRelativeError(half.get(name), a) < 2 ** -10, name);
    }
    const w = 'language_model.model.layers.0.self_attn.q_proj.weight';
    assert.ok(maxRelativeError(reseeded.get(w), single.get(w)) > 0.1);
    for (const s of [single, sharded, half, reseeded]) s.close();
  });

  it(
    'llama with attention/MLP biases and tied embeddings writes ' + '(and the reference reads) the matching tensors',
    () => {
      const spec = fixtureSpec('clip', 'llama');
      spec.text = { ...spec.text, attentionBias: true, mlpBias: true, tieWordEmbeddings: true };
      const dir = write(spec);
      const names = Object.keys(layout(dir));
      assert.ok(names.includes('language_model.model.layers.1.self_attn.o_proj.bias'));
      assert.ok(names.includes('language_model.model.layers.1.mlp.down_proj.bias'));
      assert.ok(!names.includes('language_model.lm_head.weight'));
      const { ref, out } = runReference(dir);
      assert.ok(ref.readNames.has('language_model.model.layers.1.mlp.gate_proj.bias'));
      assert.ok(out.logits!.every(Number.isFinite));
    },
  );
});

describe('loadCheckpoint', () => {
  it('loads every part and hashes config + weights, reusing cached hashes while size and mtime hold', async () => {
    const dir = write({ ...fixtureSpec('siglip', 'qwen2'), shards: 2 });
    const ckpt = loadCheckpoint(dir);
    assert.equal(ckpt.config.text.family, 'qwen2');
    assert.deepEqual(ckpt.family.decodeFit, { height: 32, width: 32 });
    assert.equal(ckpt.tokenizer.eosTokenId, 2);
    assert.deepEqual(
      ckpt.sourceFiles.map((f) => f.slice(dir.length + 1)),
      [
        'config.json',
        'model.safetensors.index.json',
        'model-00001-of-00002.safetensors',
        'model-00002-of-00002.safetensors',
      ],
    );
    ckpt.weights.close();

    const cachePath = join(tempDir('hash'), 'hashes.json');
    const hashes = await ckpt.hashSourceFiles(cachePath);
    const direct = createHash('sha256')
      .update(readFileSync(join(dir, 'config.json')))
      .digest('hex');
    assert.equal(hashes['config.json'], direct);
    assert.equal(Object.keys(hashes).length, 4);
    assert.deepEqual(await ckpt.hashSourceFiles(null), hashes);

    // A planted cache entry is trusted while size and mtime match, and dropped once the file changes.
    const cache = JSON.parse(readFileSync(cachePath, 'utf8'));
    cache[join(dir, 'config.json')].sha256 = 'planted';
    writeFileSync(cachePath, JSON.stringify(cache));
    assert.equal((await ckpt.hashSourceFiles(cachePath))['config.json'], 'planted');
    utimesSync(join(dir, 'config.json'), new Date(), new Date(Date.now() + 5000));
    assert.equal((await ckpt.hashSourceFiles(cachePath))['config.json'], direct);
  });

  it('says which file is missing and how to get it', () => {
    assert.throws(
      () => loadCheckpoint(join(tmpdir(), 'no-such-checkpoint')),
      (err: ModelError) =>
        err instanceof ModelError &&
        /does not exist/.test(err.message) &&
        /huggingface-cli download/.test(err.hint ?? ''),
    );
    for (const file of ['config.json', 'tokenizer_config.json', 'model.safetensors']) {
      const dir = write(fixtureSpec('clip', 'llama'));
      rmSync(join(dir, file));
      assert.throws(
        () => loadCheckpoint(dir),
        (err: ModelError) => err instanceof ModelError && err.message.includes(file) && !!err.hint,
        file,
      );
    }
  });

  it('rejects a config.json that does not match the weights', () => {
    const dir = write(fixtureSpec('clip', 'llama'));
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    config.text_config.vocab_size = 256;
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    assert.throws(
      () => loadCheckpoint(dir),
      (err: ModelError) => err instanceof ModelError && /vocab_size 256/.test(err.message),
    );
  });
});
