import { CommanderError } from 'commander';
import { describeError } from './db/db-errors.ts';

/**
 * Every error the product raises on purpose carries a stable code. The code, not the class or the wording, decides
 * the command line's exit code and what the chat and Slack say, so a script or a test can rely on it.
 */
export const ERROR_CODES = {
  /** The command line or chat line is malformed: an unknown verb or option, a missing argument, a bad number. */
  usage: { exit: 2, hint: undefined },
  unknown_command: { exit: 2, hint: 'vmoodle help lists the commands' },
  bad_parameter: { exit: 2, hint: undefined },
  bad_selection: { exit: 2, hint: undefined },
  refused_sql: { exit: 2, hint: undefined },
  bad_plan: { exit: 2, hint: undefined },
  invalid_instance: { exit: 2, hint: undefined },
  /** A run, an instance or a host that does not exist. */
  not_found: { exit: 1, hint: undefined },
  /** The run is not in a state that allows this (already started, still running, already ended). */
  run_state: { exit: 1, hint: 'vmoodle runs show <id> shows where it stands' },
  /** The plan shown is no longer the plan stored, or the registry changed under it. */
  stale_plan: { exit: 1, hint: 'plan it again' },
  approval: { exit: 1, hint: undefined },
  access_denied: { exit: 1, hint: undefined },
  registry: { exit: 1, hint: undefined },
  target: { exit: 1, hint: undefined },
  /** The configuration is wrong: fix the environment or the file before anything can run. */
  config: { exit: 3, hint: "the README's configuration table lists every setting" },
  /** A server the product needs (master database, Redis, a private server) cannot be used. */
  unavailable: { exit: 3, hint: undefined },
  /** Anything not raised on purpose: a bug or a driver's error. */
  internal: { exit: 1, hint: undefined },
} as const satisfies Record<string, { exit: number; hint: string | undefined }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export const EXIT_USAGE = ERROR_CODES.usage.exit;

export class OpsError extends Error {
  readonly hint: string | undefined;

  constructor(
    readonly code: ErrorCode,
    message: string,
    options: { hint?: string; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.hint = options.hint ?? ERROR_CODES[code].hint;
  }

  get exitCode(): number {
    return ERROR_CODES[this.code].exit;
  }
}

/** The code of any error: its own, or `internal` for one the product did not raise. */
export const errorCode = (err: unknown): ErrorCode => (err instanceof OpsError ? err.code : 'internal');

/**
 * What failed, as a word a log line or a metric's label may carry: the product's code, else a driver's or the
 * system's (ECONNREFUSED, ER_NO_SUCH_TABLE), else `internal`. Never free text, so labels stay few.
 */
export function failureCode(err: unknown): string {
  if (err instanceof OpsError) return err.code;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[A-Z][A-Z0-9_]{1,63}$/.test(code) ? code : 'internal';
}

export const exitCodeOf = (err: unknown): number => ERROR_CODES[errorCode(err)].exit;

/** A class of errors of one code, for the callers that must tell it apart (`instanceof`). */
export function errorKind(code: ErrorCode) {
  return class extends OpsError {
    constructor(message: string, hint?: string) {
      super(code, message, { hint });
    }
  };
}

export class UsageError extends errorKind('usage') {}

/** What every front end shows of an error: its code, one line, and what to do about it. */
export interface ErrorReport {
  code: ErrorCode;
  message: string;
  hint?: string;
}

/**
 * An error as a front end shows it. A parser's error (commander's) is a malformed line; a driver's error is
 * described by describeError, without the statement or its values.
 */
export function errorReport(err: unknown): ErrorReport {
  if (err instanceof CommanderError)
    return {
      code: 'usage',
      message: err.message.replace(/^error: /, '').split('\n')[0] as string,
      hint: 'add --help to the verb to see what it takes',
    };
  const code = errorCode(err);
  const hint = err instanceof OpsError ? err.hint : undefined;
  return { code, message: describeError(err), ...(hint ? { hint } : {}) };
}
