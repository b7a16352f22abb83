/**
 * Every failure a user can cause or fix is a SieveError: a message that says what was wrong,
 * and a hint that says what to do. The CLI prints these without a stack trace.
 */
export class SieveError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
    /** CLI exit code: 1 = runtime failure, 2 = bad usage. */
    readonly exitCode: 1 | 2 = 1,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** Bad flags, missing arguments, values out of range: exit code 2. */
export class UsageError extends SieveError {
  constructor(message: string, hint?: string) {
    super(message, hint, 2);
  }
}

/** A model file is missing, unreadable or inconsistent with the others. */
export class ModelError extends SieveError {}

/** A video or image could not be read or decoded. */
export class MediaError extends SieveError {}

export function describeError(err: unknown): string {
  if (err instanceof SieveError) return err.hint ? `${err.message}\n  hint: ${err.hint}` : err.message;
  return err instanceof Error ? (err.stack ?? err.message) : String(err);
}
