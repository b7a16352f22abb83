/**
 * The ffmpeg adapter's boundary: finding the binaries (ffmpeg-binaries.ts), probing (probe.ts), decoding
 * sampled frames (frame-decoder.ts) and encoding (video-encoder.ts). fluent-ffmpeg runs the commands in
 * one place, ffmpeg-process.ts.
 */
export type { BinarySource, FfmpegBinaries, FfmpegOptions, ResolvedBinary } from './ffmpeg-binaries.js';
export { configureFfmpeg, ffmpegBinaries } from './ffmpeg-binaries.js';
export type { DecodeOptions } from './frame-decoder.js';
export { decodeFrames } from './frame-decoder.js';
export type { VideoInfo } from './probe.js';
export { probe } from './probe.js';
export type { EncodeOptions } from './video-encoder.js';
export { encodeVideo } from './video-encoder.js';
