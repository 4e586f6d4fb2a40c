import { errorKind } from '../../core/errors.ts';
import type { MoodleAccess } from './access.ts';
import { adminOf, adminRead, logStoresOf, logStoresRead } from './config.ts';
import { fixCourseSortorder, type SortCategory, type SortCourse } from './course-sortorder.ts';
import { CONTEXT, logEvent, type LogActor, type LogStores } from './events.ts';
import type { CacheChange } from './muc.ts';
import type { Statements } from './statements.ts';
import { MOODLE_TABLES } from './tables.ts';
import type { MoodleTarget } from './target.ts';

class CourseRefusal extends errorKind('target') {}

interface CategoryRow extends SortCategory {
  name: string;
  idnumber: string | null;
  visible: number;
  visibleold: number;
}

interface CourseRow extends SortCourse {
  shortname: string;
  fullname: string;
  idnumber: string;
  visible: number;
  visibleold: number;
  cacherev: number;
}

/** A site's categories and courses, read (and locked) in one round trip, with what changes are logged with. */
export interface CourseTree {
  categories: CategoryRow[];
  courses: CourseRow[];
  /** Category id → its context's id and path. */
  contexts: Map<number, { id: number; path: string }>;
  maxCourses: number;
  stores: LogStores;
  actor: LogActor;
}

const numeric = <T extends object>(row: T, keys: ReadonlyArray<keyof T>): T => {
  for (const key of keys) (row as Record<keyof T, unknown>)[key] = Number(row[key]);
  return row;
};

export async function readCourseTree(
  access: MoodleAccess,
  sql: Statements,
  target: MoodleTarget,
  lock: boolean,
): Promise<CourseTree> {
  const t = (name: string) => access.table(target, name);
  const forUpdate = lock ? ' FOR UPDATE' : '';
  const [cats, courses, contexts, config, stores, admin] = await sql.readAll<
    [
      CategoryRow,
      CourseRow,
      { id: number; instanceid: number; path: string },
      { value: string },
      { plugin: string; value: string },
      { id: string },
    ]
  >([
    [
      `SELECT id, name, idnumber, parent, sortorder, coursecount, visible, visibleold, depth, path FROM ${t(MOODLE_TABLES.courseCategories)} ORDER BY sortorder, id${forUpdate}`,
      [],
    ],
    [
      `SELECT id, category, sortorder, shortname, fullname, idnumber, visible, visibleold, cacherev FROM ${t(MOODLE_TABLES.course)} ORDER BY id${forUpdate}`,
      [],
    ],
    [`SELECT id, instanceid, path FROM ${t(MOODLE_TABLES.context)} WHERE contextlevel = ?`, [CONTEXT.coursecat]],
    [`SELECT value FROM ${t(MOODLE_TABLES.config)} WHERE name = 'maxcoursesincategory'`, []],
    logStoresRead(access, target),
    adminRead(access, target),
  ]);
  return {
    categories: cats.map((c) =>
      numeric(c, ['id', 'parent', 'sortorder', 'coursecount', 'visible', 'visibleold', 'depth']),
    ),
    courses: courses.map((c) => numeric(c, ['id', 'category', 'sortorder', 'visible', 'visibleold', 'cacherev'])),
    contexts: new Map(contexts.map((c) => [Number(c.instanceid), { id: Number(c.id), path: c.path }])),
    maxCourses: Number(config[0]?.value) > 0 ? Number(config[0]?.value) : 10_000,
    stores: logStoresOf(stores),
    actor: adminOf(admin),
  };
}

/** A category found by its path of names (`Faculty/Physics`), each the first of that name under its parent. */
export function categoryByPath(
  tree: CourseTree,
  names: readonly string[],
): { found: CategoryRow[]; missing: string[] } {
  const found: CategoryRow[] = [];
  let parent = 0;
  for (const [i, name] of names.entries()) {
    const next = tree.categories.find((c) => c.parent === parent && c.name === name);
    if (!next) return { found, missing: names.slice(i) };
    found.push(next);
    parent = next.id;
  }
  return { found, missing: [] };
}

/** What a change to the course tree asks of Moodle's caches: purge_by_event() for each event it fired. */
const eventChanges = (events: Iterable<string>): CacheChange[] => [...new Set(events)].map((event) => ({ event }));

interface Writer {
  access: MoodleAccess;
  sql: Statements;
  target: MoodleTarget;
  tree: CourseTree;
  now: number;
}

const table = (w: Writer, name: string) => w.access.table(w.target, name);

async function lastInsertId(sql: Statements): Promise<number> {
  const [[row]] = await sql.readAll<[{ id: number }]>([['SELECT LAST_INSERT_ID() AS id', []]]);
  return Number((row as { id: number }).id);
}

/** Writes what fix_course_sortorder() changes; the events it fired. */
function writeSortFix(w: Writer): Set<string> {
  const fix = fixCourseSortorder(w.tree.categories, w.tree.courses, w.tree.maxCourses);
  for (const [id, change] of fix.categories) {
    const sets = Object.keys(change)
      .map((k) => `${k} = ?`)
      .join(', ');
    w.sql.write(`UPDATE ${table(w, MOODLE_TABLES.courseCategories)} SET ${sets} WHERE id = ?`, [
      ...Object.values(change),
      id,
    ]);
    Object.assign(w.tree.categories.find((c) => c.id === id) as CategoryRow, change);
  }
  for (const [id, sortorder] of fix.courses) {
    w.sql.write(`UPDATE ${table(w, MOODLE_TABLES.course)} SET sortorder = ? WHERE id = ?`, [sortorder, id]);
    (w.tree.courses.find((c) => c.id === id) as CourseRow).sortorder = sortorder;
  }
  return fix.events;
}

/**
 * core_course_category::create() for each missing name of a path, under the last one found: the row (visible as its
 * parent unless asked hidden, the idnumber on the last one only), its path, fix_course_sortorder(), its context, the
 * `course_category_created` event, and purge_by_event('changesincoursecat'). The categories made, and the cache changes.
 */
export async function createCategories(
  access: MoodleAccess,
  sql: Statements,
  target: MoodleTarget,
  tree: CourseTree,
  names: readonly string[],
  leaf: { idnumber: string | null; visible: boolean },
): Promise<{ created: CategoryRow[]; caches: CacheChange[] }> {
  const w: Writer = { access, sql, target, tree, now: Math.floor(Date.now() / 1000) };
  const { found, missing } = categoryByPath(tree, names);
  const created: CategoryRow[] = [];
  const fired = new Set<string>();
  let parent = found.at(-1);
  for (const [i, name] of missing.entries()) {
    const last = i === missing.length - 1;
    const hidden = last && !leaf.visible;
    const row = {
      name,
      idnumber: last ? leaf.idnumber : null,
      parent: parent?.id ?? 0,
      depth: (parent?.depth ?? 0) + 1,
      visible: hidden ? 0 : (parent?.visible ?? 1),
      visibleold: hidden ? 0 : 1,
    };
    sql.write(
      `INSERT INTO ${table(w, MOODLE_TABLES.courseCategories)} (name, idnumber, description, descriptionformat, parent, sortorder, visible, visibleold, timemodified, depth, path)
       VALUES (?, ?, '', 0, ?, 0, ?, ?, ?, ?, '')`,
      [row.name, row.idnumber, row.parent, row.visible, row.visibleold, w.now, row.depth],
    );
    const id = await lastInsertId(sql);
    const category: CategoryRow = { ...row, id, sortorder: 0, coursecount: 0, path: `${parent?.path ?? ''}/${id}` };
    sql.write(`UPDATE ${table(w, MOODLE_TABLES.courseCategories)} SET path = ? WHERE id = ?`, [category.path, id]);
    tree.categories.push(category);
    for (const event of writeSortFix(w)) fired.add(event);
    // The context comes after the sortorder is fixed, as create() makes it: under its parent category's, or the system's.
    const parentContext = parent ? tree.contexts.get(parent.id) : { id: 1, path: '/1' };
    if (!parentContext)
      throw new CourseRefusal(
        `category ${parent?.id} has no context: Moodle's context repair (build_all_paths) is needed first`,
      );
    sql.write(
      `INSERT INTO ${table(w, MOODLE_TABLES.context)} (contextlevel, instanceid, depth, path, locked) VALUES (?, ?, 0, NULL, 0)`,
      [CONTEXT.coursecat, id],
    );
    const contextId = await lastInsertId(sql);
    const path = `${parentContext.path}/${contextId}`;
    sql.write(`UPDATE ${table(w, MOODLE_TABLES.context)} SET path = ?, depth = ? WHERE id = ?`, [
      path,
      path.split('/').length - 1,
      contextId,
    ]);
    tree.contexts.set(id, { id: contextId, path });
    logEvent(
      access,
      sql,
      target,
      {
        name: 'course_category_created',
        objecttable: MOODLE_TABLES.courseCategories,
        objectid: id,
        crud: 'c',
        edulevel: 0,
        context: { id: contextId, level: CONTEXT.coursecat, instance: id },
        other: null,
      },
      tree.stores,
      tree.actor,
      w.now,
    );
    fired.add('changesincoursecat');
    created.push(category);
    parent = category;
  }
  return { created, caches: eventChanges(fired) };
}

/** course_category_updated, as hide() and show() log it. */
function logCategoryUpdated(w: Writer, category: CategoryRow): void {
  const context = w.tree.contexts.get(category.id);
  if (!context) throw new CourseRefusal(`category ${category.id} has no context`);
  logEvent(
    w.access,
    w.sql,
    w.target,
    {
      name: 'course_category_updated',
      objecttable: MOODLE_TABLES.courseCategories,
      objectid: category.id,
      crud: 'u',
      edulevel: 0,
      context: { id: context.id, level: CONTEXT.coursecat, instance: category.id },
      other: null,
    },
    w.tree.stores,
    w.tree.actor,
    w.now,
  );
}

/**
 * core_course_category::hide() or show(): the category, its subcategories and their courses, through visibleold as
 * hide_raw() and show_raw() keep it, then `course_category_updated` and purge_by_event('changesincoursecat'). No
 * cache changes when nothing changed.
 */
export function setCategoryVisibility(
  access: MoodleAccess,
  sql: Statements,
  target: MoodleTarget,
  tree: CourseTree,
  category: CategoryRow,
  visible: boolean,
): CacheChange[] {
  const w: Writer = { access, sql, target, tree, now: Math.floor(Date.now() / 1000) };
  const cats = table(w, MOODLE_TABLES.courseCategories);
  const courses = table(w, MOODLE_TABLES.course);
  const subcategories = tree.categories.filter((c) => c.path.startsWith(`${category.path}/`));
  let changed = false;
  if (!visible) {
    if (category.visibleold !== 0) {
      sql.write(`UPDATE ${cats} SET visibleold = 0 WHERE id = ?`, [category.id]);
      changed = true;
    }
    if (category.visible) {
      sql.write(`UPDATE ${cats} SET visible = 0 WHERE id = ?`, [category.id]);
      for (const cat of [category, ...subcategories]) {
        if (cat !== category)
          sql.write(`UPDATE ${cats} SET visibleold = ?, visible = 0 WHERE id = ?`, [cat.visible, cat.id]);
        sql.write(`UPDATE ${courses} SET visibleold = visible WHERE category = ?`, [cat.id]);
        sql.write(`UPDATE ${courses} SET visible = 0 WHERE category = ?`, [cat.id]);
      }
      changed = true;
    }
  } else if (!category.visible) {
    sql.write(`UPDATE ${cats} SET visible = 1, visibleold = 1 WHERE id = ?`, [category.id]);
    sql.write(`UPDATE ${courses} SET visible = visibleold WHERE category = ?`, [category.id]);
    for (const cat of subcategories) {
      if (cat.visibleold) sql.write(`UPDATE ${cats} SET visible = 1 WHERE id = ?`, [cat.id]);
      sql.write(`UPDATE ${courses} SET visible = visibleold WHERE category = ?`, [cat.id]);
    }
    changed = true;
  }
  if (!changed) return [];
  logCategoryUpdated(w, category);
  return eventChanges(['changesincoursecat']);
}

/** The fields a course is found by. */
export const COURSE_FIELDS = ['shortname', 'idnumber', 'fullname'] as const;
export type CourseField = (typeof COURSE_FIELDS)[number];

/** Courses (never the site course) whose shortname or idnumber is the value, or whose fullname is LIKE it, as the database compares them. */
export async function findCourses(
  access: MoodleAccess,
  sql: Statements,
  target: MoodleTarget,
  field: CourseField,
  value: string,
): Promise<CourseRow[]> {
  const rows = await sql.read<CourseRow>(
    `SELECT id, category, sortorder, shortname, fullname, idnumber, visible, visibleold, cacherev FROM ${access.table(target, MOODLE_TABLES.course)}
     WHERE category <> 0 AND ${field === 'fullname' ? 'fullname LIKE ?' : `${field} = ?`} ORDER BY id`,
    [value],
  );
  return rows.map((c) => numeric(c, ['id', 'category', 'sortorder', 'visible', 'visibleold', 'cacherev']));
}

/** How update_course() moves a course's cacherev on: now, one more when already at or past now, now again when it ran over an hour ahead. */
const nextCacherev = (old: number, now: number) => (old < now || old > now + 3600 ? now : old + 1);

/**
 * course_change_visibility() through update_course(): visible and visibleold, timemodified and cacherev, the course's
 * coursemodinfo and course_image entries deleted, `course_updated` with the fields that changed, and
 * purge_by_event for changesincourse and changesincoursecat. No cache changes when it is already so.
 */
export async function setCourseVisibility(
  access: MoodleAccess,
  sql: Statements,
  target: MoodleTarget,
  log: Pick<CourseTree, 'stores' | 'actor'>,
  course: CourseRow,
  visible: boolean,
): Promise<CacheChange[]> {
  const now = Math.floor(Date.now() / 1000);
  const courseTable = access.table(target, MOODLE_TABLES.course);
  const value = visible ? 1 : 0;
  if (course.visible === value && course.visibleold === value) return [];
  const [context] = await sql.readAll<[{ id: number }]>([
    [
      `SELECT id FROM ${access.table(target, MOODLE_TABLES.context)} WHERE contextlevel = ? AND instanceid = ?`,
      [CONTEXT.course, course.id],
    ],
  ]);
  if (!context[0])
    throw new CourseRefusal(
      `course ${course.shortname} has no context: Moodle's context repair (build_all_paths) is needed first`,
    );
  const updatedfields: Record<string, string> = {};
  if (course.visible !== value) updatedfields.visible = String(value);
  if (course.visibleold !== value) updatedfields.visibleold = String(value);
  sql.write(`UPDATE ${courseTable} SET visible = ?, visibleold = ?, timemodified = ?, cacherev = ? WHERE id = ?`, [
    value,
    value,
    now,
    nextCacherev(course.cacherev, now),
    course.id,
  ]);
  logEvent(
    access,
    sql,
    target,
    {
      name: 'course_updated',
      objecttable: MOODLE_TABLES.course,
      objectid: course.id,
      crud: 'u',
      edulevel: 1,
      courseid: course.id,
      context: { id: Number(context[0].id), level: CONTEXT.course, instance: course.id },
      other: { shortname: course.shortname, fullname: course.fullname, updatedfields },
    },
    log.stores,
    log.actor,
    now,
  );
  course.visible = value;
  course.visibleold = value;
  return [
    { definition: 'core/coursemodinfo', keys: [String(course.id)] },
    { definition: 'core/course_image', keys: [String(course.id)] },
    ...eventChanges(['changesincourse', 'changesincoursecat']),
  ];
}
