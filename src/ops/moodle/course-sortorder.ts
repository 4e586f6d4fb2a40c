import { errorKind } from '../../core/errors.ts';

/** What fix_course_sortorder() reads of a category. */
export interface SortCategory {
  id: number;
  parent: number;
  sortorder: number;
  coursecount: number;
  depth: number;
  path: string;
}

/** What fix_course_sortorder() reads of a course. */
export interface SortCourse {
  id: number;
  category: number;
  sortorder: number;
}

/** What fix_course_sortorder() changes: the columns each row gets, and the invalidation events it fires. */
interface SortFix {
  categories: Map<number, Partial<Pick<SortCategory, 'sortorder' | 'coursecount'>>>;
  courses: Map<number, number>;
  events: Set<'changesincoursecat' | 'changesincourse'>;
}

export class BrokenTree extends errorKind('target') {}

/** MAX_COURSE_CATEGORIES: the sortorder an unsorted category is moved to is this many steps past the last. */
const MAX_COURSE_CATEGORIES = 10_000;

/**
 * What Moodle 4.5's fix_course_sortorder() does to a site's categories and courses, worked out from their rows: new
 * (unsorted) categories go last among their siblings, every category gets a sortorder depth-first in steps of
 * `maxcoursesincategory` (10,000 by default), the site course's sortorder becomes 1, course counts are recounted, and
 * courses are moved into their category's range and renumbered where they collide or leave gaps. A tree whose paths
 * or depths are wrong needs Moodle's own repair of its contexts and is refused; so are several front page courses.
 */
export function fixCourseSortorder(
  categoryRows: readonly SortCategory[],
  courseRows: readonly SortCourse[],
  maxCourses: number,
): SortFix {
  const fix: SortFix = { categories: new Map(), courses: new Map(), events: new Set() };
  const cats = categoryRows.map((c) => ({ ...c }));
  const courses = courseRows.map((c) => ({ ...c }));
  const setCategory = (cat: SortCategory, change: Partial<Pick<SortCategory, 'sortorder' | 'coursecount'>>) => {
    Object.assign(cat, change);
    fix.categories.set(cat.id, { ...fix.categories.get(cat.id), ...change });
  };
  const setCourse = (course: SortCourse, sortorder: number) => {
    course.sortorder = sortorder;
    fix.courses.set(course.id, sortorder);
  };

  for (const cat of cats.filter((c) => c.sortorder === 0)) {
    setCategory(cat, { sortorder: maxCourses * MAX_COURSE_CATEGORIES });
    fix.events.add('changesincoursecat');
  }

  // Siblings in (sortorder, id) order, as the categories are read.
  const ordered = [...cats].sort((a, b) => a.sortorder - b.sortorder || a.id - b.id);
  const byId = new Map(ordered.map((c) => [c.id, c]));
  const children = new Map<number, SortCategory[]>();
  for (const cat of ordered) {
    if (cat.parent !== 0 && !byId.has(cat.parent))
      throw new BrokenTree(
        `category ${cat.id} has a parent (${cat.parent}) that does not exist: Moodle's fix_course_sortorder() must repair it`,
      );
    children.set(cat.parent, [...(children.get(cat.parent) ?? []), cat]);
  }
  let sortorder = 0;
  const walk = (parent: number, depth: number, path: string) => {
    for (const cat of children.get(parent) ?? []) {
      sortorder += maxCourses;
      if (cat.depth !== depth || cat.path !== `${path}/${cat.id}`) {
        throw new BrokenTree(
          `category ${cat.id}'s path or depth is wrong (${cat.path}, ${cat.depth}): Moodle's fix_course_sortorder() must repair it and its contexts`,
        );
      }
      if (cat.sortorder !== sortorder) {
        setCategory(cat, { sortorder });
        fix.events.add('changesincoursecat');
      }
      walk(cat.id, depth + 1, cat.path);
    }
  };
  walk(0, 1, '');

  const front = courses.filter((c) => c.category === 0);
  if (front.length > 1)
    throw new BrokenTree(`${front.length} courses have no category: Moodle's fix_course_sortorder() must move them`);
  if (front[0] && front[0].sortorder !== 1) {
    setCourse(front[0], 1);
    fix.events.add('changesincourse');
  }

  const inCategory = (id: number) => courses.filter((c) => c.category === id);
  for (const cat of cats) {
    const count = inCategory(cat.id).length;
    if (cat.coursecount !== count) {
      setCategory(cat, { coursecount: count });
      fix.events.add('changesincoursecat');
    }
  }

  for (const cat of cats) {
    const own = inCategory(cat.id);
    if (own.some((c) => c.sortorder < cat.sortorder || c.sortorder > cat.sortorder + maxCourses)) {
      for (const c of own) setCourse(c, (c.sortorder % maxCourses) + cat.sortorder);
      fix.events.add('changesincoursecat');
    }
  }

  const bySortorder = new Map<number, number>();
  for (const c of courses) bySortorder.set(c.sortorder, (bySortorder.get(c.sortorder) ?? 0) + 1);
  const resort = new Set(
    cats.filter((cat) => inCategory(cat.id).some((c) => (bySortorder.get(c.sortorder) ?? 0) > 1)).map((cat) => cat.id),
  );
  for (const cat of cats) {
    const own = inCategory(cat.id);
    if (own.length === 0) continue;
    const [min, max] = [Math.min(...own.map((c) => c.sortorder)), Math.max(...own.map((c) => c.sortorder))];
    if (max === cat.sortorder + cat.coursecount && min === cat.sortorder + 1) continue;
    if (!resort.has(cat.id)) {
      // A course added with sortorder 0 in front of an otherwise good range: everything moves up one.
      if (min === cat.sortorder && max === cat.sortorder + cat.coursecount - 1)
        for (const c of own) setCourse(c, c.sortorder + 1);
      else resort.add(cat.id);
    }
    fix.events.add('changesincourse');
  }
  for (const cat of cats.filter((c) => resort.has(c.id))) {
    inCategory(cat.id)
      .sort((a, b) => a.sortorder - b.sortorder || b.id - a.id)
      .forEach((c, i) => {
        if (c.sortorder !== cat.sortorder + i + 1) {
          setCourse(c, cat.sortorder + i + 1);
          fix.events.add('changesincourse');
        }
      });
  }
  return fix;
}
