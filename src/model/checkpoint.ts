import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { ModelError } from '../errors.js';
import { familyFor } from '../family/family-for.js';
import type { ModelFamily } from '../family/model-family.js';
import { type ChatTemplate, loadChatTemplate } from './chat-template.js';
import { isObject } from './json-file.js';
import { readModelConfig } from './model-config.js';
import { openWeights, type WeightStore } from './safetensors.js';
import { loadTokenizer, type TextTokenizer } from './tokenizer.js';
import type { ModelConfig } from './vlm-config.js';

export interface Checkpoint {
  dir: string;
  config: ModelConfig;
  weights: WeightStore;
  tokenizer: TextTokenizer;
  chatTemplate: ChatTemplate;
  /** The architecture's processor and prompt layout. */
  family: ModelFamily;
  /** What built graphs depend on: config.json and the weight files (index first when sharded). */
  sourceFiles: string[];
  /** sha256 of `sourceFiles` (relative path → hex), see hashFiles. */
  hashSourceFiles(cachePath?: string | null): Promise<Record<string, string>>;
}

const DOWNLOAD_HINT = 'download the complete checkpoint, e.g. `huggingface-cli download <repo> --local-dir <dir>`';

/** Loads a Hugging Face llava checkpoint folder. Close `weights` when done. */
export function loadCheckpoint(dir: string): Checkpoint {
  const root = resolve(dir);
  if (!existsSync(root)) throw new ModelError(`checkpoint folder ${root} does not exist`, DOWNLOAD_HINT);
  if (!statSync(root).isDirectory()) {
    throw new ModelError(
      `${root} is a file, not a checkpoint folder`,
      '--model takes the folder that holds config.json, the *.safetensors and the tokenizer files',
    );
  }
  for (const name of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) {
    if (!existsSync(join(root, name))) throw new ModelError(`${join(root, name)} is missing`, DOWNLOAD_HINT);
  }
  const config = readModelConfig(root);
  const tokenizer = loadTokenizer(root);
  const chatTemplate = loadChatTemplate(root, tokenizer.specialTokens);
  const family = familyFor(config, { dir: root, tokenizer, chatTemplate });
  const weights = openWeights(root);
  try {
    checkEmbedding(config, weights);
  } catch (err) {
    weights.close();
    throw err;
  }
  const sourceFiles = [join(root, 'config.json'), ...weights.files];
  return {
    dir: root,
    config,
    weights,
    tokenizer,
    chatTemplate,
    family,
    sourceFiles,
    hashSourceFiles: (cachePath?: string | null) => hashFiles(root, sourceFiles, cachePath),
  };
}

/** A cheap consistency check that catches a config.json that belongs to another checkpoint. */
function checkEmbedding(config: ModelConfig, weights: WeightStore): void {
  const name = [
    'language_model.model.embed_tokens.weight',
    'model.language_model.embed_tokens.weight',
    'model.text_model.embed_tokens.weight',
  ].find((n) => weights.has(n));
  if (!name) return;
  const [vocab, hidden] = weights.shape(name);
  const t = config.text;
  if (vocab !== t.vocabSize || hidden !== t.hiddenSize) {
    throw new ModelError(
      `${name} is ${vocab}×${hidden} but config.json says vocab_size ${t.vocabSize}, hidden_size ${t.hiddenSize}`,
      'config.json and the weights do not belong together: download the checkpoint again',
    );
  }
}

interface CacheEntry {
  size: number;
  mtimeMs: number;
  sha256: string;
}

/** Per-user cache of source file hashes, keyed by absolute path. */
export function defaultHashCachePath(): string {
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'vlm-sieve', 'source-hashes.json');
}

/**
 * sha256 of each file (relative path → hex), streamed. Hashing runs at roughly 1 GB/s, i.e. seconds
 * for every run on a multi-GB checkpoint, so a file whose size and mtime match the cache entry from
 * its last hashing reuses that hash (the trust `make` puts in mtimes; a checkpoint is replaced by
 * downloading new files, not edited in place). `cachePath: null` always hashes.
 */
export async function hashFiles(
  dir: string,
  files: readonly string[],
  cachePath: string | null = defaultHashCachePath(),
): Promise<Record<string, string>> {
  const cache = cachePath ? readCache(cachePath) : {};
  const result: Record<string, string> = {};
  for (const path of files) {
    const abs = resolve(path);
    const { size, mtimeMs } = statSync(abs);
    const cached = cache[abs];
    const sha256 = cached && cached.size === size && cached.mtimeMs === mtimeMs ? cached.sha256 : await sha256File(abs);
    cache[abs] = { size, mtimeMs, sha256 };
    result[relative(dir, abs)] = sha256;
  }
  if (cachePath) writeCache(cachePath, cache);
  return result;
}

function writeCache(path: string, cache: Record<string, CacheEntry>): void {
  try {
    mkdirSync(dirname(path), { recursive: true });
    const partial = `${path}.${process.pid}.partial`;
    writeFileSync(partial, JSON.stringify(cache));
    renameSync(partial, path); // atomic, so concurrent runs never read half a file
  } catch {
    // an unwritable cache only costs a rehash next time
  }
}

function readCache(path: string): Record<string, CacheEntry> {
  try {
    const value: unknown = JSON.parse(readFileSync(path, 'utf8'));
    return isObject(value) ? (value as Record<string, CacheEntry>) : {};
  } catch {
    return {}; // a missing or damaged cache only costs a rehash
  }
}

function sha256File(path: string): Promise<string> {
  return new Promise((done, fail) => {
    const hash = createHash('sha256');
    createReadStream(path, { highWaterMark: 4 << 20 })
      .on('data', (chunk) => hash.update(chunk))
      .on('error', (err) =>
        fail(new ModelError(`cannot read ${path}: ${err.message}`, 'check that the file exists and is readable')),
      )
      .on('end', () => done(hash.digest('hex')));
  });
}
