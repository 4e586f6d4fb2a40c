import type { MoodleAccess } from '../moodle/access.ts';
import { CONTEXT } from '../moodle/events.ts';
import type { Statements } from '../moodle/statements.ts';
import { MOODLE_TABLES } from '../moodle/tables.ts';
import type { MoodleTarget } from '../moodle/target.ts';

/**
 * A source context told in words every site shares, since context ids differ from site to site: the system, the
 * front page, or a category, course or activity by its idnumber (an activity's within its course's).
 */
export type PortableContext =
  | { level: 'system' }
  | { level: 'site' }
  | { level: 'category'; idnumber: string }
  | { level: 'course'; idnumber: string }
  /** An activity; its module (forum, resource…) unsaid when an operator names it. */
  | { level: 'module'; course: string; idnumber: string; module?: string }
  /** A context no other site can have a counterpart of (a user's, a block's, one without an idnumber): why. */
  | { level: 'none'; why: string };

/** How a context is named to the operator. */
export function contextLabel(c: PortableContext): string {
  switch (c.level) {
    case 'system':
      return 'system';
    case 'site':
      return 'front page';
    case 'category':
      return `category ${c.idnumber}`;
    case 'course':
      return `course ${c.idnumber}`;
    case 'module':
      return `${c.module ?? 'activity'} ${c.idnumber} in course ${c.course}`;
    case 'none':
      return c.why;
  }
}

const ids = (values: Iterable<number>) => {
  const list = [...new Set(values)];
  return list.length > 0 ? list : [0];
};

/** The front page course: Moodle's SITEID, the one course without a category. */
const siteCourse = (t: (n: string) => string) => `(SELECT MIN(id) FROM ${t(MOODLE_TABLES.course)} WHERE category = 0)`;

/** Tells a source site's contexts in portable words, in one round trip. */
export async function describeContexts(
  access: MoodleAccess,
  sql: Statements,
  site: MoodleTarget,
  contextIds: Iterable<number>,
): Promise<Map<number, PortableContext>> {
  const t = (n: string) => access.table(site, n);
  const [contexts] = await sql.readAll<[{ id: number; contextlevel: number; instanceid: number }]>([
    [`SELECT id, contextlevel, instanceid FROM ${t(MOODLE_TABLES.context)} WHERE id IN (?)`, [ids(contextIds)]],
  ]);
  const at = (level: number) =>
    contexts.filter((c) => Number(c.contextlevel) === level).map((c) => Number(c.instanceid));
  const [cms] = await sql.readAll<[{ id: number; course: number; idnumber: string | null; name: string }]>([
    [
      `SELECT cm.id, cm.course, cm.idnumber, m.name FROM ${t(MOODLE_TABLES.courseModules)} cm JOIN ${t(MOODLE_TABLES.modules)} m ON m.id = cm.module WHERE cm.id IN (?)`,
      [ids(at(CONTEXT.module))],
    ],
  ]);
  const [courses, categories] = await sql.readAll<
    [{ id: number; idnumber: string; site: number }, { id: number; idnumber: string | null }]
  >([
    [
      `SELECT id, idnumber, id = ${siteCourse(t)} AS site FROM ${t(MOODLE_TABLES.course)} WHERE id IN (?)`,
      [ids([...at(CONTEXT.course), ...cms.map((c) => Number(c.course))])],
    ],
    [`SELECT id, idnumber FROM ${t(MOODLE_TABLES.courseCategories)} WHERE id IN (?)`, [ids(at(CONTEXT.coursecat))]],
  ]);
  const course = new Map(courses.map((c) => [Number(c.id), c]));
  const courseWords = (id: number): PortableContext => {
    const row = course.get(id);
    if (!row) return { level: 'none', why: `course id ${id}, which is gone` };
    if (Number(row.site) === 1) return { level: 'site' };
    return row.idnumber
      ? { level: 'course', idnumber: row.idnumber }
      : { level: 'none', why: `course id ${id}, which has no idnumber` };
  };
  const category = new Map(categories.map((c) => [Number(c.id), c.idnumber]));
  const cm = new Map(cms.map((c) => [Number(c.id), c]));
  const words = (c: { contextlevel: number; instanceid: number }): PortableContext => {
    const id = Number(c.instanceid);
    switch (Number(c.contextlevel)) {
      case CONTEXT.system:
        return { level: 'system' };
      case CONTEXT.course:
        return courseWords(id);
      case CONTEXT.coursecat: {
        const idnumber = category.get(id);
        return idnumber
          ? { level: 'category', idnumber }
          : { level: 'none', why: `category id ${id}, which has no idnumber` };
      }
      case CONTEXT.module: {
        const row = cm.get(id);
        if (!row) return { level: 'none', why: `activity id ${id}, which is gone` };
        const within = courseWords(Number(row.course));
        if (!row.idnumber) return { level: 'none', why: `${row.name} id ${id}, which has no idnumber` };
        if (within.level !== 'course')
          return { level: 'none', why: `${row.name} ${row.idnumber}, whose course has no idnumber` };
        return { level: 'module', course: within.idnumber, idnumber: row.idnumber, module: row.name };
      }
      case CONTEXT.user:
        return { level: 'none', why: `a user's context (id ${id})` };
      default:
        return { level: 'none', why: `a block's or other context (level ${c.contextlevel})` };
    }
  };
  return new Map(contexts.map((c) => [Number(c.id), words(c)]));
}

/** Where a portable context is on one site: its context id, or why there is none (nothing is guessed). */
export type MappedContext = { id: number } | { missing: string };

/** Finds each portable context's counterpart on a site, in two round trips. */
export async function mapContexts(
  access: MoodleAccess,
  sql: Statements,
  site: MoodleTarget,
  wanted: readonly PortableContext[],
): Promise<Map<PortableContext, MappedContext>> {
  const t = (n: string) => access.table(site, n);
  const of = <L extends PortableContext['level']>(level: L) =>
    wanted.filter((w): w is Extract<PortableContext, { level: L }> => w.level === level);
  const courseIdnumbers = [...of('course').map((c) => c.idnumber), ...of('module').map((m) => m.course)];
  const [system, front, courses, categories] = await sql.readAll<
    [{ id: number }, { id: number }, { id: number; idnumber: string; ctx: number }, { idnumber: string; ctx: number }]
  >([
    [`SELECT id FROM ${t(MOODLE_TABLES.context)} WHERE contextlevel = ? ORDER BY id LIMIT 1`, [CONTEXT.system]],
    [
      `SELECT id FROM ${t(MOODLE_TABLES.context)} WHERE contextlevel = ? AND instanceid = ${siteCourse(t)}`,
      [CONTEXT.course],
    ],
    [
      `SELECT c.id, c.idnumber, x.id AS ctx FROM ${t(MOODLE_TABLES.course)} c JOIN ${t(MOODLE_TABLES.context)} x ON x.contextlevel = ? AND x.instanceid = c.id WHERE c.idnumber IN (?)`,
      [CONTEXT.course, courseIdnumbers.length ? courseIdnumbers : ['']],
    ],
    [
      `SELECT cc.idnumber, x.id AS ctx FROM ${t(MOODLE_TABLES.courseCategories)} cc JOIN ${t(MOODLE_TABLES.context)} x ON x.contextlevel = ? AND x.instanceid = cc.id WHERE cc.idnumber IN (?)`,
      [
        CONTEXT.coursecat,
        of('category')
          .map((c) => c.idnumber)
          .concat(['']),
      ],
    ],
  ]);
  const unique = <R extends { idnumber: string }>(rows: R[], idnumber: string, what: string): R | string => {
    const found = rows.filter((r) => r.idnumber === idnumber);
    if (found.length === 1) return found[0] as R;
    return found.length === 0
      ? `no ${what} has idnumber ${idnumber} here`
      : `${found.length} ${what}s have idnumber ${idnumber} here`;
  };
  const modules = of('module');
  const [cms] = await sql.readAll<[{ course: number; idnumber: string; name: string; ctx: number }]>([
    [
      `SELECT cm.course, cm.idnumber, m.name, x.id AS ctx FROM ${t(MOODLE_TABLES.courseModules)} cm JOIN ${t(MOODLE_TABLES.modules)} m ON m.id = cm.module
      JOIN ${t(MOODLE_TABLES.context)} x ON x.contextlevel = ? AND x.instanceid = cm.id WHERE cm.course IN (?) AND cm.idnumber IN (?)`,
      [CONTEXT.module, ids(courses.map((c) => Number(c.id))), modules.map((m) => m.idnumber).concat([''])],
    ],
  ]);
  const mapped = new Map<PortableContext, MappedContext>();
  for (const w of wanted) {
    const result = ((): MappedContext => {
      switch (w.level) {
        case 'system':
          return system[0] ? { id: Number(system[0].id) } : { missing: 'this site has no system context' };
        case 'site':
          return front[0] ? { id: Number(front[0].id) } : { missing: 'this site has no front page course' };
        case 'category': {
          const row = unique(categories, w.idnumber, 'category');
          return typeof row === 'string' ? { missing: row } : { id: Number(row.ctx) };
        }
        case 'course': {
          const row = unique(courses, w.idnumber, 'course');
          return typeof row === 'string' ? { missing: row } : { id: Number(row.ctx) };
        }
        case 'module': {
          const course = unique(courses, w.course, 'course');
          if (typeof course === 'string') return { missing: course };
          const found = cms.filter((c) => Number(c.course) === Number(course.id) && c.idnumber === w.idnumber);
          const same = found.filter((c) => w.module === undefined || c.name === w.module);
          if (same.length === 1) return { id: Number((same[0] as { ctx: number }).ctx) };
          if (found.length > same.length)
            return { missing: `the activity ${w.idnumber} of course ${w.course} is not a ${w.module} here` };
          return {
            missing:
              same.length === 0
                ? `course ${w.course} has no activity ${w.idnumber} here`
                : `course ${w.course} has ${same.length} activities ${w.idnumber} here`,
          };
        }
        case 'none':
          return { missing: `${w.why} has no counterpart on another site` };
      }
    })();
    mapped.set(w, result);
  }
  return mapped;
}
