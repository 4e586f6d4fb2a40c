import type { MoodleAccess } from './access.ts';
import { phpJsonEncode, phpSerialize } from './php-values.ts';
import type { Statements } from './statements.ts';
import { MOODLE_TABLES } from './tables.ts';
import type { MoodleTarget } from './target.ts';

/** A value as PHP holds it in an event's `other` or a config_log call: its type is kept in the log store's row. */
export type PhpValue = string | number | boolean | null | PhpValue[] | { [key: string]: PhpValue };

/** The two settings that decide whether and how an event is logged by the standard log store (moodle-facts §3.1). */
export interface LogStores {
  enabledStores: string | null;
  jsonformat: string | null;
}

/** Who a change is logged as: cfg.php's user 0 from the CLI, or the admin who saves an admin page. */
export interface LogActor {
  userid: number;
  origin: 'cli' | 'web';
}

export const CLI_ACTOR: LogActor = { userid: 0, origin: 'cli' };

/** Moodle's context levels (moodle-facts §2.2). */
export const CONTEXT = { system: 10, user: 30, coursecat: 40, course: 50, module: 70, block: 80 } as const;

/** The system context, id 1 on every site. */
export const SYSTEM_CONTEXT = { id: 1, level: CONTEXT.system, instance: 0 } as const;

/** Where an event happened: its context, as `\core\event\base` records it. */
interface EventContext {
  id: number | 'LAST_INSERT_ID';
  level: number;
  instance: number;
}

/**
 * One `\core\event\…` event as the standard log store writes it. Component, target and action come from the class
 * name as Moodle's event base derives them (`\core\event\course_category_created` → core, course_category, created).
 */
interface MoodleEvent {
  /** The event class without its namespace, e.g. `capability_assigned`. */
  name: string;
  objecttable: string | null;
  /** An id, or the last id inserted on this connection (a row inserted in the same round trip). */
  objectid: number | 'LAST_INSERT_ID' | null;
  crud: 'c' | 'r' | 'u' | 'd';
  /** 0 other, 1 teaching, 2 participating. */
  edulevel: 0 | 1 | 2;
  context: EventContext;
  courseid?: number;
  other: PhpValue;
}

/** Whether the standard log store is enabled, and in which format it writes `other`; undefined when it writes nothing. */
export function logFormat(stores: LogStores): 'json' | 'serialize' | undefined {
  if (
    !(stores.enabledStores ?? '')
      .split(',')
      .map((s) => s.trim())
      .includes('logstore_standard')
  )
    return undefined;
  return stores.jsonformat === '1' ? 'json' : 'serialize';
}

const sqlId = (id: number | 'LAST_INSERT_ID' | null) => (id === 'LAST_INSERT_ID' ? 'LAST_INSERT_ID()' : '?');
const bound = (id: number | 'LAST_INSERT_ID' | null) => (id === 'LAST_INSERT_ID' ? [] : [id]);

/**
 * Queues the standard log store's row of an event (nothing when the store is not enabled), in the caller's
 * transaction: `other` is json_encode()d or serialize()d as the store's settings say, keeping PHP's types.
 */
export function logEvent(
  access: MoodleAccess,
  sql: Statements,
  target: MoodleTarget,
  event: MoodleEvent,
  stores: LogStores,
  by: LogActor,
  now = Math.floor(Date.now() / 1000),
): void {
  const format = logFormat(stores);
  if (!format) return;
  const parts = event.name.split('_');
  const action = parts.pop() as string;
  const other = format === 'json' ? phpJsonEncode(event.other) : phpSerialize(event.other);
  sql.write(
    `INSERT INTO ${access.table(target, MOODLE_TABLES.logstoreStandardLog)}
      (eventname, component, action, target, objecttable, objectid, crud, edulevel, contextid, contextlevel, contextinstanceid,
       userid, courseid, relateduserid, anonymous, other, timecreated, origin, ip, realuserid)
     VALUES (?, 'core', ?, ?, ?, ${sqlId(event.objectid)}, ?, ?, ${sqlId(event.context.id)}, ?, ?, ?, ?, NULL, 0, ?, ?, ?, NULL, NULL)`,
    [
      `\\core\\event\\${event.name}`,
      action,
      parts.join('_'),
      event.objecttable,
      ...bound(event.objectid),
      event.crud,
      event.edulevel,
      ...bound(event.context.id),
      event.context.level,
      event.context.instance,
      by.userid,
      event.courseid ?? 0,
      other,
      now,
      by.origin,
    ],
  );
}
