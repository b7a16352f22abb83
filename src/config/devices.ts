import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { PACKAGE_ROOT } from '../cli/default-model.js';
import { UsageError } from '../errors.js';
import { MAX_FRAMES } from '../media/frame.js';
import { WEIGHT_DTYPES } from '../onnx/layers.js';
import { numeric } from './schema.js';
import { parseYamlText, validateDocument } from './yaml-document.js';

/** Where the shipped device profiles live: config/devices/NAME.yaml. */
export const DEVICES_DIR = join(PACKAGE_ROOT, 'config', 'devices');

/** A device profile: what a deployment on that device runs with unless the config or flags say otherwise. */
export const deviceSchema = z
  .object({
    description: z.string(),
    memory: z.object({ budget_mb: numeric(z.number().positive()) }).strict(),
    runtime: z
      .object({
        ep: z.enum(['cpu', 'cuda', 'tensorrt']),
        dtype: z.enum(WEIGHT_DTYPES),
        threads: numeric(z.number().int().min(0)),
      })
      .strict(),
    sampling: z.object({ frames: numeric(z.number().int().min(1).max(MAX_FRAMES)) }).strict(),
  })
  .strict();

export type DeviceProfile = z.infer<typeof deviceSchema>;

/** The names of the shipped profiles, sorted. */
export function deviceNames(dir = DEVICES_DIR): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => f.slice(0, -'.yaml'.length))
    .sort();
}

/** Reads and validates config/devices/NAME.yaml; an unknown name lists the profiles there are. */
export function loadDevice(name: string, dir = DEVICES_DIR, env: NodeJS.ProcessEnv = process.env): DeviceProfile {
  const names = deviceNames(dir);
  if (!names.includes(name)) {
    throw new UsageError(
      `no device profile named "${name}"`,
      `use one of: ${names.join(', ')} (config/devices/NAME.yaml)`,
    );
  }
  const file = join(dir, `${name}.yaml`);
  return validateDocument(parseYamlText(readFileSync(file, 'utf8'), file), file, deviceSchema, env, 'Device profiles');
}

/** A profile as config-file values, the layer under what the config file itself says. */
export function deviceConfigLayer(profile: DeviceProfile): Record<string, unknown> {
  return { memory: profile.memory, runtime: profile.runtime, sampling: profile.sampling };
}
