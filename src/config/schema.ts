import { z } from 'zod';
import { MAX_FRAMES } from '../media/frame.js';
import { VISION_DTYPES, WEIGHT_DTYPES } from '../onnx/layers.js';

/**
 * A number written as such, or as the text of a substituted `${VAR}` (which is always a string):
 * "2" and "0.5" count as numbers, anything else is left for the schema to refuse.
 */
export function numeric<T extends z.ZodType>(schema: T) {
  return z.preprocess((v) => (typeof v === 'string' && NUMBER_TEXT.test(v) ? Number(v) : v), schema);
}
const NUMBER_TEXT = /^\s*[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?\s*$/i;

/** Options any pruning method reads; each method validates its own keys (methods.md defaults). */
const methodOptions = z.record(z.string(), z.record(z.string(), z.unknown()));

export const runtimeSchema = z
  .object({
    ep: z.enum(['cpu', 'cuda', 'tensorrt']).default('cpu'),
    threads: numeric(z.number().int().min(0)).default(0),
    dtype: z.enum(WEIGHT_DTYPES).default('fp32'),
    /** Vision-side graphs; absent: fp32/fp16 as dtype, int8 on the CPU with int8/int4 decoder weights. */
    vision_dtype: z.enum(VISION_DTYPES).optional(),
    /** Weights per MatMulNBits block with int8/int4. */
    quant_block: numeric(z.number().int()).default(32),
  })
  .strict()
  .prefault({});

export const ffmpegSchema = z
  .object({ ffmpeg_path: z.string().optional(), ffprobe_path: z.string().optional() })
  .strict()
  .prefault({});

export const generationSchema = z
  .object({
    max_new_tokens: numeric(z.number().int().min(1).max(4096)).default(32),
    temperature: numeric(z.number().min(0).max(10)).default(0),
    top_p: numeric(z.number().gt(0).max(1)).default(1),
    seed: numeric(z.number().int().min(0).max(0xffffffff)).default(0),
  })
  .strict()
  .prefault({});

export const pruningSchema = z
  .object({
    method: z.string().default('none'),
    /** Default: the method's own (see defaultBudget). */
    budget: numeric(z.number().gt(0).max(1)).optional(),
    options: methodOptions.default({}),
  })
  .strict()
  .prefault({});

export const memorySchema = z
  .object({
    /** Peak resident memory an answer may use, MB (MiB); the planner fits frames, budget and context to it. */
    budget_mb: numeric(z.number().positive()).optional(),
  })
  .strict()
  .prefault({});

export const configSchema = z
  .object({
    /** Checkpoint folder; relative paths start at the config file's folder. */
    model: z.string().optional(),
    /** A device profile (config/devices/NAME.yaml) whose values this file's override. */
    device: z.string().optional(),
    memory: memorySchema,
    runtime: runtimeSchema,
    ffmpeg: ffmpegSchema,
    sampling: z
      .object({
        frames: numeric(z.number().int().min(1).max(MAX_FRAMES)).optional(),
        fps: numeric(z.number().positive()).optional(),
      })
      .strict()
      .refine((s) => !(s.frames !== undefined && s.fps !== undefined), 'give frames or fps, not both')
      .prefault({}),
    generation: generationSchema,
    pruning: pruningSchema,
  })
  .strict();

export type SieveConfig = z.infer<typeof configSchema>;
