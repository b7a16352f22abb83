import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { UsageError } from '../errors.js';

/** Replaces ${NAME} and ${NAME:-default} with environment values; an unset name without a default is an error. */
export function substituteEnv(text: string, env: NodeJS.ProcessEnv, file: string): string {
  return text.replace(
    /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g,
    (_, name: string, fallback: string | undefined) => {
      const value = env[name] ?? fallback;
      if (value === undefined)
        throw new UsageError(
          `${file}: environment variable ${name} is not set`,
          `set it, or write \${${name}:-default}`,
        );
      return value;
    },
  );
}

/** Substitutes inside every string value (not in comments or keys); an empty key (`ffmpeg:`) counts as absent. */
function substituteValues(value: unknown, env: NodeJS.ProcessEnv, file: string): unknown {
  if (typeof value === 'string') return substituteEnv(value, env, file);
  if (Array.isArray(value)) return value.map((v) => substituteValues(v, env, file));
  if (value && typeof value === 'object')
    return Object.fromEntries(
      Object.entries(value)
        .filter(([, v]) => v !== null)
        .map(([k, v]) => [k, substituteValues(v, env, file)]),
    );
  return value;
}

/** Parses YAML (or JSON) text; a syntax error names the file and the position. */
export function parseYamlText(text: string, file: string): unknown {
  try {
    return parseYaml(text) ?? {};
  } catch (err) {
    throw new UsageError(
      `${file} is not valid YAML: ${(err as Error).message.split('\n')[0]}`,
      'fix the syntax (YAML or JSON)',
    );
  }
}

/**
 * Substitutes ${VAR} in a parsed document's values and validates it with `schema`. Problems name the
 * file and the key: `pipelines/x.yaml: cameras.door.source.url: expected string`.
 */
export function validateDocument<T extends z.ZodType>(
  raw: unknown,
  file: string,
  schema: T,
  env: NodeJS.ProcessEnv,
  readmeSection: string,
): z.output<T> {
  const result = schema.safeParse(substituteValues(raw, env, file));
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`).join('; ');
    throw new UsageError(`${file}: ${problems}`, `see ${readmeSection} of the README for the keys and their ranges`);
  }
  return result.data;
}
