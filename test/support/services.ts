import { inject } from 'vitest';

/** What the global setup hands every suite. */
export interface TestServices {
  /** mysql://… of the server, without a database. */
  mysqlServer: string;
  redisUrl: string;
  /** Prefix of every database and Redis key this run creates, so teardown can find them all. */
  runId: string;
  /** The real Moodle dump, when present. */
  moodleDump: string | undefined;
  /** Redis list of restored Moodle databases waiting to be leased. */
  poolKey: string;
  /** The log every suite's backends append to (at debug level), searched for secrets when the run ends. */
  logFile: string;
  /** The secrets handed to the product during the run, one a line (see knownSecret). */
  secretsFile: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    services: TestServices;
  }
}

export const testServices = (): TestServices => inject('services');
