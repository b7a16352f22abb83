import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { parseYamlText, validateDocument } from '../config/load-config.js';
import { ffmpegSchema, generationSchema, numeric, pruningSchema, runtimeSchema } from '../config/schema.js';
import { UsageError } from '../errors.js';
import { MAX_FRAMES } from '../media/frame.js';

const CAMERA_NAME = /^[A-Za-z0-9_-]+$/;
const seconds = numeric(z.number().positive());
const flag = z.preprocess((v) => (v === 'true' ? true : v === 'false' ? false : v), z.boolean());

/** How a source reconnects and when it counts as stalled; every source type has these. */
const connection = {
  /** First wait after a failure; doubles up to max_s, each wait ± jitter (a fraction) at random. */
  reconnect: z
    .object({
      initial_s: seconds.default(1),
      max_s: seconds.default(30),
      jitter: numeric(z.number().min(0).max(1)).default(0.3),
    })
    .strict()
    .prefault({}),
  /** No frame for this long → the source restarts. */
  stall_s: seconds.default(10),
  /** Opening the stream (RTSP/HTTP handshake, first frame) may take this long. */
  connect_timeout_s: seconds.default(10),
};

const sourceSchema = z.discriminatedUnion('type', [
  z
    .object({
      type: z.literal('file'),
      path: z.string().min(1),
      /** Replay forever, as a live camera would run. */
      loop: flag.default(false),
      /** 1 = real time, 10 = ten times faster, 0 = as fast as it decodes. */
      speed: numeric(z.number().min(0)).default(1),
      ...connection,
    })
    .strict(),
  z
    .object({
      type: z.literal('rtsp'),
      url: z.string().regex(/^rtsps?:\/\//, 'an rtsp:// or rtsps:// URL'),
      transport: z.enum(['tcp', 'udp']).default('tcp'),
      ...connection,
    })
    .strict(),
  z
    .object({ type: z.literal('http'), url: z.string().regex(/^https?:\/\//, 'an http(s):// URL'), ...connection })
    .strict(),
  z.object({ type: z.literal('v4l2'), device: z.string().default('/dev/video0'), ...connection }).strict(),
  z
    .object({
      type: z.literal('images'),
      path: z.string().min(1),
      /** A new image is looked for this often; each image is a frame shown at the time it was found. */
      interval_s: seconds.default(1),
      loop: flag.default(false),
      ...connection,
    })
    .strict(),
]);

const samplingSchema = z
  .object({
    fps: numeric(z.number().positive().max(60)).default(1),
    /**
     * Change gate (ViTCoP Stage 0's test): a sampled frame whose patches are at least `static_fraction`
     * static (cosine ≥ tau_static with the last kept frame's) is skipped.
     */
    change: z
      .object({
        tau_static: numeric(z.number().min(-1).max(1)).default(0.9),
        static_fraction: numeric(z.number().gt(0).max(1)).default(0.95),
        /** A frame is kept at least this often, however still the scene. */
        max_gap_s: seconds.default(10),
      })
      .strict()
      .optional(),
  })
  .strict()
  .prefault({});

const windowSchema = z
  .object({
    /** Frames older than this leave the window. */
    seconds: seconds.default(30),
    max_frames: numeric(z.number().int().min(1).max(MAX_FRAMES)).default(16),
    /** Visual tokens the window holds at most (frames × tokens per frame); default: no limit beyond max_frames. */
    max_tokens: numeric(z.number().int().min(1)).optional(),
  })
  .strict()
  .prefault({});

const standingQuestion = z
  .object({
    question: z.string().trim().min(1, 'the question is empty'),
    /** Asked on the window this often. */
    every_s: seconds.default(10),
  })
  .strict();

/** A standing yes/no prompt about a camera, published (retained) on MQTT when its answer changes. */
const alertSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9_-]+$/, 'an alert name is letters, digits, _ and -'),
    prompt: z.string().trim().min(1, 'the prompt is empty'),
    /** Evaluated on the window this often, when new frames arrived since the last time. */
    every_s: seconds.default(10),
    /** Seconds of the window the prompt is about (default: all of it). */
    window_s: seconds.optional(),
  })
  .strict();

const cameraSchema = z
  .object({
    source: sourceSchema,
    sampling: samplingSchema,
    window: windowSchema,
    pruning: pruningSchema,
    questions: z.array(standingQuestion).default([]),
    alerts: z.array(alertSchema).default([]),
  })
  .strict();

/** MQTT (design §5): without `url`, an embedded broker (aedes) listens on `listen`. */
const mqttSchema = z
  .object({
    /** mqtt://, mqtts://, ws:// or wss:// URL of the broker; absent: the embedded broker. */
    url: z
      .string()
      .regex(/^(mqtts?|wss?):\/\//, 'an mqtt://, mqtts://, ws:// or wss:// URL')
      .optional(),
    /** Where the embedded broker listens when no url is given. */
    listen: z.string().default('127.0.0.1:1883'),
    prefix: z
      .string()
      .regex(/^[^#+]+$/, 'a topic prefix without + or #')
      .default('sieve'),
    client_id: z.string().optional(),
    username: z.string().optional(),
    password: z.string().optional(),
    /** TLS: CA, client certificate and key files (PEM), and whether to check the broker's certificate. */
    tls: z
      .object({
        ca: z.string().optional(),
        cert: z.string().optional(),
        key: z.string().optional(),
        reject_unauthorized: flag.default(true),
      })
      .strict()
      .optional(),
    /** Home Assistant MQTT discovery for the alerts (binary_sensor) and the last answer (sensor). */
    discovery: z
      .object({ enabled: flag.default(false), prefix: z.string().default('homeassistant') })
      .strict()
      .prefault({}),
  })
  .strict();

/** The OpenAI-compatible HTTP API (design §5). */
const httpSchema = z
  .object({
    /** host:port; loopback unless said otherwise. */
    listen: z.string().default('127.0.0.1:8080'),
    /** When set, every request needs `Authorization: Bearer <token>`. */
    token: z.string().optional(),
    /** Request bodies larger than this are refused (413). */
    max_body_mb: numeric(z.number().positive().max(1024)).default(20),
  })
  .strict();

const watchSchema = z
  .object({
    /** Folder watched for new clips. */
    folder: z.string().min(1),
    extensions: z
      .array(z.string().regex(/^\.\w+$/, 'an extension such as .mp4'))
      .default(['.mp4', '.mkv', '.mov', '.webm', '.avi']),
    questions: z.array(z.string().trim().min(1, 'the question is empty')).min(1, 'give at least one question'),
    /** JSONL file every answer is appended to. */
    output: z.string().min(1),
    frames: numeric(z.number().int().min(1).max(MAX_FRAMES)).default(8),
    pruning: pruningSchema,
    /** Clips already in the folder when the daemon starts are answered too. */
    existing: flag.default(true),
  })
  .strict();

export const pipelineSchema = z
  .object({
    /** Checkpoint folder; relative paths start at the pipeline file's folder. */
    model: z.string().optional(),
    runtime: runtimeSchema,
    ffmpeg: ffmpegSchema,
    generation: generationSchema,
    /** Applied to every camera; a camera's own keys override them key by key. */
    defaults: z.record(z.string(), z.unknown()).optional(),
    cameras: z.record(z.string().regex(CAMERA_NAME), cameraSchema).default({}),
    watch: watchSchema.optional(),
    /** Standing answers go here as JSON lines (also logged); default: the log only. */
    answers: z.string().optional(),
    mqtt: mqttSchema.optional(),
    http: httpSchema.optional(),
    /** The one queue every query goes through (standing questions, MQTT, HTTP). */
    queries: z
      .object({
        /** Queries waiting at most; one more is refused at once as busy. */
        capacity: numeric(z.number().int().min(1).max(10_000)).default(32),
        /** A query not started within this many seconds is answered with an error instead. */
        deadline_s: seconds.default(60),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .refine(
    (p) => Object.keys(p.cameras).length > 0 || p.watch || p.http,
    'a pipeline needs cameras, a watch folder, or http (to answer about images sent with questions)',
  );

export type PipelineConfig = z.output<typeof pipelineSchema>;
export type CameraConfig = PipelineConfig['cameras'][string];
export type SourceConfig = CameraConfig['source'];
export type WatchConfig = NonNullable<PipelineConfig['watch']>;
export type MqttConfig = z.output<typeof mqttSchema>;
export type HttpConfig = z.output<typeof httpSchema>;
export type AlertConfig = CameraConfig['alerts'][number];

const DEFAULTABLE = ['source', 'sampling', 'window', 'pruning', 'questions', 'alerts'];

/**
 * Reads a pipeline file: `defaults` merged into every camera (objects key by key, the camera's own
 * values winning), ${VAR} substituted, everything validated with errors that name the file and key,
 * and relative paths resolved against the file's folder.
 */
export function loadPipeline(file: string, env: NodeJS.ProcessEnv = process.env): PipelineConfig {
  if (!existsSync(file)) {
    throw new UsageError(
      `pipeline file ${file} does not exist`,
      'give a file from pipelines/, e.g. pipelines/demo.yaml',
    );
  }
  const raw = parseYamlText(readFileSync(file, 'utf8'), file);
  if (!isPlainObject(raw)) throw new UsageError(`${file}: expected keys (model, cameras, …) at the top level`);
  const pipeline = validateDocument(withDefaults(raw, file), file, pipelineSchema, env, 'the pipelines section');
  const base = dirname(resolve(file));
  const at = (p: string) => (isAbsolute(p) || /^[a-z]+:\/\//.test(p) ? p : resolve(base, p));
  if (pipeline.model) pipeline.model = at(pipeline.model);
  if (pipeline.answers) pipeline.answers = at(pipeline.answers);
  const tls = pipeline.mqtt?.tls;
  if (tls) for (const key of ['ca', 'cert', 'key'] as const) if (tls[key]) tls[key] = at(tls[key]);
  for (const camera of Object.values(pipeline.cameras)) {
    if (camera.source.type === 'file' || camera.source.type === 'images') camera.source.path = at(camera.source.path);
  }
  if (pipeline.watch) {
    pipeline.watch.folder = at(pipeline.watch.folder);
    pipeline.watch.output = at(pipeline.watch.output);
  }
  return pipeline;
}

function withDefaults(raw: Record<string, unknown>, file: string): Record<string, unknown> {
  const { defaults, cameras } = raw;
  for (const name of isPlainObject(cameras) ? Object.keys(cameras) : []) {
    if (!CAMERA_NAME.test(name)) {
      throw new UsageError(
        `${file}: cameras.${name}: a camera name is letters, digits, _ and - (it is part of MQTT topics and URLs)`,
      );
    }
  }
  if (defaults === undefined || defaults === null) return raw;
  if (!isPlainObject(defaults)) throw new UsageError(`${file}: defaults: expected a mapping`);
  const unknown = Object.keys(defaults).filter((k) => !DEFAULTABLE.includes(k));
  if (unknown.length) {
    throw new UsageError(
      `${file}: defaults.${unknown[0]}: not a camera key`,
      `defaults may set ${DEFAULTABLE.join(', ')}`,
    );
  }
  if (!isPlainObject(cameras)) return raw;
  const merged = Object.fromEntries(
    Object.entries(cameras).map(([name, camera]) => [
      name,
      isPlainObject(camera) ? deepMerge(defaults, camera) : camera,
    ]),
  );
  return { ...raw, cameras: merged };
}

function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = isPlainObject(b) && isPlainObject(v) ? deepMerge(b, v) : v;
  }
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
