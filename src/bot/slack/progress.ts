import type { WebClient } from '@slack/web-api';
import { findCommand } from '../../ops/catalog/index.ts';
import type { RunServices } from '../../ops/executor/run-services.ts';
import { DONE_OK, type RunRow, type TargetRow } from '../../ops/executor/run-model.ts';
import { followRun, waitingText } from '../../verbs/follow.ts';
import { statusText } from '../chat-text.ts';
import { progressBlocks } from './blocks.ts';
import { SLACK_LIMITS } from './limits.ts';
import { escapeMrkdwn, mention } from './mrkdwn.ts';

const csvCell = (v: unknown) => {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
};

/** Every target's result, as the CSV file the thread gets (values of sensitive settings are already masked). */
export function resultCsv(targets: TargetRow[]): string {
  const head = ['shortname', 'wwwroot', 'status', 'old', 'new', 'message', 'value', 'attempts', 'duration_ms'];
  const rows = targets.map((t) => [t.shortname, t.wwwroot, t.status, t.old_value, t.new_value, t.message, t.returned_value, t.attempts, t.duration_ms].map(csvCell).join(','));
  return `${head.join(',')}\n${rows.join('\n')}\n`;
}

/**
 * Reports one run in a channel: one parent message, edited in place at most every few seconds and at the end;
 * its thread gets the start, failures grouped by error, the summary, and every result as a CSV file.
 */
export async function postRunProgress(client: WebClient, rt: RunServices, channel: string, run: RunRow): Promise<void> {
  const parent = await client.chat.postMessage({ channel, text: `Run ${run.id} started`, blocks: progressBlocks(run, 0, 0) });
  const ts = parent.ts as string;
  await client.chat.postMessage({ channel, thread_ts: ts, text: `Started by ${mention(run.requested_by)}: \`${escapeMrkdwn(run.command)}\` on ${run.target_count} targets.` });
  let lastEdit = Date.now();
  let editing: Promise<unknown> = Promise.resolve();
  const { run: final, targets } = await followRun(rt, run, ({ done, failed }) => {
    if (Date.now() - lastEdit < SLACK_LIMITS.progressEditMs) return;
    lastEdit = Date.now();
    editing = editing.then(() => client.chat.update({ channel, ts, text: `Run ${run.id}: ${done}/${run.target_count}`, blocks: progressBlocks(run, done, failed) }));
  }, { onWaiting: async (w) => void (await client.chat.postMessage({ channel, thread_ts: ts, text: `:hourglass: ${escapeMrkdwn(waitingText(w))}` })) });
  await editing;
  const failedCount = targets.filter((t) => !DONE_OK.includes(t.status)).length;
  await client.chat.update({ channel, ts, text: `Run ${run.id} ${final.state}`, blocks: progressBlocks(final, targets.length, failedCount, findCommand(run.command).reversible) });
  await client.chat.postMessage({ channel, thread_ts: ts, text: escapeMrkdwn(statusText(final, targets)).slice(0, SLACK_LIMITS.sectionText) });
  await client.filesUploadV2({ channel_id: channel, thread_ts: ts, filename: `run-${run.id}.csv`, title: `Run ${run.id} results`, content: resultCsv(targets) });
}
