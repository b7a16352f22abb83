/** One RGB picture from a video file, a camera or an image, with the time it was shown. */
export interface Frame {
  /** Position in the sequence it belongs to (the n-th sampled frame, the n-th image), from 0. */
  index: number;
  /** Seconds on the source's timeline (0 for a single image). */
  timestampS: number;
  width: number;
  height: number;
  /** Packed HWC RGB24: width·height·3 bytes, row by row. */
  rgb: Uint8Array;
}

/** What an encoder needs from a frame. */
export type RgbImage = Pick<Frame, 'width' | 'height' | 'rgb'>;

/** The most frames one answer samples (the CLI, the config and the decoder share it). */
export const MAX_FRAMES = 1024;
