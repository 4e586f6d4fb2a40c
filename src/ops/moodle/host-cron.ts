import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { CronSettings } from '../../core/config.ts';
import type { MoodleSite } from './site.ts';
import { invalidateSettingCache } from './cache.ts';
import { readForWrite, readSetting, writeSetting } from './config.ts';
import { describeError, driverStyleError } from '../../core/db/db-errors.ts';
import { PhpStopped } from './php.ts';
import type { MoodleTarget } from './target.ts';

/** What a host's cron came to, read from Moodle's own lines and exit codes (moodle-facts §3.7). */
export const CRON_OUTCOMES = [
  'completed',
  'maintenance',
  'upgrade',
  'disabled',
  'fatal',
  'empty',
  'timeout',
  'unreachable',
  'other',
] as const;
export type CronOutcome = (typeof CRON_OUTCOMES)[number];

/** VMoodle's wrapper says where it switched to; that is not the cron's own output. */
const VMOODLE_LINES = /^(Arming for .*|Config check : playing for .*|resolving name to : .*)$/gm;

/**
 * Reads a cron's output as Moodle writes it: its refusals (CLI maintenance, a pending upgrade, cron disabled), a PHP
 * fatal error, its completion line (and VMoodle's older "Cron script completed correctly"), nothing at all, or
 * anything else.
 */
export function classifyCron(output: string, exitCode: number | null): CronOutcome {
  if (/CLI maintenance mode active, cron execution suspended\./.test(output)) return 'maintenance';
  if (/Moodle upgrade pending, cron execution suspended\./.test(output)) return 'upgrade';
  if (/Cron is disabled\. Use --force to override\./.test(output)) return 'disabled';
  if (/(PHP )?Fatal error/i.test(output)) return 'fatal';
  if (/Cron (run|script) completed correctly/.test(output) && (exitCode === 0 || exitCode === null)) return 'completed';
  if (output.replace(VMOODLE_LINES, '').trim() === '') return 'empty';
  return 'other';
}

/** What a host's cron did: when it started, how long it took, what it printed and what that means. */
export interface CronRun {
  outcome: CronOutcome;
  /** Unix ms. */
  started: number;
  durationMs: number;
  /** stdout then stderr (or the page), secrets cut out. */
  output: string;
  /** A change the product made first (cron_keepalive), or why the cron could not be read. */
  note?: string;
}

/**
 * Moodle's cron loops for cron_keepalive seconds (180 by default, moodle-facts §3.7). VMoodle's cron wrapper takes
 * no option to pass --keep-alive=0 on, so the setting itself is set to 0 on the instance, as cfg.php sets it (logged),
 * once. Says so when it did.
 */
export async function keepAliveOff(
  ctx: Pick<MoodleSite, 'moodle' | 'codeRoot' | 'secrets' | 'php'>,
  target: MoodleTarget,
): Promise<string | undefined> {
  const ref = { name: 'cron_keepalive' };
  const changed = await ctx.moodle.withStatements(target, async (sql) => {
    const { current, stores } = await readForWrite(ctx.moodle, sql, target, ref);
    if (current === '0') return false;
    writeSetting(ctx.moodle, sql, target, ref, '0', current, stores);
    return true;
  });
  if (!changed) return undefined;
  await invalidateSettingCache(ctx, target, 'core');
  return 'cron_keepalive set to 0 (Moodle would loop for 3 minutes)';
}

/** The site's cron password (`cronremotepassword`), which its web cron asks for; never logged or shown. */
async function cronPassword(ctx: Pick<MoodleSite, 'moodle' | 'secrets'>, target: MoodleTarget): Promise<string> {
  const password = await ctx.moodle.withStatements(
    target,
    (sql) => readSetting(ctx.moodle, sql, target, { name: 'cronremotepassword' }),
    false,
  );
  if (password) ctx.secrets.add(password);
  return password ?? '';
}

/** POSTs the password to `<wwwroot>/admin/cron.php` (never in the query, where logs keep it) and reads the page. */
function webCron(wwwroot: string, password: string, settings: CronSettings): Promise<{ status: number; body: string }> {
  const url = new URL(`${wwwroot.replace(/\/+$/, '')}/admin/cron.php`);
  const body = new URLSearchParams({ password }).toString();
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      url,
      {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) },
        timeout: settings.timeoutSeconds * 1000,
        ...(url.protocol === 'https:' ? { rejectUnauthorized: settings.verifyTls } : {}),
      },
      (res) => {
        let text = '';
        res
          .setEncoding('utf8')
          .on('data', (c: string) => {
            if (text.length < 256 * 1024) text += c;
          })
          .on('end', () => resolve({ status: res.statusCode ?? 0, body: text }))
          .on('error', reject);
      },
    );
    // ETIMEDOUT, as the driver's own timeouts, so the cron's outcome reads it as one.
    req.on('timeout', () =>
      req.destroy(driverStyleError(`no answer within ${settings.timeoutSeconds} s`, { code: 'ETIMEDOUT' })),
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Runs one host's cron the configured way and reads what came of it. */
export async function runHostCron(
  ctx: Pick<MoodleSite, 'moodle' | 'codeRoot' | 'secrets' | 'php'>,
  target: MoodleTarget,
  settings: CronSettings,
): Promise<CronRun> {
  const note = await keepAliveOff(ctx, target);
  const started = Date.now();
  const done = (outcome: CronOutcome, output: string, why?: string): CronRun => ({
    outcome,
    started,
    durationMs: Date.now() - started,
    output: ctx.secrets.scrub(output),
    note: [note, why].filter(Boolean).join('; ') || undefined,
  });
  if (settings.trigger === 'http') {
    try {
      const page = await webCron(target.host.wwwroot, await cronPassword(ctx, target), settings);
      const text = page.body.replace(/<[^>]+>/g, '');
      return page.status === 200
        ? done(classifyCron(text, 0), text)
        : done('other', text, `admin/cron.php answered HTTP ${page.status}`);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      return done(
        code === 'ETIMEDOUT' ? 'timeout' : 'unreachable',
        '',
        `admin/cron.php: ${code === 'ETIMEDOUT' ? `no answer within ${settings.timeoutSeconds} s` : describeError(err)}`,
      );
    }
  }
  try {
    const run = await ctx.php(target, 'cron', {}, settings.timeoutSeconds * 1000);
    return done(
      classifyCron(`${run.stdout}\n${run.stderr}`, run.exitCode),
      `${run.stdout}${run.stderr ? `\n${run.stderr}` : ''}`,
      run.ok ? undefined : run.message,
    );
  } catch (err) {
    if (err instanceof PhpStopped)
      return done('timeout', '', `stopped after ${settings.timeoutSeconds} s with every process it started`);
    return done('unreachable', '', describeError(err));
  }
}
