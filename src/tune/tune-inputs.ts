import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname } from 'node:path';
import { UsageError } from '../errors.js';
import { isObject } from '../model/json-file.js';

/** What a tuning run answers: each question about each of its clips; `answer` when the user labelled it. */
export interface TuneQuestion {
  video: string;
  question: string;
  answer?: string;
}

export const VIDEO_EXTENSIONS = ['.mp4', '.mkv', '.mov', '.webm', '.avi', '.gif'];

/** Asked of every clip when no --questions file is given: no labels are needed to measure agreement. */
export const DEFAULT_QUESTIONS = ['what happens in the video?', 'what objects are in the video?'];

/** The clips in a folder (not recursive), by name. */
export function listVideos(dir: string): string[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new UsageError(`--videos ${dir} is not a folder`, 'give a folder that holds the clips to tune on');
  }
  const videos = readdirSync(dir)
    .filter((f) => VIDEO_EXTENSIONS.includes(extname(f).toLowerCase()))
    .sort();
  if (videos.length === 0) {
    throw new UsageError(`no videos in ${dir}`, `put clips (${VIDEO_EXTENSIONS.join(', ')}) there`);
  }
  return videos;
}

/**
 * Questions from a file: JSON lines `{"question": …, "video"?: …, "answer"?: …}` (a record without a
 * video is asked of every clip) or plain lines, one question each, asked of every clip.
 */
export function readQuestions(file: string | undefined, videos: readonly string[]): TuneQuestion[] {
  if (file === undefined) return videos.flatMap((video) => DEFAULT_QUESTIONS.map((question) => ({ video, question })));
  if (!existsSync(file)) throw new UsageError(`--questions ${file} does not exist`, 'give a text or JSONL file');
  const out: TuneQuestion[] = [];
  readFileSync(file, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      const text = line.trim();
      if (text === '' || text.startsWith('#')) return;
      if (!text.startsWith('{')) {
        for (const video of videos) out.push({ video, question: text });
        return;
      }
      let r: unknown;
      try {
        r = JSON.parse(text);
      } catch {
        throw new UsageError(`${file}:${i + 1} is not valid JSON`, 'one {"question": …} object per line');
      }
      if (!isObject(r) || typeof r.question !== 'string' || r.question.trim() === '') {
        throw new UsageError(`${file}:${i + 1} has no "question" string`, 'one {"question": …} object per line');
      }
      const answer = typeof r.answer === 'string' ? r.answer : undefined;
      if (r.video !== undefined && typeof r.video !== 'string') {
        throw new UsageError(`${file}:${i + 1}: "video" must be a file name in --videos`);
      }
      if (typeof r.video === 'string' && !videos.includes(r.video)) {
        throw new UsageError(`${file}:${i + 1} names video ${r.video}, which is not in --videos`);
      }
      for (const video of typeof r.video === 'string' ? [r.video] : videos)
        out.push({ video, question: r.question, ...(answer === undefined ? {} : { answer }) });
    });
  if (out.length === 0) throw new UsageError(`${file} holds no questions`);
  return out;
}
