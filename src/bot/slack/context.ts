import type { WebClient } from '@slack/web-api';
import type { Backend } from '../../backend.ts';
import type { Logger } from '../../log.ts';
import type { ApprovalPolicy } from '../../ops/executor/approval-policy.ts';
import type { RunRow } from '../../ops/executor/run-model.ts';
import type { RunServices } from '../../ops/executor/run-services.ts';
import type { Rbac } from '../../verbs/rbac.ts';
import type { Chat, ChatReply } from '../chat.ts';
import { approvalBlocks, closedApprovalBlocks, previewBlocks, startBlocks } from './blocks.ts';
import { mention } from './mrkdwn.ts';
import { reportRun, startedLine, startedMessage } from './progress.ts';
import { notInChannel, plain, Replies, type ReplyTo } from './replies.ts';
import { RunMessageStore } from './run-messages.ts';
import { SlackWork } from './work.ts';

/** What every listener shares: the verbs (through the chat), the way back to users, deferred work, and where runs are shown. */
export class SlackContext {
  readonly replies: Replies;
  readonly work: SlackWork;
  private storeInstance: RunMessageStore | undefined;

  constructor(
    readonly backend: Backend,
    readonly chat: Chat,
    readonly rbac: Rbac,
    readonly policy: ApprovalPolicy,
    readonly client: WebClient,
    readonly log: Logger,
  ) {
    this.work = new SlackWork(log);
    this.replies = new Replies(client, async () => {
      const rt = await backend.ops();
      return { redis: rt.redis, prefix: rt.queuePrefix };
    }, log);
  }

  ops(): Promise<RunServices> {
    return this.backend.ops();
  }

  async messages(): Promise<RunMessageStore> {
    this.storeInstance ??= new RunMessageStore(await this.ops());
    return this.storeInstance;
  }

  /** Work after the ack, in turn; if it fails, `to` is told why, from the error's code and hint. */
  later(to: ReplyTo, task: () => Promise<unknown>): void {
    this.work.later(task, (err) => this.replies.send(to, plain(this.chat.failure(err).text)));
  }

  /** Work that must start at once (a modal while its trigger_id is fresh); a failure is told as for `later`. */
  now(to: ReplyTo, task: () => Promise<unknown>): void {
    this.work.now(task, (err) => this.replies.send(to, plain(this.chat.failure(err).text)));
  }

  /**
   * A verb's reply where it belongs: a plan needing approval as a request in the channel, a started run as its report
   * in the channel, anything else to the person who asked.
   */
  async deliver(to: ReplyTo, reply: ChatReply): Promise<void> {
    const { view } = reply;
    if (view?.kind === 'run') await this.closeApproval(view.run.id);
    if (view?.kind === 'plan' && view.approval) await this.requestApproval(to, reply.text, view.plan.run);
    else if (view?.kind === 'plan') await this.replies.send(to, { ...plain(reply.text), blocks: startBlocks(reply.text, view.plan.run) });
    else if (view?.kind === 'selection') await this.replies.send(to, { ...plain(reply.text), blocks: previewBlocks(reply.text, view.flags) });
    else if (view?.kind === 'run' && view.follow) await this.startReport(to, view.run);
    else await this.replies.send(to, plain(reply.text));
  }

  private async requestApproval(to: ReplyTo, text: string, run: RunRow): Promise<void> {
    const ts = await this.replies.post(to, { ...plain(text), blocks: approvalBlocks(text, run) });
    if (ts) await (await this.messages()).save(run.id, to.channel, { approval_ts: ts });
    else await this.replies.send(to, { text: `${notInChannel(to.channel)} Run ${run.id}'s approval request could not be posted there; it expires unapproved.` });
  }

  /** A started run's report: in the channel where the bot is a member, else in the user's direct message with the bot. */
  private async startReport(to: ReplyTo, run: RunRow): Promise<void> {
    const first = startedMessage(run);
    let channel = to.channel;
    let ts = await this.replies.post(to, first);
    if (!ts) {
      const posted = await this.client.chat.postMessage({ channel: to.user, ...first });
      [channel, ts] = [posted.channel as string, posted.ts as string];
      await this.client.chat.postMessage({ channel, thread_ts: ts, text: `${notInChannel(to.channel)} Run ${run.id} is reported here instead.` });
    }
    const store = await this.messages();
    await store.save(run.id, channel, { parent_ts: ts });
    await this.client.chat.postMessage({ channel, thread_ts: ts, text: startedLine(run) });
    await reportRun(this.client, await this.ops(), store, { channel, ts }, run);
  }

  /** Reports the runs a previous bot process was reporting when it stopped, with the same messages. */
  async resumeReports(): Promise<void> {
    const store = await this.messages();
    const rt = await this.ops();
    for (const { run_id: runId, channel, parent_ts: ts } of await store.unreported()) {
      this.work.now(async () => reportRun(this.client, rt, store, { channel, ts }, await rt.store.getRun(runId)));
    }
  }

  /**
   * Closes a run's approval request once it is decided, whoever decided it and however (a button, the modal, a
   * typed `approve`, expiry): the message loses its buttons and says the outcome, and its thread gets it too. Once.
   */
  async closeApproval(runId: number): Promise<void> {
    const rt = await this.ops();
    const run = await rt.store.getRun(runId);
    if (run.state === 'awaiting_approval' || run.state === 'planned') return;
    const store = await this.messages();
    const at = await store.get(runId);
    if (!at?.approval_ts || at.approval_closed_at || !(await store.closeApproval(runId))) return;
    const outcome = await decisionText(rt, run);
    await this.client.chat.update({ channel: at.channel, ts: at.approval_ts, text: outcome, blocks: closedApprovalBlocks(run, outcome) });
    await this.client.chat.postMessage({ channel: at.channel, thread_ts: at.approval_ts, text: outcome });
  }
}

/** How a run's approval request ended, and who ended it, as mentions. */
export async function decisionText(rt: RunServices, run: RunRow): Promise<string> {
  const events = await rt.store.events(run.id);
  const decision = [...events].reverse().find((e) => ['approve', 'reject', 'expire', 'cancel'].includes(e.kind));
  switch (decision?.kind) {
    case 'approve':
      return `Run ${run.id} approved by ${mention(decision.actor)} and started.`;
    case 'reject':
      return `Run ${run.id} rejected by ${mention(decision.actor)}; nothing was run.`;
    case 'expire':
      return `Run ${run.id}: the approval request expired; nothing was run.`;
    case 'cancel':
      return `Run ${run.id} cancelled by ${mention(decision.actor)}; nothing was run.`;
    default:
      return `Run ${run.id} is ${run.state.replaceAll('_', ' ')}.`;
  }
}
