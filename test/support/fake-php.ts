import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** What the stand-in PHP binary saw of one run. */
export interface PhpRecord {
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  pid: number;
  /** The worker process that started it. */
  ppid: number;
  /** A process it started and left running (the `slow` behaviour). */
  child?: number;
  /** The folders under `maintenanceUnder` (two levels down) holding a CLI maintenance page as it started. */
  maintenance?: string[];
  start: number;
  end?: number;
}

export interface FakePhp {
  /** The binary to configure as a node's `php`. */
  php: string;
  /** A Moodle tree with VMoodle's CLI wrappers (and core's scripts, which must never be run). */
  codeRoot: string;
  records(): PhpRecord[];
}

/**
 * A stand-in for PHP: a script that records its argv, environment and working directory, then behaves as Moodle
 * would for the wwwroot it is given, chosen by the first word of the host name (cron.php prints Moodle's cron lines,
 * and refuses for `cronmaint-…`, `cronupgrade-…` and `crondisabled-…`, prints nothing for `cronempty-…`): `slow-…` starts a child and never
 * ends, `unknown-…` is VMoodle's "no configuration" die (exit 0), `wrongsite-…` runs for another site, `badopt-…` is
 * core's unknown-option refusal (exit 2), `noisy-…` prints a lot with `secret` in it, `fails-…` dies with a PHP
 * fatal error; upgrade.php answers as Moodle's does (`uptodate-…` has none pending, `hashonly-…` needs no maintenance,
 * `older-…` has code older than its database, `downgrade-…` a plugin's, `upfails-…` fails); any other purges
 * for `delayMs` and succeeds.
 */
export function fakePhp(
  opts: { delayMs?: number; secret?: string; wrappers?: string[]; maintenanceUnder?: string } = {},
): FakePhp {
  const root = mkdtempSync(join(tmpdir(), 'vmops-php-'));
  const codeRoot = join(root, 'moodle');
  const records = join(root, 'records');
  for (const dir of ['local/vmoodle/cli', 'admin/cli', '../records'])
    mkdirSync(join(codeRoot, dir), { recursive: true });
  const wrappers = ['purge_caches', 'cron', ...(opts.wrappers ?? [])].map((w) => `local/vmoodle/cli/${w}.php`);
  for (const script of [...wrappers, 'admin/cli/purge_caches.php', 'admin/cli/cron.php'])
    writeFileSync(join(codeRoot, script), '<?php // stand-in\n');
  const php = join(root, 'php');
  writeFileSync(
    php,
    `#!${process.execPath}
const fs = require('node:fs');
const { spawn } = require('node:child_process');
const host = (process.argv.find((a) => a.startsWith('--host=')) || '').slice('--host='.length);
const kind = host.replace(/^https?:\\/\\//, '').split(/[-.]/)[0];
const record = { argv: process.argv.slice(2), env: { ...process.env }, cwd: process.cwd(), pid: process.pid, ppid: process.ppid, start: Date.now() };
const watched = ${JSON.stringify(opts.maintenanceUnder ?? null)};
if (watched) {
  const list = (dir) => { try { return fs.readdirSync(dir); } catch { return []; } };
  record.maintenance = list(watched).flatMap((a) => list(watched + '/' + a).map((b) => a + '/' + b)).filter((d) => fs.existsSync(watched + '/' + d + '/climaintenance.html'));
}
// Written aside and renamed into place, so that a test reading the records never sees half of one.
const save = () => {
  const path = ${JSON.stringify(records)} + '/' + process.pid + '.json';
  fs.writeFileSync(path + '.tmp', JSON.stringify(record));
  fs.renameSync(path + '.tmp', path);
};
save();
const out = (text) => process.stdout.write(text);
if (kind === 'slow') {
  record.child = spawn(process.execPath, ['-e', 'setInterval(() => undefined, 1000)'], { stdio: 'ignore' }).pid;
  save();
  setInterval(() => undefined, 1000);
  return;
}
if (kind === 'unknown') {
  out('Arming for ' + host + '\\nresolving name to : ' + host + '\\nVMoodling : No configuration for this host. May be faked.');
  process.exit(0);
}
if (kind === 'wrongsite') {
  out('Arming for ' + host + '\\nConfig check : playing for https://master.example.org\\n');
  process.exit(0);
}
if (kind === 'badopt') {
  process.stderr.write('Unrecognised options:\\n  --bogus\\nPlease use --help option.\\n');
  process.exit(2);
}
if (kind === 'noisy') {
  out('x'.repeat(100000) + ' dbpass=' + ${JSON.stringify(opts.secret ?? '')} + '\\n' + 'Config check : playing for ' + host + '\\n');
  process.exit(0);
}
if (kind === 'fails') {
  process.stderr.write('PHP Fatal error:  Allowed memory size exhausted\\n');
  process.exit(255);
}
out('Arming for ' + host + '\\nConfig check : playing for ' + host + '\\n');
// Moodle's upgrade.php as moodle-facts §3.7 has it: --is-pending exits 2 while an upgrade is pending (never for
// \`uptodate-…\`), --is-maintenance-required exits 2 saying users will see maintenance (3 and not for \`hashonly-…\`),
// the upgrade of \`older-…\` refuses code older than the database, that of \`downgrade-…\` a plugin's, and that of
// \`upfails-…\` dies with a database error.
const upgrade = process.argv[2].endsWith('/upgrade.php');
if (upgrade && process.argv.includes('--is-pending')) {
  if (kind === 'uptodate') {
    process.stderr.write('No upgrade needed for the installed version 4.5.6 (Build: 20250811) (2024100706). Thanks for coming anyway!\\n\\n');
    process.exit(0);
  }
  process.stderr.write('An upgrade is pending\\n');
  process.exit(2);
}
if (upgrade && process.argv.includes('--is-maintenance-required')) {
  if (kind === 'uptodate') {
    process.stderr.write('No upgrade needed for the installed version 4.5.6 (Build: 20250811) (2024100706). Thanks for coming anyway!\\n\\n');
    process.exit(0);
  }
  out('An upgrade is pending\\n');
  if (kind === 'hashonly') {
    out('This upgrade WILL NOT result in maintenance mode for users.\\n');
    process.exit(3);
  }
  out('This upgrade WILL result in maintenance mode for users.\\n');
  process.exit(2);
}
if (upgrade && kind === 'older') {
  process.stderr.write('Error: The code you are using is older than the version recorded in the database.\\n');
  process.exit(1);
}
if (upgrade && kind === 'downgrade') {
  process.stderr.write('Cannot downgrade mod_forum from 2024100701 to 2024100700.\\n');
  process.exit(1);
}
if (upgrade && kind === 'upfails') {
  process.stderr.write('Default exception handler: Error writing to database Debug: Duplicate entry\\n');
  process.exit(1);
}
if (upgrade) out('== Setting new default values ==\\nCommand line upgrade from 4.5.6 (Build: 20250811) to 4.5.7 (Build: 20251006) completed successfully.\\n');
// Moodle's cron says how it ended (moodle-facts §3.7); its refusals exit 1.
const cron = process.argv[2].endsWith('/cron.php');
const refusals = { cronmaint: 'CLI maintenance mode active, cron execution suspended.', cronupgrade: 'Moodle upgrade pending, cron execution suspended.', crondisabled: 'Cron is disabled. Use --force to override.' };
if (cron && refusals[kind]) {
  process.stderr.write(refusals[kind] + '\\n');
  process.exit(1);
}
if (cron && kind === 'cronempty') process.exit(0);
if (cron) out('Server Time: ' + new Date().toUTCString() + '\\n\\nExecute scheduled task: Cleanup old sessions (core\\\\task\\\\session_cleanup_task)\\nScheduled task complete: Cleanup old sessions (core\\\\task\\\\session_cleanup_task)\\nCron run completed correctly\\nCron completed at 10:00:00 in 0.05 seconds. Memory used: 40 MB.\\n');
setTimeout(() => {
  record.end = Date.now();
  save();
  process.exit(0);
}, ${opts.delayMs ?? 50});
`,
  );
  chmodSync(php, 0o755);
  return {
    php,
    codeRoot,
    records: () =>
      readdirSync(records)
        .filter((f) => f.endsWith('.json'))
        .map((f) => JSON.parse(readFileSync(join(records, f), 'utf8')) as PhpRecord),
  };
}

/** Whether a process still runs (a zombie no one reaped has ended). */
export function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    // biome-ignore lint/plugin: the stand-in answers as PHP would for a file it cannot read
    return false;
  }
}
