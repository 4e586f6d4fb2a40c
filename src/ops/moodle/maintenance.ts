import { chmod, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { MoodleAccess } from './access.ts';
import type { Statements } from './statements.ts';
import { MOODLE_TABLES } from './tables.ts';
import type { MoodleTarget } from './target.ts';

/** The file whose existence is CLI maintenance (moodle-facts §3.2); only its existence matters to Moodle. */
export const CLI_MAINTENANCE_FILE = 'climaintenance.html';

/** Everything that makes a site be in maintenance: web mode and its message, the CLI file, a scheduled maintenance. */
export interface MaintenanceState {
  enabled: boolean;
  message: string;
  file: boolean;
  /** `maintenance_later`, the time a scheduled CLI maintenance starts, or null. */
  later: string | null;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    // biome-ignore lint/plugin: a file that cannot be seen is not there: that is the answer
    return false;
  }
}

/** The settings that make up web and scheduled maintenance, as the database holds them (null: no row). */
export interface MaintenanceSettings {
  maintenance_enabled: string | null;
  maintenance_message: string | null;
  maintenance_later: string | null;
}

/**
 * The site's maintenance as it is now, read in one query inside the caller's transaction (locked when `lock`), with
 * the rows as they are, which the log of a change records as old values.
 */
export async function readMaintenance(
  access: MoodleAccess,
  sql: Statements,
  target: MoodleTarget,
  lock = false,
): Promise<{ state: MaintenanceState; settings: MaintenanceSettings }> {
  return maintenanceOf(target, await sql.read(...maintenanceRead(access, target, lock)));
}

const MAINTENANCE_SETTINGS = ['maintenance_enabled', 'maintenance_message', 'maintenance_later'] as const;

/** The read of the three maintenance settings, locked when they are about to be written. */
export function maintenanceRead(access: MoodleAccess, target: MoodleTarget, lock: boolean): [string, unknown[]] {
  return [
    `SELECT name, value FROM ${access.table(target, MOODLE_TABLES.config)} WHERE name IN (?, ?, ?)${lock ? ' FOR UPDATE' : ''}`,
    [...MAINTENANCE_SETTINGS],
  ];
}

/** The state those rows describe (the CLI file is looked for in the dataroot). */
export async function maintenanceOf(
  target: MoodleTarget,
  rows: Array<{ name: string; value: string }>,
): Promise<{ state: MaintenanceState; settings: MaintenanceSettings }> {
  const settings: MaintenanceSettings = {
    maintenance_enabled: null,
    maintenance_message: null,
    maintenance_later: null,
  };
  for (const row of rows)
    if ((MAINTENANCE_SETTINGS as readonly string[]).includes(row.name))
      settings[row.name as keyof MaintenanceSettings] = row.value;
  const state = {
    enabled: settings.maintenance_enabled === '1',
    message: settings.maintenance_message ?? '',
    file: target.dataroot ? await exists(join(target.dataroot, CLI_MAINTENANCE_FILE)) : false,
    later: settings.maintenance_later || null,
  };
  return { state, settings };
}

/**
 * What the command leaves: web mode and message as asked (the message replaced, as VMoodle's command does), the CLI
 * file made when asked and removed whenever maintenance goes off, and a scheduled maintenance cleared, as
 * maintenance.php's --enable, --enableold and --disable all clear it.
 */
export function wantedMaintenance(
  current: MaintenanceState,
  on: boolean,
  message: string,
  cliFile: boolean,
): MaintenanceState {
  return { enabled: on, message, file: on && (cliFile || current.file), later: null };
}

/** One line an operator reads in a preview, and that compare-and-set and revert read back. */
export function maintenanceText(s: MaintenanceState): string {
  return [
    s.enabled ? 'on' : 'off',
    s.message ? `message ${JSON.stringify(s.message)}` : '',
    s.file ? 'CLI file' : '',
    s.later ? `scheduled for ${new Date(Number(s.later) * 1000).toISOString()}` : '',
  ]
    .filter(Boolean)
    .join('; ');
}

const TEXT = /^(on|off)(?:; message ("(?:[^"\\]|\\.)*"))?(; CLI file)?(?:; scheduled for \S+)?$/;

/** The state a line of maintenanceText describes (a scheduled time is not put back: it is in the past by then). */
export function parseMaintenanceText(text: string | null): Omit<MaintenanceState, 'later'> {
  const m = TEXT.exec(text ?? '');
  if (!m) return { enabled: text === '1', message: '', file: false };
  return { enabled: m[1] === 'on', message: m[2] ? (JSON.parse(m[2]) as string) : '', file: Boolean(m[3]) };
}

/** The scheduled maintenance is cleared without a log row, as maintenance.php clears it. */
export function clearScheduledMaintenance(access: MoodleAccess, sql: Statements, target: MoodleTarget): void {
  sql.write(`DELETE FROM ${access.table(target, MOODLE_TABLES.config)} WHERE name = 'maintenance_later'`);
}

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** As Moodle's html_is_blank(): nothing but tags and spaces, counting a few tags that show something as content. */
const htmlIsBlank = (html: string) =>
  html.replace(/<\/?(?!(?:img|object|applet|input|select|textarea|hr)\b)[a-z][^>]*>/gi, '').trim() === '';

const UNDER_MAINTENANCE = 'The site is undergoing maintenance and is currently not available';

/** The style sheet of Moodle's plain page, as error/plainpage.php inlines it. */
const PLAIN_PAGE_STYLE = `body {
    margin: 0;
    font-family: -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Noto Sans",sans-serif,"Apple Color Emoji","Segoe UI Emoji","Segoe UI Symbol","Noto Color Emoji";
    font-size: .9375rem;
    font-weight: 400;
    line-height: 1.5;
    color: #343a40;
    text-align: left;
    background-color: #f2f2f2;
}
#page {
    margin-top: 15px;
    background: white;
    max-width: 600px;
    margin: 0 auto;
    padding: 15px;
}
#region-main {
    margin: 0 auto;
    border: 1px solid rgba(0,0,0,.125);
    padding: 1rem 1.25rem 1.25rem;
    background-color: #fff;
}
h1 {
    font-size: 2.34rem;
    margin: 0 0 .5rem;
    font-weight: 300;
    line-height: 1.2;
}
.alert-danger {
    color: #6e211e;
    background-color: #f6d9d8;
    border-color: #f3c9c8;
    padding: .75rem 1.25rem;
}
`;

/**
 * Moodle's plain page (error/plainpage.php) as enable_cli_maintenance_mode() fills it, byte for byte: PHP drops the
 * newline after each `?>`, which is why the empty meta and footer leave their indentation on the next line.
 */
function plainPage(title: string, body: string): string {
  return (
    '<!DOCTYPE html>\n<html  lang="en" xml:lang="en">\n    <head>\n' +
    '        <meta http-equiv="Content-Type" content="text/html; charset=utf-8" />\n' +
    `                <title>${title}</title>\n        <style>\n${PLAIN_PAGE_STYLE}    </style>\n    </head>\n` +
    '    <body>\n        <div id="page">\n            <div id="region-main">\n' +
    `                <h1>${title}</h1>\n                <div class='alert-danger'>${body}</div>                            </div>\n` +
    '        </div>\n    </body>\n</html>\n\n'
  );
}

/**
 * Writes the CLI maintenance file as enable_cli_maintenance_mode() does: the message (HTML, as the admin wrote it)
 * under Moodle's title; else the site's climaintenance.template.html verbatim; else "<site> under maintenance".
 * With the site's `$CFG->filepermissions` as its mode.
 */
export async function writeMaintenanceFile(
  access: MoodleAccess,
  sql: Statements,
  target: MoodleTarget,
  message: string,
  mode: number,
): Promise<void> {
  const dataroot = target.dataroot as string;
  let page: string;
  if (!htmlIsBlank(message)) {
    page = plainPage(UNDER_MAINTENANCE, message);
  } else {
    // biome-ignore lint/plugin: no template of the site's own: Moodle's default page is written
    const template = await readFile(join(dataroot, 'climaintenance.template.html'), 'utf8').catch(() => undefined);
    if (template !== undefined) {
      page = template;
    } else {
      const [site] = await sql.read<{ fullname: string }>(
        `SELECT fullname FROM ${access.table(target, MOODLE_TABLES.course)} WHERE id = 1`,
      );
      const fullname = site?.fullname ?? '';
      page = plainPage(`${escapeHtml(fullname)} under maintenance`, UNDER_MAINTENANCE);
    }
  }
  const path = join(dataroot, CLI_MAINTENANCE_FILE);
  await writeFile(path, page);
  await chmod(path, mode);
}

export async function removeMaintenanceFile(target: MoodleTarget): Promise<void> {
  await rm(join(target.dataroot as string, CLI_MAINTENANCE_FILE), { force: true });
}
