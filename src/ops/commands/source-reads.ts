import type { CommandContext } from './command.ts';
import type { MoodleTarget } from '../moodle/target.ts';

/** Reads of a run's source host, by what they read; the source object lives as long as the run's context. */
const reads = new WeakMap<MoodleTarget, Map<string, Promise<unknown>>>();

/**
 * What the source host holds, read once per run however many targets receive it. A read that failed is read again
 * by the next target that needs it.
 */
export function onceForSource<T>(ctx: Pick<CommandContext, 'source'>, key: string, read: () => Promise<T>): Promise<T> {
  let perSource = reads.get(ctx.source);
  if (!perSource) reads.set(ctx.source, (perSource = new Map()));
  const known = perSource.get(key) as Promise<T> | undefined;
  if (known) return known;
  const reading = read();
  perSource.set(key, reading);
  reading.catch(() => perSource.delete(key));
  return reading;
}
