import { LogLevel, type Logger as BoltLogger } from '@slack/bolt';
import { errorFields, type Logger } from '../../core/log.ts';

/** A message of Bolt's or the Web API client's: errors by code and one line, everything else as text. */
function line(parts: unknown[]): { fields: object; text: string } {
  const error = parts.find((p) => p instanceof Error);
  const text = parts
    .filter((p) => !(p instanceof Error))
    .map((p) => (typeof p === 'string' ? p : JSON.stringify(p)))
    .join(' ');
  return { fields: error ? errorFields(error) : {}, text };
}

/**
 * Bolt's logger interface over the product's log, so that Bolt's and the Web API client's messages are JSON lines
 * with secrets redacted like every other. The level is the product's (LOG_LEVEL); Bolt does not change it.
 */
export function boltLogger(log: Logger): BoltLogger {
  const at =
    (level: 'debug' | 'info' | 'warn' | 'error') =>
    (...parts: unknown[]) => {
      // Bolt logs every request at debug; the line is built only when it is written.
      if (!log.isLevelEnabled(level)) return;
      const { fields, text } = line(parts);
      log[level](fields, text);
    };
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    setLevel: () => undefined,
    getLevel: () =>
      log.isLevelEnabled('debug')
        ? LogLevel.DEBUG
        : log.isLevelEnabled('info')
          ? LogLevel.INFO
          : log.isLevelEnabled('warn')
            ? LogLevel.WARN
            : LogLevel.ERROR,
    setName: () => undefined,
  };
}
