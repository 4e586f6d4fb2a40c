import type { MoodleAccess } from './access.ts';
import type { PhpResult } from './php.ts';
import type { MoodleTarget } from './target.ts';

/** Runs one of VMoodle's CLI wrappers for a target, on the node that holds it (see php.ts). */
export type PhpRunner = (
  target: MoodleTarget,
  script: string,
  options?: Readonly<Record<string, string | true>>,
  timeoutMs?: number,
) => Promise<PhpResult>;

/**
 * What the Moodle layer needs to touch a site: its database, its code tree, its PHP and a place for the secrets it
 * comes across. The command contract extends it; the Moodle layer never sees a run, a queue or a chat.
 */
export interface MoodleSite {
  moodle: MoodleAccess;
  php: PhpRunner;
  /** The Moodle code tree of a target's node, where its config.php is read; undefined without nodes. */
  codeRoot(target: MoodleTarget): string | undefined;
  /** Secrets a command comes across (a cache store's password), cut from every log line from then on. */
  secrets: { add(...values: string[]): void; scrub(text: string): string };
  /** Tells those following the run where this target's long work stands; a no-op outside a run. */
  step(message: string): void;
}

/** A registry host as MNET binding and delivery see it. */
export interface FleetMember {
  target: MoodleTarget;
  name: string;
  /** VMoodle's mnet column: -1 no MNET, 0 bound to the master only, n > 0 subnet n. */
  mnet: number;
  enabled: boolean;
}

/** The registry's hosts as a site's work sees them. */
export interface FleetView {
  /** Every host of the registry that can be reached, the master first, with its MNET subnet (the master's is 0). */
  members(): Promise<FleetMember[]>;
}
