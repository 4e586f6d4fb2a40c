import { statSync } from 'node:fs';
import { publicView, type Instance } from './instance.ts';

export type InstanceState = 'enabled' | 'disabled' | 'broken';

export const CRON_GAP_ALERT_SECONDS = 86_400;

/** VMoodle's status column: broken when the data folder is not a directory, else enabled or disabled. */
export function instanceState(instance: Instance): InstanceState {
  let isDir = false;
  try {
    isDir = statSync(instance.vdatapath).isDirectory();
  } catch {
    isDir = false;
  }
  if (!isDir) return 'broken';
  return instance.enabled ? 'enabled' : 'disabled';
}

/**
 * VMoodle flags the gap between the last two cron runs when it passes a day. A cron that stopped altogether
 * never updates that gap, so the time since the last run counts too.
 */
export function cronLate(instance: Instance, now: number = Math.floor(Date.now() / 1000)): boolean {
  if (instance.lastcrongap > CRON_GAP_ALERT_SECONDS) return true;
  return instance.lastcron > 0 && now - instance.lastcron > CRON_GAP_ALERT_SECONDS;
}

export function mnetLabel(mnet: number): string {
  if (mnet < 0) return 'off';
  if (mnet === 0) return 'free';
  return `subnet ${mnet}`;
}

/** An instance as the command line and --json show it: never its password. */
export function instanceJson(instance: Instance) {
  return { ...publicView(instance), state: instanceState(instance), cronLate: cronLate(instance) };
}
