import { defineCommand, type CommandContext, type CommandDef } from './command.ts';
import { invalidateCaches, PURGE_THROUGH_MOODLE } from '../moodle/cache.ts';
import { readAdminLog } from '../moodle/config.ts';
import {
  categoryByPath,
  COURSE_FIELDS,
  createCategories,
  findCourses,
  readCourseTree,
  setCategoryVisibility,
  setCourseVisibility,
  type CourseTree,
} from '../moodle/course-tree.ts';
import { PhpError } from '../moodle/php.ts';
import { READ_ONLY } from './traits.ts';
import { type MoodleTarget, TargetError } from '../moodle/target.ts';

const IDNUMBER = /^[^\n]{1,100}$/;

/** `Faculty/Physics/Year 1`: names separated by `/`, none empty, each at most 255 characters as Moodle allows. */
function pathNames(path: string): string[] {
  return path.split('/').map((n) => n.trim());
}

const pathProblem = (path: string) => {
  const names = pathNames(path);
  if (names.some((n) => n === ''))
    return `'${path}' has an empty name: write the names separated by /, e.g. Faculty/Physics`;
  if (names.some((n) => n.length > 255)) return 'a category name is at most 255 characters';
  return undefined;
};

const treeOn = (ctx: CommandContext, target: MoodleTarget) =>
  ctx.moodle.withStatements(target, (sql) => readCourseTree(ctx.moodle, sql, target, false), false);

const shownVisibility = (visible: number | boolean) => (visible ? 'visible' : 'hidden');

/** Writes run where the site's caches are; nothing is read from a source. */
const COURSE_WRITE = {
  destructive: false,
  idempotent: true,
  needsSource: false,
  writes: true,
  runsOn: 'node',
  phpScripts: PURGE_THROUGH_MOODLE,
} as const;

/** What createcategory would do on a site: nothing, or create these names under the last category found. */
function categoryPlan(tree: CourseTree, names: string[], idnumber: string) {
  const { found, missing } = categoryByPath(tree, names);
  const taken = idnumber ? tree.categories.find((c) => c.idnumber === idnumber) : undefined;
  const leaf = missing.length === 0 ? found.at(-1) : undefined;
  if (leaf && (!idnumber || leaf.idnumber === idnumber)) return { exists: true as const };
  if (leaf)
    return {
      problem: `${names.join('/')} exists with idnumber ${JSON.stringify(leaf.idnumber ?? '')}, not ${JSON.stringify(idnumber)}`,
    };
  if (taken)
    return {
      problem: `the idnumber ${JSON.stringify(idnumber)} is taken by category ${JSON.stringify(taken.name)} (id ${taken.id})`,
    };
  return { missing, under: found.map((c) => c.name).join('/') };
}

export const createCategory = defineCommand({
  name: 'courses/createcategory',
  category: 'courses',
  summary:
    'Create a course category by its path of names (missing parents too), as core_course_category::create() does',
  params: [
    { name: 'path', type: 'text', label: 'Path of names (e.g. Faculty/Physics/Year 1)', validate: pathProblem },
    {
      name: 'idnumber',
      type: 'text',
      label: 'ID number of the last category',
      default: '',
      validate: (v) => (v === '' || IDNUMBER.test(v) ? undefined : 'at most 100 characters on one line'),
    },
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
      return createCategories(ctx.moodle, sql, target, tree, names, {
        idnumber: p.idnumber || null,
        visible: p.visible === '1',
      });
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
  summary:
    'Hide or show a course category by its idnumber, with its subcategories and courses, as hide() and show() do',
  params: [
    {
      name: 'idnumber',
      type: 'text',
      label: 'Category ID number',
      validate: (v) => (IDNUMBER.test(v) ? undefined : 'at most 100 characters on one line'),
    },
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
      if (shown.old !== shown.new && !planned.matchesPlan(shown.old))
        return { status: 'conflict' as const, ...shown, caches: [] };
      const caches = setCategoryVisibility(ctx.moodle, sql, target, tree, category, p.visible === '1');
      if (caches.length) await planned.beforeWrite(shown.old);
      return { status: caches.length ? ('applied' as const) : ('already_applied' as const), ...shown, caches };
    });
    if (done.status === 'failed')
      throw new TargetError(`no category with idnumber ${p.idnumber} on ${target.host.shortname}`);
    const { caches, ...outcome } = done;
    if (outcome.status === 'conflict')
      return { ...outcome, message: 'changed by someone else since the plan was made; nothing written' };
    return outcome.status === 'applied' ? { ...outcome, ...(await invalidateCaches(ctx, target, caches)) } : outcome;
  },
  revertParams: (p, old) => ({ ...p, visible: old === 'visible' ? '1' : '0' }),
});

const fieldParam = (fields: readonly string[]) =>
  ({ name: 'field', type: 'enum', label: 'Find the course by', choices: fields, default: 'shortname' }) as const;
const valueParam = {
  name: 'value',
  type: 'text',
  label: 'Short name, ID number, or a full name with % and _ as in SQL LIKE',
  validate: (v: string) => (v.trim() ? undefined : 'give the course to look for'),
} as const;

export const checkCourse = defineCommand({
  name: 'courses/checkcourse',
  category: 'courses',
  summary: 'Find courses by short name, ID number or full name (LIKE) on each target',
  params: [fieldParam(COURSE_FIELDS), valueParam],
  ...READ_ONLY,
  async apply(ctx, target, p) {
    const found = await ctx.moodle.withStatements(
      target,
      (sql) => findCourses(ctx.moodle, sql, target, p.field as (typeof COURSE_FIELDS)[number], p.value),
      false,
    );
    return {
      status: 'applied',
      value: found.map((c) => `[${c.shortname}] ${c.fullname} (${c.idnumber})`).join('; '),
      message: `${found.length} course${found.length === 1 ? '' : 's'}`,
    };
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
    const [course] = await ctx.moodle.withStatements(
      target,
      (sql) => findCourses(ctx.moodle, sql, target, p.field as 'shortname' | 'idnumber', p.value),
      false,
    );
    if (!course) return { note: `no course with ${p.field} ${p.value} here` };
    return { old: shownVisibility(course.visible), new: shownVisibility(p.visible === '1') };
  },
  async apply(ctx, target, p, planned) {
    const done = await ctx.moodle.withStatements(target, async (sql) => {
      const courses = await findCourses(ctx.moodle, sql, target, p.field as 'shortname' | 'idnumber', p.value);
      if (courses.length !== 1) {
        throw new TargetError(
          courses.length === 0
            ? `no course with ${p.field} ${p.value} on ${target.host.shortname}`
            : `${courses.length} courses have ${p.field} ${p.value} on ${target.host.shortname}: name one by its ID number`,
        );
      }
      const [course] = courses as [(typeof courses)[number]];
      const shown = { old: shownVisibility(course.visible), new: shownVisibility(p.visible === '1') };
      if (shown.old !== shown.new && !planned.matchesPlan(shown.old)) return { ...shown, conflict: true, caches: [] };
      const log = await readAdminLog(ctx.moodle, sql, target);
      const caches = await setCourseVisibility(ctx.moodle, sql, target, log, course, p.visible === '1');
      if (caches.length) await planned.beforeWrite(shown.old);
      return { ...shown, conflict: false, caches };
    });
    const shown = { old: done.old, new: done.new };
    if (done.conflict)
      return {
        status: 'conflict',
        ...shown,
        message: 'changed by someone else since the plan was made; nothing written',
      };
    if (done.caches.length === 0) return { status: 'already_applied', ...shown };
    return { status: 'applied', ...shown, ...(await invalidateCaches(ctx, target, done.caches)) };
  },
  revertParams: (p, old) => ({ ...p, visible: old === 'visible' ? '1' : '0' }),
});

const A_WEEK = 7 * 24 * 60;
const minutesProblem = (v: string) =>
  Number(v) >= 0 && Number(v) <= A_WEEK ? undefined : `from 0 to ${A_WEEK} minutes (a week)`;

/** VMoodle's adhoc delay: each target waits `delay` minutes after the start, plus a random share of `spread`. */
const DELAY_PARAMS = [
  {
    name: 'delay',
    type: 'int',
    label: 'Minutes each target waits after the run starts',
    default: '0',
    validate: minutesProblem,
  },
  {
    name: 'spread',
    type: 'int',
    label: 'Minutes over which the targets are spread at random after that',
    default: '0',
    validate: minutesProblem,
  },
] as const;

const delayOf = (p: { delay?: string; spread?: string }) => ({
  minutes: Number(p.delay ?? 0),
  spread: Number(p.spread ?? 0),
});

const ID = /^\d{1,18}$/;
const ONE_LINE = /^[^\0\r\n]{1,255}$/;

/**
 * The wrappers the product ships for these (php/local/vmoodle/cli, installed beside VMoodle's own on each node), with
 * the options each takes: nothing else reaches Moodle's PHP.
 */
const COURSE_SCRIPTS = {
  delete_course: { courseid: ID },
  delete_category: { categoryid: ID },
  empty_category: { categoryid: ID },
  restore_course: {
    file: /^\/(?!.*\/\.\.?(\/|$))[^\0\r\n]*\.mbz$/i,
    categoryid: ID,
    shortname: ONE_LINE,
    fullname: ONE_LINE,
    idnumber: ONE_LINE,
    visible: /^[01]$/,
    enroladmins: /^(managers|siteadmins|adminsandmanagers)$/,
  },
} as const;

/** Work Moodle's own code does, on the target's node: destructive, with VMoodle's delay and spread. */
const THROUGH_PHP = {
  needsSource: false,
  writes: true,
  runsOn: 'php',
  phpScripts: COURSE_SCRIPTS,
  reversible: false,
  idempotent: true,
  delay: delayOf,
} as const;

/** A wrapper run that must succeed; its last line says what Moodle did. */
async function runWrapper(
  ctx: CommandContext,
  target: MoodleTarget,
  script: keyof typeof COURSE_SCRIPTS,
  options: Record<string, string>,
): Promise<string> {
  const run = await ctx.php(target, script, options);
  if (!run.ok) throw new PhpError(run.message);
  return run.stdout.trim().split('\n').at(-1) ?? run.message;
}

export const deleteCourse = defineCommand({
  name: 'courses/deletecourse',
  category: 'courses',
  summary:
    "Delete courses by short name, ID number or full name (LIKE) with Moodle's delete_course(), through its PHP on the node",
  params: [fieldParam(COURSE_FIELDS), valueParam, ...DELAY_PARAMS],
  destructive: true,
  ...THROUGH_PHP,
  async preview(ctx, target, p) {
    const found = await ctx.moodle.withStatements(
      target,
      (sql) => findCourses(ctx.moodle, sql, target, p.field as (typeof COURSE_FIELDS)[number], p.value),
      false,
    );
    return {
      note: found.length ? `delete ${found.map((c) => c.shortname).join(', ')}`.slice(0, 200) : 'no such course here',
    };
  },
  async apply(ctx, target, p) {
    const found = await ctx.moodle.withStatements(
      target,
      (sql) => findCourses(ctx.moodle, sql, target, p.field as (typeof COURSE_FIELDS)[number], p.value),
      false,
    );
    if (found.length === 0) return { status: 'already_applied', message: `no course with ${p.field} ${p.value} here` };
    const said: string[] = [];
    for (const course of found)
      said.push(await runWrapper(ctx, target, 'delete_course', { courseid: String(course.id) }));
    return { status: 'applied', message: said.join('; '), cachePurged: true };
  },
});

/** A category by its idnumber, as the PHP commands name it. */
async function categoryId(ctx: CommandContext, target: MoodleTarget, idnumber: string): Promise<number | undefined> {
  return (await treeOn(ctx, target)).categories.find((c) => c.idnumber === idnumber)?.id;
}

const idnumberParam = {
  name: 'idnumber',
  type: 'text',
  label: 'Category ID number',
  validate: (v: string) => (IDNUMBER.test(v) ? undefined : 'at most 100 characters on one line'),
} as const;

/** deletecategory and emptycategory: one wrapper given the category's id. */
function categoryCommand(
  name: 'deletecategory' | 'emptycategory',
  script: 'delete_category' | 'empty_category',
  summary: string,
  what: string,
) {
  return defineCommand({
    name: `courses/${name}`,
    category: 'courses',
    summary,
    params: [idnumberParam, ...DELAY_PARAMS],
    destructive: true,
    ...THROUGH_PHP,
    async preview(ctx, target, p) {
      const id = await categoryId(ctx, target, p.idnumber);
      return { note: id ? `${what} category ${id}` : `no category with idnumber ${p.idnumber} here` };
    },
    async apply(ctx, target, p) {
      const id = await categoryId(ctx, target, p.idnumber);
      if (id === undefined && name === 'deletecategory')
        return { status: 'already_applied', message: `no category with idnumber ${p.idnumber} here` };
      if (id === undefined)
        throw new TargetError(`no category with idnumber ${p.idnumber} on ${target.host.shortname}`);
      return {
        status: 'applied',
        message: await runWrapper(ctx, target, script, { categoryid: String(id) }),
        cachePurged: true,
      };
    },
  });
}

export const deleteCategory = categoryCommand(
  'deletecategory',
  'delete_category',
  "Delete a course category with everything in it (core_course_category::delete_full()), through Moodle's PHP",
  'delete',
);
export const emptyCategory = categoryCommand(
  'emptycategory',
  'empty_category',
  "Delete a category's courses and subcategories, keeping the category, through Moodle's PHP",
  'empty',
);

export const restoreCourse = defineCommand({
  name: 'courses/restorecourse',
  category: 'courses',
  summary: "Restore a course from a .mbz file on the target's node into a category, through Moodle's own restore",
  params: [
    {
      name: 'location',
      type: 'text',
      label: 'Absolute path of the .mbz on the node',
      validate: (v) =>
        COURSE_SCRIPTS.restore_course.file.test(v)
          ? undefined
          : 'an absolute path to a .mbz file, without . or .. parts',
    },
    {
      name: 'catidnumber',
      type: 'text',
      label: 'ID number of the category to restore into',
      validate: (v) => (IDNUMBER.test(v) ? undefined : 'at most 100 characters on one line'),
    },
    {
      name: 'shortname',
      type: 'text',
      label: 'Short name of the new course',
      validate: (v) => (ONE_LINE.test(v) ? undefined : 'one line, at most 255 characters'),
    },
    {
      name: 'fullname',
      type: 'text',
      label: 'Full name of the new course',
      validate: (v) => (ONE_LINE.test(v) ? undefined : 'one line, at most 255 characters'),
    },
    {
      name: 'idnumber',
      type: 'text',
      label: 'ID number of the new course',
      default: '',
      validate: (v) => (v === '' || IDNUMBER.test(v) ? undefined : 'at most 100 characters on one line'),
    },
    { name: 'visible', type: 'boolean', label: 'Visible', default: '1' },
    {
      name: 'enroladmins',
      type: 'enum',
      label: 'Enrol as editing teachers',
      choices: ['none', 'managers', 'siteadmins', 'adminsandmanagers'],
      default: 'none',
    },
    ...DELAY_PARAMS,
  ],
  destructive: false,
  ...THROUGH_PHP,
  async preview(ctx, target, p) {
    const tree = await treeOn(ctx, target);
    const category = tree.categories.find((c) => c.idnumber === p.catidnumber);
    if (!category) return { note: `refused: no category with idnumber ${p.catidnumber} here` };
    if (tree.courses.some((c) => c.shortname === p.shortname))
      return { note: `already there: a course ${p.shortname}` };
    return { note: `restore into ${category.name} (id ${category.id})` };
  },
  async apply(ctx, target, p) {
    const tree = await treeOn(ctx, target);
    const category = tree.categories.find((c) => c.idnumber === p.catidnumber);
    if (!category) throw new TargetError(`no category with idnumber ${p.catidnumber} on ${target.host.shortname}`);
    if (tree.courses.some((c) => c.shortname === p.shortname))
      return { status: 'already_applied', message: `a course ${p.shortname} is already there` };
    if (p.idnumber && tree.courses.some((c) => c.idnumber === p.idnumber))
      return { status: 'conflict', message: `the idnumber ${p.idnumber} is taken by another course; nothing restored` };
    const options: Record<string, string> = {
      file: p.location,
      categoryid: String(category.id),
      shortname: p.shortname,
      fullname: p.fullname,
      visible: p.visible,
    };
    if (p.idnumber) options.idnumber = p.idnumber;
    if (p.enroladmins !== 'none') options.enroladmins = p.enroladmins;
    return { status: 'applied', message: await runWrapper(ctx, target, 'restore_course', options), cachePurged: true };
  },
});

export const COURSE_COMMANDS: readonly CommandDef[] = [
  createCategory,
  categoryVisibility,
  checkCourse,
  courseVisibility,
  deleteCourse,
  deleteCategory,
  emptyCategory,
  restoreCourse,
];
