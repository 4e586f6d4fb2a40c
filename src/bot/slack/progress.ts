import type { WebClient } from '@slack/web-api';
import { findCommand } from '../../ops/commands/index.ts';
import type { RunServices } from '../../ops/executor/run-services.ts';
import { DONE_OK, type RunRow, type TargetRow } from '../../ops/executor/run-model.ts';
import { followRun, stepLine, waitingText } from '../../verbs/follow.ts';
import { statusText } from '../../verbs/text-views.ts';
import { safeCsv } from '../../core/csv.ts';
import { comparisonCsv, comparisonOf } from '../../verbs/compare.ts';
import { progressBlocks } from './blocks.ts';
import { SLACK_LIMITS } from './limits.ts';
import { escapeMrkdwn, mention } from './mrkdwn.ts';
import type { RunMessageStore } from './run-messages.ts';

/** Every target's result, as the CSV file the thread gets (values of sensitive settings are already masked). */
export function resultCsv(targets: TargetRow[]): string {
  const head = ['shortname', 'wwwroot', 'status', 'old', 'new', 'message', 'value', 'attempts', 'duration_ms'];
  const rows = targets.map((t) => [
    t.shortname,
    t.wwwroot,
    t.status,
    t.old_value,
    t.new_value,
    t.message,
    t.returned_value,
    t.attempts,
    t.duration_ms,
  ]);
  return safeCsv([head, ...rows]);
}

/** The start of a run's report: its parent message's first state, and the thread's first line. */
export const startedMessage = (run: RunRow) => ({ text: `Run ${run.id} started`, blocks: progressBlocks(run, 0, 0) });
export const startedLine = (run: RunRow) =>
  `Started by ${mention(run.requested_by)}: \`${escapeMrkdwn(run.command)}\` on ${run.target_count} targets.`;

/** Who cancelled a run, said as a mention in its parent message. */
async function cancelledBy(rt: RunServices, run: RunRow): Promise<string | undefined> {
  if (run.state !== 'cancelled') return undefined;
  const event = (await rt.store.events(run.id)).find((e) => e.kind === 'cancel');
  return event ? `Cancelled by ${mention(event.actor)}.` : undefined;
}

/**
 * Reports a run under its parent message (already posted, its place stored): the parent is edited in place at most
 * every few seconds and at the end; the thread gets waiting notes, the summary and every result as a CSV file. Run
 * again by a restarted bot, it goes on with the same messages, and a run that ended meanwhile gets its summary.
 */
export async function reportRun(
  client: WebClient,
  rt: RunServices,
  store: RunMessageStore,
  at: { channel: string; ts: string },
  run: RunRow,
): Promise<void> {
  const { channel, ts } = at;
  let lastEdit = Date.now();
  let editing: Promise<unknown> = Promise.resolve();
  let counts = { done: 0, failed: 0 };
  let step: string | undefined;
  // One edit every few seconds at most, whatever moved: a target's result or a long target's step.
  const edit = () => {
    if (Date.now() - lastEdit < SLACK_LIMITS.progressEditMs) return;
    lastEdit = Date.now();
    const { done, failed } = counts;
    const note = step && done < run.target_count ? escapeMrkdwn(step) : undefined;
    editing = editing.then(() =>
      client.chat.update({
        channel,
        ts,
        text: `Run ${run.id}: ${done}/${run.target_count}`,
        blocks: progressBlocks(run, done, failed, false, note),
      }),
    );
  };
  const { run: final, targets } = await followRun(
    rt,
    run,
    ({ done, failed }) => {
      counts = { done, failed };
      edit();
    },
    {
      onWaiting: async (w) =>
        void (await client.chat.postMessage({
          channel,
          thread_ts: ts,
          text: `:hourglass: ${escapeMrkdwn(waitingText(w))}`,
        })),
      onStep: (s) => {
        step = stepLine(s);
        edit();
      },
    },
  );
  await editing;
  const failedCount = targets.filter((t) => !DONE_OK.includes(t.status)).length;
  const note = await cancelledBy(rt, final);
  await client.chat.update({
    channel,
    ts,
    text: `Run ${run.id} ${final.state}`,
    blocks: progressBlocks(final, targets.length, failedCount, findCommand(run.command).reversible, note),
  });
  await client.chat.postMessage({
    channel,
    thread_ts: ts,
    text: escapeMrkdwn(statusText(final, targets)).slice(0, SLACK_LIMITS.sectionText),
  });
  await client.filesUploadV2({
    channel_id: channel,
    thread_ts: ts,
    filename: `run-${run.id}.csv`,
    title: `Run ${run.id} results`,
    content: resultCsv(targets),
  });
  const comparison = comparisonOf(final, targets);
  if (comparison)
    await client.filesUploadV2({
      channel_id: channel,
      thread_ts: ts,
      filename: `run-${run.id}-${comparison.item}s.csv`,
      title: `Run ${run.id}: ${comparison.item} × host`,
      content: comparisonCsv(comparison),
    });
  await store.save(run.id, channel, { reported_at: Date.now() });
}
