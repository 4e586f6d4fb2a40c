import { defineCommand, type CommandContext, type CommandDef } from '../command.ts';
import { invalidateCaches, PURGE_THROUGH_MOODLE } from '../moodle/cache.ts';
import { readAdminLog } from '../moodle/config.ts';
import { categoryByPath, COURSE_FIELDS, createCategories, findCourses, readCourseTree, setCategoryVisibility, setCourseVisibility, type CourseTree } from '../moodle/courses.ts';
import type { MoodleTarget } from '../moodle/target.ts';

const IDNUMBER = /^[^\n]{1,100}$/;

/** `Faculty/Physics/Year 1`: names separated by `/`, none empty, each at most 255 characters as Moodle allows. */
export function pathNames(path: string): string[] {
  return path.split('/').map((n) => n.trim());
}

const pathProblem = (path: string) => {
  const names = pathNames(path);
  if (names.some((n) => n === '')) return `'${path}' has an empty name: write the names separated by /, e.g. Faculty/Physics`;
  if (names.some((n) => n.length > 255)) return 'a category name is at most 255 characters';
  return undefined;
};

const treeOn = (ctx: CommandContext, target: MoodleTarget) =>
  ctx.moodle.withStatements(target, (sql) => readCourseTree(ctx.moodle, sql, target, false), false);

const shownVisibility = (visible: number | boolean) => (visible ? 'visible' : 'hidden');

/** Writes run where the site's caches are; nothing is read from a source. */
const COURSE_WRITE = { destructive: false, idempotent: true, needsSource: false, writes: true, runsOn: 'node', phpScripts: PURGE_THROUGH_MOODLE } as const;

/** What createcategory would do on a site: nothing, or create these names under the last category found. */
function categoryPlan(tree: CourseTree, names: string[], idnumber: string) {
  const { found, missing } = categoryByPath(tree, names);
  const taken = idnumber ? tree.categories.find((c) => c.idnumber === idnumber) : undefined;
  const leaf = missing.length === 0 ? found.at(-1) : undefined;
  if (leaf && (!idnumber || leaf.idnumber === idnumber)) return { exists: true as const };
  if (leaf) return { problem: `${names.join('/')} exists with idnumber ${JSON.stringify(leaf.idnumber ?? '')}, not ${JSON.stringify(idnumber)}` };
  if (taken) return { problem: `the idnumber ${JSON.stringify(idnumber)} is taken by category ${JSON.stringify(taken.name)} (id ${taken.id})` };
  return { missing, under: found.map((c) => c.name).join('/') };
}

export const createCategory = defineCommand({
  name: 'courses/createcategory',
  category: 'courses',
  summary: "Create a course category by its path of names (missing parents too), as core_course_category::create() does",
  params: [
    { name: 'path', type: 'text', label: 'Path of names (e.g. Faculty/Physics/Year 1)', validate: pathProblem },
    { name: 'idnumber', type: 'text', label: 'ID number of the last category', default: '', validate: (v) => (v === '' || IDNUMBER.test(v) ? undefined : 'at most 100 characters on one line') },
    { name: 'visible', type: 'boolean', label: 'Visible (else hidden, with its courses)', default: '1' },
  ],
  ...COURSE_WRITE,
  reversible: false,
  async preview(ctx, target, p) {
    const plan = categoryPlan(await treeOn(ctx, target), pathNames(p.path), p.idnumber);
    if ('exists' in plan) return { note: 'already there' };
    if (plan.problem) return { note: `refused: ${plan.problem}` };
    return { note: `create ${plan.missing?.join('/')}${plan.under ? ` under ${plan.under}` : ' at the top'}` };
  },
  async apply(ctx, target, p) {
    const names = pathNames(p.path);
    const done = await ctx.moodle.withStatements(target, async (sql) => {
      const tree = await readCourseTree(ctx.moodle, sql, target, true);
      const plan = categoryPlan(tree, names, p.idnumber);
      if ('exists' in plan) return undefined;
      if (plan.problem) return { problem: plan.problem };
      return createCategories(ctx.moodle, sql, target, tree, names, { idnumber: p.idnumber || null, visible: p.visible === '1' });
    });
    if (!done) return { status: 'already_applied', message: `${p.path} is already there` };
    if ('problem' in done) return { status: 'conflict', message: `${done.problem}; nothing written` };
    const ids = done.created.map((c) => `${c.name} (id ${c.id})`).join(', ');
    return { status: 'applied', message: `created ${ids}`, ...(await invalidateCaches(ctx, target, done.caches)) };
  },
});

export const categoryVisibility = defineCommand({
  name: 'courses/categoryvisibility',
  category: 'courses',
  summary: 'Hide or show a course category by its idnumber, with its subcategories and courses, as hide() and show() do',
  params: [
    { name: 'idnumber', type: 'text', label: 'Category ID number', validate: (v) => (IDNUMBER.test(v) ? undefined : 'at most 100 characters on one line') },
    { name: 'visible', type: 'boolean', label: 'Visible' },
  ],
  ...COURSE_WRITE,
  reversible: true,
  async preview(ctx, target, p) {
    const category = (await treeOn(ctx, target)).categories.find((c) => c.idnumber === p.idnumber);
    if (!category) return { note: `no category with idnumber ${p.idnumber} here` };
    return { old: shownVisibility(category.visible), new: shownVisibility(p.visible === '1') };
  },
  async apply(ctx, target, p, planned) {
    const done = await ctx.moodle.withStatements(target, async (sql) => {
      const tree = await readCourseTree(ctx.moodle, sql, target, true);
      const category = tree.categories.find((c) => c.idnumber === p.idnumber);
      if (!category) return { status: 'failed' as const };
      const shown = { old: shownVisibility(category.visible), new: shownVisibility(p.visible === '1') };
      if (!planned.matchesPlan(shown.old)) return { status: 'conflict' as const, ...shown, caches: [] };
      const caches = setCategoryVisibility(ctx.moodle, sql, target, tree, category, p.visible === '1');
      return { status: caches.length ? 'applied' as const : 'already_applied' as const, ...shown, caches };
    });
    if (done.status === 'failed') throw new Error(`no category with idnumber ${p.idnumber} on ${target.host.shortname}`);
    const { caches, ...outcome } = done;
    if (outcome.status === 'conflict') return { ...outcome, message: 'changed by someone else since the plan was made; nothing written' };
    return outcome.status === 'applied' ? { ...outcome, ...(await invalidateCaches(ctx, target, caches)) } : outcome;
  },
  revertParams: (p, old) => ({ ...p, visible: old === 'visible' ? '1' : '0' }),
});

const fieldParam = (fields: readonly string[]) => ({ name: 'field', type: 'enum', label: 'Find the course by', choices: fields, default: 'shortname' }) as const;
const valueParam = { name: 'value', type: 'text', label: 'Short name, ID number, or a full name with % and _ as in SQL LIKE', validate: (v: string) => (v.trim() ? undefined : 'give the course to look for') } as const;

export const checkCourse = defineCommand({
  name: 'courses/checkcourse',
  category: 'courses',
  summary: 'Find courses by short name, ID number or full name (LIKE) on each target',
  params: [fieldParam(COURSE_FIELDS), valueParam],
  destructive: false,
  reversible: false,
  idempotent: true,
  needsSource: false,
  writes: false,
  async apply(ctx, target, p) {
    const found = await ctx.moodle.withStatements(target, (sql) => findCourses(ctx.moodle, sql, target, p.field as (typeof COURSE_FIELDS)[number], p.value), false);
    return { status: 'applied', value: found.map((c) => `[${c.shortname}] ${c.fullname} (${c.idnumber})`).join('; '), message: `${found.length} course${found.length === 1 ? '' : 's'}` };
  },
});

export const courseVisibility = defineCommand({
  name: 'courses/visibility',
  category: 'courses',
  summary: 'Hide or show a course by its short name or ID number, as course_change_visibility() does',
  params: [fieldParam(['shortname', 'idnumber']), valueParam, { name: 'visible', type: 'boolean', label: 'Visible' }],
  ...COURSE_WRITE,
  reversible: true,
  async preview(ctx, target, p) {
    const [course] = await ctx.moodle.withStatements(target, (sql) => findCourses(ctx.moodle, sql, target, p.field as 'shortname' | 'idnumber', p.value), false);
    if (!course) return { note: `no course with ${p.field} ${p.value} here` };
    return { old: shownVisibility(course.visible), new: shownVisibility(p.visible === '1') };
  },
  async apply(ctx, target, p, planned) {
    const done = await ctx.moodle.withStatements(target, async (sql) => {
      const courses = await findCourses(ctx.moodle, sql, target, p.field as 'shortname' | 'idnumber', p.value);
      if (courses.length !== 1) {
        throw new Error(courses.length === 0 ? `no course with ${p.field} ${p.value} on ${target.host.shortname}` : `${courses.length} courses have ${p.field} ${p.value} on ${target.host.shortname}: name one by its ID number`);
      }
      const [course] = courses as [(typeof courses)[number]];
      const shown = { old: shownVisibility(course.visible), new: shownVisibility(p.visible === '1') };
      if (!planned.matchesPlan(shown.old)) return { ...shown, conflict: true, caches: [] };
      const log = await readAdminLog(ctx.moodle, sql, target);
      return { ...shown, conflict: false, caches: await setCourseVisibility(ctx.moodle, sql, target, log, course, p.visible === '1') };
    });
    const shown = { old: done.old, new: done.new };
    if (done.conflict) return { status: 'conflict', ...shown, message: 'changed by someone else since the plan was made; nothing written' };
    if (done.caches.length === 0) return { status: 'already_applied', ...shown };
    return { status: 'applied', ...shown, ...(await invalidateCaches(ctx, target, done.caches)) };
  },
  revertParams: (p, old) => ({ ...p, visible: old === 'visible' ? '1' : '0' }),
});

export const COURSE_COMMANDS: readonly CommandDef[] = [createCategory, categoryVisibility, checkCourse, courseVisibility];
