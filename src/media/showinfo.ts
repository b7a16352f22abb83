/** One frame as ffmpeg's showinfo filter describes it on stderr. */
export interface ShowinfoFrame {
  /** The filter's own frame number, from 0. */
  n: number;
  /** Seconds: pts × the filter's time base (the select filter's arithmetic), else ffmpeg's printed pts_time. */
  t: number;
  width: number;
  height: number;
  /** Adler-32 of the frame's planes, as printed. */
  checksum: string;
}

const FRAME_LINE = /\bn:\s*(\d+)\s+pts:\s*(-?\d+|NOPTS)\s+pts_time:(\S+).*?\bs:(\d+)x(\d+)(?:.*?\bchecksum:(\w+))?/;

/** Reads the lines of one showinfo filter: its time base (printed once) and then a line per frame. */
export class ShowinfoReader {
  private timeBase: number | undefined;

  /** The frame a line describes, or undefined for any other line (the time base is remembered). */
  read(line: string): ShowinfoFrame | undefined {
    const tb = /config in time_base:\s*(\d+)\/(\d+)/.exec(line);
    if (tb && Number(tb[2]) > 0) this.timeBase = Number(tb[1]) / Number(tb[2]);
    const m = FRAME_LINE.exec(line);
    if (!m) return undefined;
    const t = m[2] !== 'NOPTS' && this.timeBase !== undefined ? Number(m[2]) * this.timeBase : Number(m[3]);
    return { n: Number(m[1]), t, width: Number(m[4]), height: Number(m[5]), checksum: m[6] ?? '' };
  }
}
