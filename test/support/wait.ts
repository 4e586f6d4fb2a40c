import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Polls `probe` until it answers (anything but undefined or false), then gives the answer; fails naming what it
 * waited for. Tests wait for what they expect this way, never for a guessed length of time.
 */
export async function waitFor<T>(
  what: string | (() => string),
  probe: () => T | Promise<T>,
  { timeoutMs = 15_000, everyMs = 50 }: { timeoutMs?: number; everyMs?: number } = {},
): Promise<Exclude<T, undefined | false>> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const found = await probe();
    if (found !== undefined && found !== false) return found as Exclude<T, undefined | false>;
    if (Date.now() > end)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`);
    await sleep(everyMs);
  }
}

/**
 * Lets time pass where its passing is what the test checks: a lease or an approval running out, a canary that must
 * not go on by itself, nothing more posted once a run ended. `why` says which, for the reader.
 */
export async function passTime(ms: number, why: string): Promise<void> {
  if (!why) throw new Error('passTime needs the reason time must pass');
  await sleep(ms);
}
