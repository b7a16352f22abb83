import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { UsageError } from '../errors.js';
import { deviceConfigLayer, loadDevice } from './devices.js';
import { configSchema, type SieveConfig } from './schema.js';
import { parseYamlText, validateDocument } from './yaml-document.js';

export { parseYamlText, substituteEnv, validateDocument } from './yaml-document.js';

/**
 * Parses and validates a config document (YAML or JSON). A device profile (`device`, else the file's
 * `device:` key) lies under it: its values count unless the file sets them.
 */
export function parseConfig(
  text: string,
  file: string,
  env: NodeJS.ProcessEnv = process.env,
  device?: string,
): SieveConfig {
  const raw = withDevice(parseYamlText(text, file), device, env);
  const config = validateDocument(raw, file, configSchema, env, 'the configuration section');
  if (config.model && !isAbsolute(config.model)) config.model = join(dirname(resolve(file)), config.model);
  return config;
}

/**
 * The config in force: the file given (--config or $SIEVE_CONFIG), else ./sieve.yaml when present,
 * else the defaults. Command-line flags override what it says.
 */
export function loadConfig(
  explicit?: string,
  env: NodeJS.ProcessEnv = process.env,
  device?: string,
): { config: SieveConfig; file?: string } {
  const file = explicit ?? env.SIEVE_CONFIG ?? (existsSync('sieve.yaml') ? 'sieve.yaml' : undefined);
  if (!file) return { config: configSchema.parse(withDevice({}, device, env)) };
  if (!existsSync(file))
    throw new UsageError(`config file ${file} does not exist`, 'check the path given to --config or $SIEVE_CONFIG');
  return { config: parseConfig(readFileSync(file, 'utf8'), file, env, device), file };
}

/**
 * The raw config document over the named device profile: each of the profile's sections is taken
 * key by key where the document does not set the key; `sampling` is taken whole or not at all (frames
 * and fps exclude each other).
 */
function withDevice(raw: unknown, device: string | undefined, env: NodeJS.ProcessEnv): unknown {
  const doc = raw && typeof raw === 'object' && !Array.isArray(raw) ? (raw as Record<string, unknown>) : undefined;
  const name = device ?? (typeof doc?.device === 'string' ? doc.device : undefined);
  if (!doc || name === undefined) return raw;
  const layer = deviceConfigLayer(loadDevice(name, undefined, env));
  const merged: Record<string, unknown> = { ...doc, device: name };
  for (const [section, values] of Object.entries(layer)) {
    const own = doc[section];
    if (own === undefined || own === null) merged[section] = values;
    else if (section !== 'sampling' && typeof own === 'object')
      merged[section] = { ...(values as object), ...(own as object) };
  }
  return merged;
}
