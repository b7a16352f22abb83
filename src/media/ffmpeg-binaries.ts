/**
 * Which ffmpeg and ffprobe every command runs: an explicit option, FFMPEG_PATH / FFPROBE_PATH, the PATH,
 * or the static builds shipped on npm; each one's version from `-version`.
 */
import { execFile } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import { MediaError, UsageError } from '../errors.js';

export type BinarySource = 'option' | 'env' | 'path' | 'bundled';

export interface ResolvedBinary {
  path: string;
  /** An explicit option, FFMPEG_PATH / FFPROBE_PATH, the PATH, or the static build shipped on npm. */
  source: BinarySource;
  /** As the binary prints it, e.g. "5.1.6-0+deb12u1" or "N-47683-g0e8eb07980-static". */
  version: string;
}

export interface FfmpegBinaries {
  ffmpeg: ResolvedBinary;
  ffprobe: ResolvedBinary;
}

/** Explicit binaries, e.g. from the config file. The value "bundled" picks the npm-shipped build. */
export interface FfmpegOptions {
  ffmpegPath?: string;
  ffprobePath?: string;
}

/** The binaries and what the command lines depend on. */
export interface Binaries extends FfmpegBinaries {
  /** ffmpeg 7 (libavformat 61) deprecates -vsync; -fps_mode only exists from 5.1 on. */
  syncFlag: '-vsync' | '-fps_mode';
}

interface Tool {
  name: 'ffmpeg' | 'ffprobe';
  env: 'FFMPEG_PATH' | 'FFPROBE_PATH';
  bundle: string;
}

const FFMPEG: Tool = { name: 'ffmpeg', env: 'FFMPEG_PATH', bundle: '@ffmpeg-installer/ffmpeg' };
const FFPROBE: Tool = { name: 'ffprobe', env: 'FFPROBE_PATH', bundle: '@ffprobe-installer/ffprobe' };

const execFileAsync = promisify(execFile);
const requireCjs = createRequire(import.meta.url);

let configured: FfmpegOptions = {};
let resolving: Promise<Binaries> | undefined;

/** Sets explicit binaries; later calls find them again. */
export function configureFfmpeg(options: FfmpegOptions = {}): void {
  configured = { ...options };
  resolving = undefined;
}

/**
 * The binaries every call uses, in this order of precedence: explicit option → FFMPEG_PATH /
 * FFPROBE_PATH → `ffmpeg` / `ffprobe` on the PATH → the builds bundled by @ffmpeg-installer and
 * @ffprobe-installer.
 */
export async function ffmpegBinaries(): Promise<FfmpegBinaries> {
  const { ffmpeg, ffprobe } = await binaries();
  return { ffmpeg, ffprobe };
}

/** The binaries, found once per configuration (a failed lookup is repeated next time). */
export function binaries(): Promise<Binaries> {
  if (!resolving) {
    const attempt = resolveAll(configured);
    resolving = attempt;
    attempt.catch(() => {
      if (resolving === attempt) resolving = undefined; // look again next time
    });
  }
  return resolving;
}

async function resolveAll(options: FfmpegOptions): Promise<Binaries> {
  const [ff, fp] = await Promise.all([
    resolveBinary(FFMPEG, options.ffmpegPath),
    resolveBinary(FFPROBE, options.ffprobePath),
  ]);
  const lavf = Number(/libavformat\s+(\d+)\./.exec(ff.banner)?.[1] ?? 0);
  return { ffmpeg: ff.binary, ffprobe: fp.binary, syncFlag: lavf >= 61 ? '-fps_mode' : '-vsync' };
}

async function resolveBinary(tool: Tool, explicit: string | undefined) {
  if (explicit === 'bundled') return runVersion(tool, bundledPath(tool), 'bundled');
  if (explicit) return runVersion(tool, explicit, 'option');
  const fromEnv = process.env[tool.env];
  if (fromEnv) return runVersion(tool, fromEnv, 'env');
  const onPath = await findOnPath(tool.name);
  if (onPath) {
    try {
      return await runVersion(tool, onPath, 'path');
    } catch {
      // A broken binary on the PATH: the bundled one follows.
    }
  }
  return runVersion(tool, bundledPath(tool), 'bundled');
}

async function runVersion(tool: Tool, file: string, source: BinarySource) {
  let banner: string;
  try {
    banner = (await execFileAsync(file, ['-version'], { timeout: 15_000 })).stdout;
  } catch (err) {
    const why = err instanceof Error ? err.message.split('\n')[0] : String(err);
    if (source === 'bundled') {
      throw new MediaError(
        `the bundled ${tool.name} (${file}) does not run: ${why}`,
        `install ffmpeg (it brings ffprobe), or set ${tool.env}; if the file is not executable, chmod +x it`,
      );
    }
    const from = source === 'env' ? tool.env : source === 'option' ? `the ${tool.name} path option` : 'the PATH';
    throw new UsageError(
      `${tool.name} ${file} (from ${from}) does not run: ${why}`,
      `point ${from} at a working ${tool.name}, or use "bundled" for the build shipped with vlm-sieve`,
    );
  }
  const version = /version\s+(\S+)/.exec(banner)?.[1] ?? 'unknown';
  return { binary: { path: file, source, version } satisfies ResolvedBinary, banner };
}

async function findOnPath(name: string): Promise<string | undefined> {
  const exe = process.platform === 'win32' ? `${name}.exe` : name;
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const file = path.join(dir, exe);
    try {
      await access(file, fsConstants.X_OK);
      if ((await stat(file)).isFile()) return file;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

function bundledPath(tool: Tool): string {
  try {
    return (requireCjs(tool.bundle) as { path: string }).path;
  } catch (err) {
    // @ffmpeg-installer throws a plain string for unsupported platforms.
    const why = err instanceof Error ? err.message : String(err);
    throw new MediaError(
      `no ${tool.name} found: ${tool.env} is not set, there is none on the PATH, and the bundled build is unavailable (${why})`,
      `install ffmpeg (it brings ffprobe), or set ${tool.env}`,
    );
  }
}
