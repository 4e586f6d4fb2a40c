import type { RunnerTask, RunnerTestFile } from 'vitest';
import type { Reporter } from 'vitest/node';

function count(tasks: readonly RunnerTask[], counts: { passed: number; failed: number; skipped: number }): void {
  for (const task of tasks) {
    if (task.type === 'suite') count(task.tasks, counts);
    else if (task.result?.state === 'pass') counts.passed++;
    else if (task.result?.state === 'fail') counts.failed++;
    else counts.skipped++;
  }
}

/**
 * Ends the run with one plain `N passed, N failed, N skipped` line that any CI log reader understands. It hooks
 * the step where the default reporter prints its own summary, so listed after it, it prints last.
 */
export default class SummaryReporter implements Reporter {
  onFinished(files: RunnerTestFile[] = [], errors: unknown[] = []): void {
    const counts = { passed: 0, failed: errors.length, skipped: 0 };
    for (const file of files) {
      if (file.result?.state === 'fail' && file.tasks.length === 0) counts.failed++;
      count(file.tasks, counts);
    }
    process.stdout.write(`\n${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped\n`);
  }
}
