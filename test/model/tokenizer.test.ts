import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ModelError } from '../../src/errors.js';
import { type ChatMessage, loadChatTemplate } from '../../src/model/chat-template.js';
import { readVlmConfig } from '../../src/model/config.js';
import { readProcessorConfig } from '../../src/model/processor-config.js';
import { type RandomCheckpointSpec, writeRandomCheckpoint } from '../../src/model/random-checkpoint.js';
import { loadTokenizer } from '../../src/model/tokenizer.js';
import { tempDir } from '../helpers/fixtures.js';

const SPEC: RandomCheckpointSpec = {
  vision: {
    family: 'clip',
    hiddenSize: 32,
    intermediateSize: 64,
    numLayers: 2,
    numHeads: 2,
    imageSize: 16,
    patchSize: 8,
  },
  text: {
    family: 'llama',
    hiddenSize: 32,
    intermediateSize: 64,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    vocabSize: 160,
  },
  seed: 1,
};

function randomDir(spec: RandomCheckpointSpec = SPEC): string {
  const dir = tempDir('tok');
  writeRandomCheckpoint(dir, spec);
  return dir;
}

const MESSAGES: ChatMessage[] = [
  {
    role: 'user',
    content: [
      { type: 'image', index: 1, timestamp: 0 },
      { type: 'image', index: 2, timestamp: 0.5 },
      { type: 'text', text: 'what colour is the square ?' },
    ],
  },
];

describe('tokenizer', () => {
  const dir = randomDir();
  const tok = loadTokenizer(dir);

  it('encodes words, the image token and unknown words; special tokens only when asked', () => {
    const ids = tok.encode('what colour is the square ?');
    assert.equal(ids.length, 6);
    assert.ok(!ids.includes(3), 'all words are in the vocabulary');
    assert.deepEqual(tok.encode('frame 2 <image> zebra'), [tok.tokenToId('frame'), tok.tokenToId('2'), 4, 3]);
    assert.deepEqual(tok.encode('yes', { addSpecialTokens: true }), [1, tok.tokenToId('yes')]);
  });

  it('knows bos/eos and maps tokens both ways', () => {
    assert.equal(tok.bosTokenId, 1);
    assert.equal(tok.eosTokenId, 2);
    assert.equal(tok.tokenToId('<image>'), 4);
    assert.equal(tok.idToToken(4), '<image>');
    assert.equal(tok.tokenToId('no-such-token'), undefined);
  });

  it('decodes, optionally without special tokens', () => {
    const ids = [1, ...tok.encode('the red circle'), 2];
    assert.equal(tok.decode(ids), '<s> the red circle </s>');
    assert.equal(tok.decode(ids, { skipSpecialTokens: true }), 'the red circle');
    assert.equal(tok.decode([]), '');
  });

  it('reports a missing tokenizer.json with the path', () => {
    const broken = randomDir();
    rmSync(join(broken, 'tokenizer.json'));
    assert.throws(
      () => loadTokenizer(broken),
      (err: ModelError) => err instanceof ModelError && err.message.includes(join(broken, 'tokenizer.json')),
    );
  });
});

describe('chat template', () => {
  it('renders the random checkpoint template: frame markers, text, generation prompt', () => {
    const dir = randomDir();
    const tok = loadTokenizer(dir);
    const template = loadChatTemplate(dir, tok.specialTokens);
    const text = template.renderChat(MESSAGES, { addGenerationPrompt: true });
    assert.equal(text, '<s>user: frame 1 <image> frame 2 <image> what colour is the square ?\nassistant:');
    assert.equal(
      template.renderChat(MESSAGES),
      '<s>user: frame 1 <image> frame 2 <image> what colour is the square ?\n',
    );
    const ids = tok.encode(text);
    assert.equal(ids[0], 1);
    assert.equal(ids.filter((id) => id === 4).length, 2);
    assert.ok(!ids.includes(3), 'every rendered word is in the vocabulary');
  });

  it(
    'prefers chat_template.jinja, then chat_template.json, then tokenizer_config.json; ' +
      'a named list picks "default"',
    () => {
      const dir = randomDir();
      const specials = loadTokenizer(dir).specialTokens;
      // The standard llava-hf template (with a {% generation %} block) prints just <image>.
      const llavaHf =
        "{% for message in messages %}{% if message['role'] != 'system' %}" +
        "{{ message['role'].upper() + ': '}}{% endif %}" +
        "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}" +
        "{{ '<image>\\n' }}{% endfor %}" +
        "{% if message['role'] != 'assistant' %}" +
        "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}" +
        "{{ content['text'] + ' '}}{% endfor %}" +
        "{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}" +
        "{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}" +
        "{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}";
      writeFileSync(join(dir, 'chat_template.json'), JSON.stringify({ chat_template: llavaHf }));
      const fromJson = loadChatTemplate(dir, specials);
      assert.equal(fromJson.file, join(dir, 'chat_template.json'));
      assert.equal(
        fromJson.renderChat(MESSAGES, { addGenerationPrompt: true }),
        'USER: <image>\n<image>\nwhat colour is the square ? ASSISTANT:',
      );

      writeFileSync(join(dir, 'chat_template.jinja'), '{{ eos_token }}{{ messages | length }}');
      assert.equal(loadChatTemplate(dir, specials).renderChat(MESSAGES), '</s>1');

      rmSync(join(dir, 'chat_template.jinja'));
      writeFileSync(
        join(dir, 'chat_template.json'),
        JSON.stringify({
          chat_template: [
            { name: 'tool_use', template: 'T' },
            { name: 'default', template: 'D' },
          ],
        }),
      );
      assert.equal(loadChatTemplate(dir, specials).renderChat(MESSAGES), 'D');
    },
  );

  it('a missing template or a template error is a ModelError', () => {
    const dir = randomDir();
    const specials = loadTokenizer(dir).specialTokens;
    const config = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'));
    delete config.chat_template;
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(config));
    assert.throws(
      () => loadChatTemplate(dir, specials),
      (err: ModelError) => err instanceof ModelError && /no chat template/.test(err.message) && !!err.hint,
    );

    writeFileSync(join(dir, 'chat_template.jinja'), "{{ raise_exception('roles must alternate') }}");
    assert.throws(
      () => loadChatTemplate(dir, specials).renderChat(MESSAGES),
      (err: ModelError) => err instanceof ModelError && /roles must alternate/.test(err.message),
    );
    writeFileSync(join(dir, 'chat_template.jinja'), '{% for x in %}');
    assert.throws(
      () => loadChatTemplate(dir, specials),
      (err: ModelError) => err instanceof ModelError && err.message.includes('chat_template.jinja'),
    );
  });
});

describe('processor config', () => {
  it('reads the random checkpoints (CLIP: shortest edge + crop; SigLIP: square resize)', () => {
    const clipDir = randomDir();
    const clip = readProcessorConfig(clipDir, readVlmConfig(clipDir).vision);
    assert.deepEqual(clip, {
      doResize: true,
      size: { shortestEdge: 16 },
      resample: 'bicubic',
      doCenterCrop: true,
      cropSize: { height: 16, width: 16 },
      doRescale: true,
      rescaleFactor: 1 / 255,
      doNormalize: true,
      imageMean: [0.48145466, 0.4578275, 0.40821073],
      imageStd: [0.26862954, 0.26130258, 0.27577711],
    });
    const siglipDir = randomDir({ ...SPEC, vision: { ...SPEC.vision, family: 'siglip' } });
    const siglip = readProcessorConfig(siglipDir, readVlmConfig(siglipDir).vision);
    assert.deepEqual(siglip.size, { height: 16, width: 16 });
    assert.equal(siglip.doCenterCrop, false);
    assert.deepEqual(siglip.imageMean, [0.5, 0.5, 0.5]);
  });

  it('falls back to the vision family defaults without the file, and reads legacy int sizes', () => {
    const dir = randomDir();
    const vision = readVlmConfig(dir).vision;
    rmSync(join(dir, 'preprocessor_config.json'));
    const defaults = readProcessorConfig(dir, vision);
    assert.deepEqual(defaults.size, { shortestEdge: 16 });
    assert.equal(defaults.doCenterCrop, true);
    writeFileSync(
      join(dir, 'preprocessor_config.json'),
      JSON.stringify({ size: 20, crop_size: 16, resample: 2, image_mean: 0.5 }),
    );
    const legacy = readProcessorConfig(dir, vision);
    assert.deepEqual(legacy.size, { shortestEdge: 20 });
    assert.deepEqual(legacy.cropSize, { height: 16, width: 16 });
    assert.equal(legacy.resample, 'bilinear');
    assert.deepEqual(legacy.imageMean, [0.5, 0.5, 0.5]);
  });

  it('rejects a config whose output size does not fit the vision tower, or bad fields', () => {
    const dir = randomDir();
    const vision = readVlmConfig(dir).vision;
    writeFileSync(join(dir, 'preprocessor_config.json'), JSON.stringify({ crop_size: { height: 336, width: 336 } }));
    assert.throws(
      () => readProcessorConfig(dir, vision),
      (err: ModelError) => err instanceof ModelError && /336×336/.test(err.message) && /16×16/.test(err.message),
    );
    writeFileSync(join(dir, 'preprocessor_config.json'), JSON.stringify({ image_std: [0.5, 0.5] }));
    assert.throws(
      () => readProcessorConfig(dir, vision),
      (err: ModelError) => err instanceof ModelError && /image_std/.test(err.message),
    );
  });
});
