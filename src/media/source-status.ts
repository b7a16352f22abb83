/** What an operator sees of a camera's source (`sieve serve` logs it, `<prefix>/<camera>/status` carries it). */
export interface SourceStatus {
  /** connecting → live; after a failure or a stall, waiting (backoff) → connecting again; stopped at the end. */
  state: 'connecting' | 'live' | 'waiting' | 'ended' | 'stopped';
  /** Frames per second arriving over the last few seconds. */
  fpsIn: number;
  /** Frames ffmpeg delivered at the sampling rate. */
  framesDecoded: number;
  reconnects: number;
  lastError?: { message: string; at: string };
  /** When the source last went live (ISO time). */
  since?: string;
}
