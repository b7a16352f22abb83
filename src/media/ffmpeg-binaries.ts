/**
 * Which ffmpeg and ffprobe every command runs: an explicit option, FFMPEG_PATH / FFPROBE_PATH, the PATH,
 * or the static builds shipped on npm; each one's version from `-version`, run once per binary and
 * remembered (by path, size and modification time) in the user's cache folder, so that an answer starts
 * no ffmpeg process besides the probe and the decode.
 */
import { execFile } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { access, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
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
  const cache = await readVersionCache();
  const [ff, fp] = await Promise.all([
    resolveBinary(FFMPEG, options.ffmpegPath, cache),
    resolveBinary(FFPROBE, options.ffprobePath, cache),
  ]);
  if (cache.changed) await writeVersionCache(cache.entries);
  return { ffmpeg: ff.binary, ffprobe: fp.binary, syncFlag: ff.lavf >= 61 ? '-fps_mode' : '-vsync' };
}

async function resolveBinary(tool: Tool, explicit: string | undefined, cache: VersionCache) {
  if (explicit === 'bundled') return identify(tool, bundledPath(tool), 'bundled', cache);
  if (explicit) return identify(tool, explicit, 'option', cache);
  const fromEnv = process.env[tool.env];
  if (fromEnv) return identify(tool, fromEnv, 'env', cache);
  const onPath = await findOnPath(tool.name);
  if (onPath) {
    try {
      return await identify(tool, onPath, 'path', cache);
    } catch {
      // A broken binary on the PATH: the bundled one follows.
    }
  }
  return identify(tool, bundledPath(tool), 'bundled', cache);
}

interface Identified {
  binary: ResolvedBinary;
  /** libavformat's major version (0 when the banner does not say). */
  lavf: number;
}

/** A binary's version: from the cache when the file is the one seen before, else from `-version`. */
async function identify(tool: Tool, file: string, source: BinarySource, cache: VersionCache): Promise<Identified> {
  const st = await stat(file).catch(() => undefined);
  const known = st?.isFile() ? cache.entries[file] : undefined;
  if (st && known && known.size === st.size && known.mtimeMs === st.mtimeMs) {
    return { binary: { path: file, source, version: known.version }, lavf: known.lavf };
  }
  const found = await runVersion(tool, file, source);
  if (st?.isFile()) {
    cache.entries[file] = { size: st.size, mtimeMs: st.mtimeMs, version: found.binary.version, lavf: found.lavf };
    cache.changed = true;
  }
  return found;
}

async function runVersion(tool: Tool, file: string, source: BinarySource): Promise<Identified> {
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
  const lavf = Number(/libavformat\s+(\d+)\./.exec(banner)?.[1] ?? 0);
  return { binary: { path: file, source, version }, lavf };
}

interface CachedVersion {
  size: number;
  mtimeMs: number;
  version: string;
  lavf: number;
}

interface VersionCache {
  entries: Record<string, CachedVersion>;
  changed: boolean;
}

/** Where the versions are remembered: $XDG_CACHE_HOME/vlm-sieve (else ~/.cache/vlm-sieve). */
export function versionCachePath(): string {
  return path.join(process.env.XDG_CACHE_HOME || path.join(homedir(), '.cache'), 'vlm-sieve', 'ffmpeg-versions.json');
}

async function readVersionCache(): Promise<VersionCache> {
  try {
    const parsed: unknown = JSON.parse(await readFile(versionCachePath(), 'utf8'));
    const entries: Record<string, CachedVersion> = {};
    if (parsed && typeof parsed === 'object') {
      for (const [file, v] of Object.entries(parsed as Record<string, Partial<CachedVersion>>)) {
        if (typeof v?.size === 'number' && typeof v.mtimeMs === 'number' && typeof v.version === 'string') {
          entries[file] = { size: v.size, mtimeMs: v.mtimeMs, version: v.version, lavf: Number(v.lavf) || 0 };
        }
      }
    }
    return { entries, changed: false };
  } catch {
    return { entries: {}, changed: false }; // none yet, or unreadable: ask the binaries
  }
}

/** Best effort: a read-only home only means `-version` runs again next time. */
async function writeVersionCache(entries: Record<string, CachedVersion>): Promise<void> {
  const file = versionCachePath();
  const temp = `${file}.${process.pid}.tmp`;
  try {
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(temp, `${JSON.stringify(entries, null, 1)}\n`);
    await rename(temp, file);
  } catch {
    // not cached
  }
}

/** The executable `name` on the PATH, if there is one. */
export async function findOnPath(name: string): Promise<string | undefined> {
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
