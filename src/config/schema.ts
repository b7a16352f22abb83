import { z } from 'zod';

/** Options any pruning method reads; each method validates its own keys (methods.md defaults). */
const methodOptions = z.record(z.string(), z.record(z.string(), z.unknown()));

export const configSchema = z
  .object({
    /** Checkpoint folder; relative paths start at the config file's folder. */
    model: z.string().optional(),
    runtime: z
      .object({
        ep: z.enum(['cpu', 'cuda', 'tensorrt']).default('cpu'),
        threads: z.number().int().min(0).default(0),
        dtype: z.enum(['fp32', 'fp16']).default('fp32'),
      })
      .strict()
      .prefault({}),
    ffmpeg: z.object({ ffmpeg_path: z.string().optional(), ffprobe_path: z.string().optional() }).strict().prefault({}),
    sampling: z
      .object({ frames: z.number().int().min(1).max(1024).optional(), fps: z.number().positive().optional() })
      .strict()
      .refine((s) => !(s.frames !== undefined && s.fps !== undefined), 'give frames or fps, not both')
      .prefault({}),
    generation: z
      .object({
        max_new_tokens: z.number().int().min(1).max(4096).default(32),
        temperature: z.number().min(0).max(10).default(0),
        top_p: z.number().gt(0).max(1).default(1),
        seed: z.number().int().min(0).max(0xffffffff).default(0),
      })
      .strict()
      .prefault({}),
    pruning: z
      .object({
        method: z.string().default('none'),
        budget: z.number().gt(0).max(1).default(1),
        options: methodOptions.default({}),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type SieveConfig = z.infer<typeof configSchema>;
