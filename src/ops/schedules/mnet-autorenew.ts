import type { MnetSettings } from '../../core/config.ts';
import { errorFields } from '../../core/log.ts';
import { describeError } from '../../core/db/db-errors.ts';
import { keyState, readMnet } from '../moodle/mnet-keys.ts';
import { createPlan } from '../executor/planner.ts';
import { mapLimit } from '../../core/map-limit.ts';
import { pushAlert } from '../executor/alerts.ts';
import { startRun } from '../executor/run-actions.ts';
import type { RunServices } from '../executor/run-services.ts';

/** Whether a moment falls in the UTC window of the day auto-renewal may run in (one that passes midnight wraps). */
export function inWindow(window: NonNullable<MnetSettings['autorenew']>, now: number): boolean {
  const date = new Date(now);
  const minute = date.getUTCHours() * 60 + date.getUTCMinutes();
  return window.from <= window.to
    ? minute >= window.from && minute < window.to
    : minute >= window.from || minute < window.to;
}

const READS_AT_ONCE = 16;

/**
 * The scheduled check (VMoodle's cron_check_mnet_keys, which never fired): inside the configured window, the hosts
 * whose key expires within the renewal gap (or has expired) get mnet/renew, as a run of its own that the audit
 * keeps and the ops channel hears of. Hosts with MNET off, or no key, are left alone. Returns the run, if one started.
 */
export async function autoRenew(rt: RunServices, now = Date.now()): Promise<number | undefined> {
  const window = rt.config.mnet.autorenew;
  if (!window || !inWindow(window, now)) return undefined;
  const fleet = await rt.registry.loadFleet();
  const hosts = [...(fleet.masterHost.wwwroot ? [fleet.masterHost] : []), ...fleet.hosts.filter((h) => h.enabled)];
  const due = await mapLimit(hosts, READS_AT_ONCE, async (host) => {
    try {
      const target = rt.moodleTarget(fleet, host);
      const site = await rt.moodle.withStatements(target, (sql) => readMnet(rt.moodle, sql, target, false), false);
      if (site.mode === 'off' || !site.openssl) return undefined;
      return keyState(site.local?.public_key_expires ?? 0, rt.config.mnet.renewGapHours, now) === 'valid'
        ? undefined
        : host;
    } catch (err) {
      rt.log.warn({ ...errorFields(err), host: host.shortname }, 'auto-renewal could not read a key');
      await pushAlert(rt, {
        kind: 'mnet',
        text: `MNET auto-renewal could not read the key of ${host.shortname}: ${describeError(err)}`,
      });
      return undefined;
    }
  });
  const names = due.filter((h) => h !== undefined).map((h) => h.shortname);
  if (names.length === 0) return undefined;
  const plan = await createPlan(
    rt,
    {
      command: 'mnet/renew',
      params: {},
      selector: { tohosts: names, includeDisabled: false },
      requestedBy: 'auto-renewal',
      via: 'schedule',
    },
    fleet,
  );
  await startRun(rt, plan.run.id, 'auto-renewal', plan.run.plan_hash);
  await pushAlert(rt, {
    kind: 'mnet',
    text: `MNET auto-renewal renews the keys of ${names.length} host${names.length === 1 ? '' : 's'} expiring within ${rt.config.mnet.renewGapHours} h: ${names.slice(0, 10).join(', ')}${names.length > 10 ? ', …' : ''} (run ${plan.run.id}).`,
  });
  return plan.run.id;
}
