import { appendFileSync } from 'node:fs';
import { testServices } from './services.ts';

/**
 * A secret a test hands the product (a setting's value, a token, a key, a password). It is recorded for the end of
 * the run, when the whole run's log is searched for every one of them.
 */
export function knownSecret<T extends string>(value: T): T {
  appendFileSync(testServices().secretsFile, `${value}\n`);
  return value;
}
