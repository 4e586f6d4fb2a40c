import { randomUUID } from 'node:crypto';
import type { WebClient } from '@slack/web-api';
import type { Backend } from '../../verbs/backend.ts';
import { errorFields, type Logger } from '../../core/log.ts';
import { takeAlerts, takeRunNotices, type RunNotice } from '../../ops/executor/alerts.ts';
import type { RunRow } from '../../ops/executor/run-model.ts';
import type { RunServices } from '../../ops/executor/run-services.ts';
import type { Chat, ChatReply } from '../chat.ts';
import { approvalBlocks, closedApprovalBlocks, deliveryBlocks, previewBlocks, startBlocks } from './blocks.ts';
import { allowedEverywhere } from '../../verbs/text-views.ts';
import { SERVING_STEPS } from '../../ops/delivery/state.ts';
import type { View } from '../../verbs/verb.ts';
import { escapeMrkdwn, mention } from './mrkdwn.ts';
import { reportRun, startedLine, startedMessage } from './progress.ts';
import { notInChannel, plain, Replies, type ReplyTo } from './replies.ts';
import { RunMessageStore } from './run-messages.ts';
import { SlackWork } from './work.ts';

/** How long a run's report is held by a bot process that stopped refreshing it (one that died). */
export const REPORT_LEASE_MS = 10_000;

const REFRESH_LEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`;
const RELEASE_LEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

const NOTICE_EMOJI: Record<RunNotice['kind'], string> = { break_glass: ':rotating_light:', recovered: ':recycle:' };

/** What every listener shares: the verbs (through the chat), the way back to users, deferred work, and where runs are shown. */
export class SlackContext {
  readonly replies: Replies;
  readonly work: SlackWork;
  private storeInstance: RunMessageStore | undefined;
  /** The runs this process is reporting. */
  private readonly reporting = new Set<number>();

  constructor(
    readonly backend: Backend,
    readonly chat: Chat,
    readonly client: WebClient,
    readonly log: Logger,
  ) {
    this.work = new SlackWork(log);
    this.replies = new Replies(
      client,
      async () => {
        const rt = await backend.ops();
        return { redis: rt.redis, prefix: rt.queuePrefix };
      },
      log,
    );
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
    else if (view?.kind === 'plan')
      await this.replies.send(to, { ...plain(reply.text), blocks: startBlocks(reply.text, view.plan.run) });
    else if (view?.kind === 'selection')
      await this.replies.send(to, { ...plain(reply.text), blocks: previewBlocks(reply.text, view.flags) });
    else if (view?.kind === 'run' && view.follow) await this.startReport(to, view.run);
    else if (view?.kind === 'delivery')
      await this.replies.send(to, {
        ...plain(reply.text),
        blocks: deliveryBlocks(reply.text, allowedEverywhere(view), SERVING_STEPS),
      });
    else if (view?.kind === 'delivery-session' && view.event !== 'shown') await this.postSession(to, reply.text, view);
    else await this.replies.send(to, plain(reply.text));
  }

  /**
   * A session opened is posted in the channel, and its thread keeps it: closing it posts the report there (or, when it
   * was opened elsewhere, where it is closed).
   */
  private async postSession(
    to: ReplyTo,
    text: string,
    view: Extract<View, { kind: 'delivery-session' }>,
  ): Promise<void> {
    const { session } = view;
    const thread =
      view.event === 'closed' && session.slack_channel && session.slack_ts
        ? { channel: session.slack_channel, thread_ts: session.slack_ts }
        : undefined;
    if (thread) {
      await this.client.chat.postMessage({ ...thread, ...plain(text) });
      await this.replies.send(to, plain(`Delivery session ${session.id} closed; its report is in its thread.`));
      return;
    }
    const ts = await this.replies.post(to, plain(text));
    if (ts && view.event === 'opened') await (await this.ops()).journal.placeInSlack(session.id, to.channel, ts);
  }

  private async requestApproval(to: ReplyTo, text: string, run: RunRow): Promise<void> {
    const ts = await this.replies.post(to, { ...plain(text), blocks: approvalBlocks(text, run) });
    if (ts) await (await this.messages()).save(run.id, to.channel, { approval_ts: ts });
    else
      await this.replies.send(to, {
        text: `${notInChannel(to.channel)} Run ${run.id}'s approval request could not be posted there; it expires unapproved.`,
      });
  }

  /** A started run's report: in the channel where the bot is a member, else in the user's direct message with the bot. */
  private async startReport(to: ReplyTo, run: RunRow): Promise<void> {
    const first = startedMessage(run);
    let channel = to.channel;
    let ts = await this.replies.post(to, first);
    if (!ts) {
      const posted = await this.client.chat.postMessage({ channel: to.user, ...first });
      [channel, ts] = [posted.channel as string, posted.ts as string];
      await this.client.chat.postMessage({
        channel,
        thread_ts: ts,
        text: `${notInChannel(to.channel)} Run ${run.id} is reported here instead.`,
      });
    }
    const store = await this.messages();
    await this.withReportLease(run.id, async () => {
      await store.save(run.id, channel, { parent_ts: ts });
      await this.client.chat.postMessage({ channel, thread_ts: ts, text: startedLine(run) });
      await reportRun(this.client, await this.ops(), store, { channel, ts }, run);
    });
  }

  /**
   * Reports the runs whose report no bot process is making (one stopped mid-run): with the same messages. Called at
   * start and every few seconds, so that a report a dead process held is taken over once its lease runs out.
   */
  async resumeReports(): Promise<void> {
    const store = await this.messages();
    const rt = await this.ops();
    for (const { run_id: runId, channel, parent_ts: ts } of await store.unreported()) {
      if (this.reporting.has(runId) || (await rt.redis.exists(this.leaseKey(rt, runId)))) continue;
      this.work.now(() =>
        this.withReportLease(runId, async () =>
          reportRun(this.client, rt, store, { channel, ts }, await rt.store.getRun(runId)),
        ),
      );
    }
  }

  /**
   * Posts the alerts workers left (a cron gone wrong, keys renewed on their own) to the ops channel. Without one
   * configured they wait in Redis, the newest thousand kept; one the channel refuses is logged.
   */
  async postAlerts(): Promise<void> {
    await this.postRunNotices();
    const channel = this.backend.config.opsChannel;
    if (!channel) return;
    for (const alert of await takeAlerts(await this.ops())) {
      try {
        await this.client.chat.postMessage({
          channel,
          text: `${alert.kind === 'cron' ? ':alarm_clock:' : ':key:'} ${escapeMrkdwn(alert.text)}`,
        });
      } catch (err) {
        this.log.warn({ ...errorFields(err), alert: alert.text }, 'an alert could not be posted to the ops channel');
      }
    }
  }

  /**
   * Notices of runs, each told in its run's thread, or in the ops channel for a run planned elsewhere: a decision
   * taken on the command line (which closes its approval request, as a chat decision does) in the request's thread,
   * a recovery in the progress thread.
   */
  private async postRunNotices(): Promise<void> {
    const rt = await this.ops();
    const store = await this.messages();
    for (const notice of await takeRunNotices(rt)) {
      const at = await store.get(notice.runId);
      const thread =
        notice.kind === 'break_glass' ? (at?.approval_ts ?? at?.parent_ts) : (at?.parent_ts ?? at?.approval_ts);
      const where =
        thread && at
          ? { channel: at.channel, thread_ts: thread }
          : this.backend.config.opsChannel
            ? { channel: this.backend.config.opsChannel }
            : undefined;
      try {
        if (where)
          await this.client.chat.postMessage({
            ...where,
            text: `${NOTICE_EMOJI[notice.kind]} ${escapeMrkdwn(notice.text)}`,
          });
        else this.log.warn({ run: notice.runId }, notice.text);
        if (notice.kind === 'break_glass') await this.closeApproval(notice.runId);
      } catch (err) {
        this.log.warn({ ...errorFields(err), run: notice.runId }, 'a notice of a run could not be told in Slack');
      }
    }
  }

  private leaseKey(rt: RunServices, runId: number): string {
    return `${rt.queuePrefix}:slack:report:${runId}`;
  }

  /**
   * Runs a run's report while holding its lease in Redis, refreshed as it goes, so that one bot process reports each
   * run and another takes over within seconds of its death; nothing when another holds it.
   */
  private async withReportLease(runId: number, report: () => Promise<void>): Promise<void> {
    const rt = await this.ops();
    const key = this.leaseKey(rt, runId);
    const owner = randomUUID();
    if ((await rt.redis.set(key, owner, 'PX', REPORT_LEASE_MS, 'NX')) !== 'OK') return;
    this.reporting.add(runId);
    const refresh = setInterval(() => {
      rt.redis
        .eval(REFRESH_LEASE, 1, key, owner, REPORT_LEASE_MS)
        .catch((err) => this.log.warn({ runId, err: String(err) }, "a run report's lease could not be refreshed"));
    }, REPORT_LEASE_MS / 3);
    try {
      await report();
    } finally {
      clearInterval(refresh);
      this.reporting.delete(runId);
      await rt.redis.eval(RELEASE_LEASE, 1, key, owner);
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
    await this.client.chat.update({
      channel: at.channel,
      ts: at.approval_ts,
      text: outcome,
      blocks: closedApprovalBlocks(run, outcome),
    });
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
