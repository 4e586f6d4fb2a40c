import { describe, expect, it } from 'vitest';
import { BrokenTree, fixCourseSortorder } from '../../src/ops/moodle/course-sortorder.ts';

const cat = (id: number, parent: number, sortorder: number, path: string, coursecount = 0) => ({
  id,
  parent,
  sortorder,
  coursecount,
  depth: path.split('/').length - 1,
  path,
});

describe("fix_course_sortorder(), as Moodle's course/lib.php does it", () => {
  it('puts a new category last among its siblings and numbers the tree depth-first, moving its courses into the new ranges', () => {
    // Category 1 (10000) with two courses; A (20000) with child B (0: just created); C (30000) created before B.
    const fix = fixCourseSortorder(
      [cat(1, 0, 10000, '/1', 2), cat(2, 0, 20000, '/2'), cat(4, 0, 30000, '/4', 1), cat(3, 2, 0, '/2/3')],
      [
        { id: 1, category: 0, sortorder: 0 },
        { id: 2, category: 1, sortorder: 10001 },
        { id: 3, category: 1, sortorder: 10002 },
        { id: 4, category: 4, sortorder: 30001 },
      ],
      10_000,
    );
    expect(Object.fromEntries(fix.categories)).toEqual({ 3: { sortorder: 30000 }, 4: { sortorder: 40000 } });
    expect(Object.fromEntries(fix.courses)).toEqual({ 1: 1, 4: 40001 });
    expect([...fix.events].sort()).toEqual(['changesincourse', 'changesincoursecat']);
  });

  it('recounts courses, moves one added with sortorder 0 to the front of a good range, and renumbers where two share a sortorder', () => {
    const fix = fixCourseSortorder(
      [cat(1, 0, 10000, '/1', 1), cat(2, 0, 20000, '/2', 2)],
      [
        { id: 1, category: 0, sortorder: 1 },
        { id: 2, category: 1, sortorder: 10001 },
        { id: 5, category: 1, sortorder: 0 },
        { id: 3, category: 2, sortorder: 20001 },
        { id: 4, category: 2, sortorder: 20001 },
      ],
      10_000,
    );
    expect(Object.fromEntries(fix.categories)).toEqual({ 1: { coursecount: 2 } });
    // Course 5 (sortorder 0) is brought into the range (10000), then the range moves up one; of category 2's twins, the later id keeps its place and the other follows it.
    expect(Object.fromEntries(fix.courses)).toEqual({ 5: 10001, 2: 10002, 3: 20002 });
  });

  it('refuses a tree whose paths are wrong, which needs Moodle to repair its contexts', () => {
    expect(() =>
      fixCourseSortorder([cat(1, 0, 10000, '/1'), { ...cat(2, 1, 20000, '/9/2'), depth: 2 }], [], 10_000),
    ).toThrow(BrokenTree);
  });
});
