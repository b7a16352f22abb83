/** ffmpeg's and ffprobe's words for what went wrong, made into one-line reasons. */

export const CORRUPT_HINT =
  'the file is corrupt, truncated or not a video: check that a player opens it, or re-encode it';

/** ffmpeg's own words for what went wrong: its error lines without the log prefixes, deduplicated. */
export function ffmpegReason(lines: readonly string[], file: string): string {
  const seen = new Set<string>();
  for (const line of lines) {
    const text = line
      .replace(/^\[[^\]]* @ 0x[0-9a-f]+\]\s*/i, '')
      .replace(/^\[(?:error|fatal|panic|warning)\]\s*/, '')
      .replace(`${file}: `, '')
      .trim()
      .replace(/\.$/, '');
    if (text) seen.add(text);
    if (seen.size === 3) break;
  }
  const reason = [...seen].join('; ');
  return reason.length > 300 ? `${reason.slice(0, 297)}...` : reason;
}

/** An error line of ffmpeg run with `-loglevel level+…`. */
export function isErrorLine(line: string): boolean {
  return /\[(?:error|fatal|panic)\]/.test(line);
}
