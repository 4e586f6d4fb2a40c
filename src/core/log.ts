import { pino, type Logger } from 'pino';
import type { Config, LogLevel } from './config.ts';
import { parseMysqlUrl } from './db/mysql-url.ts';
import { failureCode } from './errors.ts';
import { describeError } from './db/db-errors.ts';

export type { Logger } from 'pino';

/** Keys whose values never reach the log, wherever they sit in a logged object. */
const SECRET_KEYS = [
  'password',
  'pass',
  'vdbpass',
  'secret',
  'token',
  'botToken',
  'appToken',
  'signingSecret',
  'secret_params',
  'key',
  'authorization',
  'cookie',
];

const REDACTED = '[redacted]';

/**
 * A value shorter than this is not searched for in log lines: a one- or two-character secret would blank out half
 * of every line, and is guarded by the key-based redaction only.
 */
const MIN_SCRUBBED_LENGTH = 4;

/**
 * Secret values known to this process (database passwords, tokens, keys, secret parameters as they are opened), cut
 * out of every log line whatever key or message carries them.
 */
export class SecretValues {
  private readonly values = new Set<string>();
  private pattern: RegExp | undefined;

  add(...values: Array<string | undefined | null>): void {
    for (const value of values) {
      if (!value || value.length < MIN_SCRUBBED_LENGTH || this.values.has(value)) continue;
      this.values.add(value);
      // JSON escapes quotes and backslashes, so a line holds the value as JSON writes it.
      this.values.add(JSON.stringify(value).slice(1, -1));
      this.pattern = undefined;
    }
  }

  scrub(line: string): string {
    if (this.values.size === 0) return line;
    this.pattern ??= new RegExp(
      [...this.values]
        .sort((a, b) => b.length - a.length)
        .map((v) => v.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
        .join('|'),
      'g',
    );
    return line.replace(this.pattern, REDACTED);
  }
}

/** The secrets a configuration holds: the master's and Redis's passwords, Slack's credentials, the keyring. */
function configSecrets(config: Config): Array<string | undefined> {
  const redisPassword = (() => {
    try {
      return decodeURIComponent(new URL(config.redisUrl).password);
    } catch {
      // biome-ignore lint/plugin: a Redis URL that does not parse has no password to cut from the logs
      return undefined;
    }
  })();
  return [
    parseMysqlUrl(config.mysqlUrl).password,
    redisPassword,
    config.slack.botToken,
    config.slack.signingSecret,
    config.slack.appToken,
    ...config.secretKeys.map((k) => k.key.toString('base64')),
  ];
}

/**
 * The product's structured log: JSON lines (pino) to standard error or the configured file, secrets redacted by
 * key and by value. `fallback` is the level when the configuration sets none.
 */
export function createLogger(config: Config, secrets: SecretValues, fallback: LogLevel): Logger {
  secrets.add(...configSecrets(config));
  const destination = pino.destination({ dest: config.log.file ?? 2, append: true, mkdir: true, sync: true });
  return pino(
    {
      level: config.log.level ?? fallback,
      base: { node: config.node },
      redact: { paths: [...SECRET_KEYS, ...SECRET_KEYS.map((k) => `*.${k}`)], censor: REDACTED },
      serializers: { err: pino.stdSerializers.err },
      hooks: { streamWrite: (line) => secrets.scrub(line) },
    },
    destination,
  );
}

/** A logger that writes nothing, for code run outside a process that configured one. */
export const silentLogger = (): Logger => pino({ level: 'silent' });

/**
 * An error as the log records it: its code and the operator's one line, never a driver's message, which may quote
 * the statement and its values. Only an error nobody expected (no code) carries its stack, without its first line
 * (the message again): a server away or a refused statement is one line, however often it happens. `server` names
 * the kind of server a connection's failure is said of (the database's unless told).
 */
export function errorFields(
  err: unknown,
  server?: string,
): { error: { code: string; message: string; stack?: string } } {
  const e = err as { stack?: unknown };
  const code = failureCode(err);
  const stack =
    code === 'internal' && typeof e.stack === 'string' ? e.stack.split('\n').slice(1).join('\n') : undefined;
  return { error: { code, message: describeError(err, server), ...(stack ? { stack } : {}) } };
}
