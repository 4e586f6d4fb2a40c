import { createServer, type Server } from 'node:http';
import { App as BoltApp, HTTPReceiver } from '@slack/bolt';
import type { WebClient } from '@slack/web-api';
import type { Backend } from '../../backend.ts';
import { errorFields } from '../../log.ts';
import { confirmationText, expireApprovals } from '../../ops/executor/approvals.ts';
import { type ApprovalPolicy } from '../../ops/executor/approval-policy.ts';
import { cancelRun } from '../../ops/executor/run-actions.ts';
import { MASK } from '../../ops/moodle/sensitive.ts';
import { resolveTargets } from '../../registry/selector.ts';
import { listInstances } from '../../verbs/info-verbs.ts';
import { plan as planVerb } from '../../verbs/plan-verbs.ts';
import type { Rbac } from '../../verbs/rbac.ts';
import { approve as approveVerb, cancel, reject, retry, revert, startPlanned } from '../../verbs/run-verbs.ts';
import { selectorFlags } from '../../verbs/target-flags.ts';
import type { Actor } from '../../verbs/verb.ts';
import { Chat, type ChatReply } from '../chat.ts';
import { planText, SLACK_STYLE } from '../chat-text.ts';
import { approvalBlocks, approvalModal, parseRunButton, planModal, previewBlocks, startBlocks, textBlocks } from './blocks.ts';
import { boltLogger } from './bolt-logger.ts';
import { BUILDER, builderArgs, builderView, type BuilderState } from './builder.ts';
import { homeView } from './home.ts';
import { SLACK_LIMITS } from './limits.ts';
import { escapeMrkdwn } from './mrkdwn.ts';
import { postRunProgress } from './progress.ts';

export interface SlackOptions {
  botToken: string;
  /** HTTP mode: requests are signed with it. */
  signingSecret?: string;
  /** Socket Mode: the app-level token; no public address needed. */
  appToken?: string;
  port: number;
  host?: string;
}

export interface SlackBot {
  url: string;
  /** Resolves when every run the bot is reporting has been reported (tests wait on it). */
  idle(): Promise<void>;
  close(): Promise<void>;
}

const WORK_CONCURRENCY = 4;
const QUIET_MS = 20;
const GROUP_REFRESH_MS = 5 * 60_000;

const NOT_IN_CHANNEL = 'I am not in this channel: invite me with `/invite @vmoodle`, then try again.';

/** Where an interaction came from: its channel, or the user's DM for a shortcut or a Home tab. */
const channelOf = (body: unknown, user: string) => (body as { channel?: { id: string } }).channel?.id ?? user;

/**
 * The Slack front end: the real Bolt app (HTTP mode, signing secret) over the shared verbs. Every request is
 * acknowledged first and worked on after; the acting user always comes from the signed payload, and buttons and
 * modals call verbs with typed arguments, including the plan hash they showed.
 */
export async function startSlackBot(backend: Backend, rbac: Rbac, policy: ApprovalPolicy, options: SlackOptions): Promise<SlackBot> {
  if (!options.appToken && !options.signingSecret) throw new Error('Slack needs SLACK_SIGNING_SECRET (HTTP mode) or SLACK_APP_TOKEN (Socket Mode)');
  const log = backend.log.child({ component: 'slack' });
  backend.secrets.add(options.botToken, options.signingSecret, options.appToken);
  const logger = boltLogger(log);
  const clientOptions = { slackApiUrl: backend.config.slack.apiUrl };
  const receiver = options.appToken ? undefined : new HTTPReceiver({ signingSecret: options.signingSecret as string, endpoints: '/slack/events', logger });
  const bolt = receiver
    ? new BoltApp({ receiver, token: options.botToken, tokenVerificationEnabled: false, logger, clientOptions })
    : new BoltApp({ token: options.botToken, appToken: options.appToken, socketMode: true, logger, clientOptions });
  bolt.error(async (err) => {
    log.error({ ...errorFields(err.original ?? err) }, 'a Slack request failed');
  });
  const chat = new Chat(backend, rbac, policy, 'slack', SLACK_STYLE);

  // Work after an ack waits until requests stop arriving for a moment, then runs a few at a time: a burst of
  // requests is all acknowledged before any of it is worked on.
  const work = new Set<Promise<unknown>>();
  const queue: Array<() => void> = [];
  let running = 0;
  let lastRequest = 0;
  let waiting: NodeJS.Timeout | undefined;
  const next = () => {
    const quiet = Date.now() - lastRequest;
    if (quiet < QUIET_MS) {
      waiting ??= setTimeout(() => {
        waiting = undefined;
        next();
      }, QUIET_MS - quiet);
      return;
    }
    while (running < WORK_CONCURRENCY && queue.length > 0) {
      running++;
      (queue.shift() as () => void)();
    }
  };
  /** Work after an ack fails where nobody waits for it: it is logged, never dropped silently. */
  const logFailure = (what: string) => (err: unknown) => log.error({ ...errorFields(err) }, what);
  const later = (task: () => Promise<unknown>, what = 'work after an acknowledgement failed') => {
    const p = new Promise<void>((resolve) => queue.push(() => setImmediate(() => {
      task().catch(logFailure(what)).finally(() => {
        running--;
        resolve();
        next();
      });
    })));
    track(p);
    next();
  };
  /** Work that must not wait its turn (opening a modal while its trigger is fresh), counted for idle(). */
  function track(p: Promise<unknown>): void {
    const tracked = p.catch(logFailure('a modal could not be opened')).finally(() => work.delete(tracked));
    work.add(tracked);
  }

  /** Where each approval request was posted, so that its outcome lands in its thread. */
  const requests = new Map<number, { channel: string; ts: string }>();
  async function inRequestThread(client: WebClient, runId: number, text: string): Promise<void> {
    const request = requests.get(runId);
    if (!request) return;
    requests.delete(runId);
    await client.chat.postMessage({ channel: request.channel, thread_ts: request.ts, text: escapeMrkdwn(text) });
  }

  /** A reply where it belongs: a plan to its requester (or, needing approval, to the channel), a started run's progress in the channel. */
  async function deliver(client: WebClient, actor: Actor & { channel: string }, reply: ChatReply): Promise<void> {
    // The notification text beside the blocks is mrkdwn too.
    const text = escapeMrkdwn(reply.text).slice(0, SLACK_LIMITS.sectionText);
    const ephemeral = (blocks = textBlocks(reply.text)) => client.chat.postEphemeral({ channel: actor.channel, user: actor.id, text, blocks });
    const { view } = reply;
    try {
      if (view?.kind === 'plan' && view.approval) {
        const posted = await client.chat.postMessage({ channel: actor.channel, text, blocks: approvalBlocks(reply.text, view.plan.run) });
        requests.set(view.plan.run.id, { channel: actor.channel, ts: posted.ts as string });
      } else if (view?.kind === 'plan') {
        await ephemeral(startBlocks(reply.text, view.plan.run));
      } else if (view?.kind === 'selection') {
        await ephemeral(previewBlocks(reply.text, view.flags));
      } else if (view?.kind === 'run' && view.follow) {
        await postRunProgress(client, await backend.ops(), actor.channel, view.run);
      } else if (view?.kind === 'run') {
        await client.chat.postMessage({ channel: actor.channel, text });
      } else {
        await ephemeral();
      }
    } catch (err) {
      if ((err as { data?: { error?: string } }).data?.error !== 'not_in_channel') throw err;
      await client.chat.postEphemeral({ channel: actor.channel, user: actor.id, text: NOT_IN_CHANNEL });
    }
  }

  bolt.command('/vmoodle', async ({ command, ack, client }) => {
    await ack();
    const actor = { id: command.user_id, channel: command.channel_id };
    if (!command.text.trim()) {
      later(() => client.views.open({ trigger_id: command.trigger_id, view: builderView({ channel: command.channel_id }) }));
      return;
    }
    if (/^\s*run\s/.test(command.text) && !/\s--help\b/.test(command.text)) {
      // The plan shows in a modal opened at once, while the trigger is fresh, and filled in once computed.
      track((async () => {
        const opened = await client.views.open({ trigger_id: command.trigger_id, view: planModal(actor.channel, 'Computing the plan…') });
        const viewId = (opened.view as { id: string }).id;
        later(async () => {
          const reply = await chat.handle(command.text, actor);
          const view = reply.view?.kind === 'plan' ? reply.view : undefined;
          if (view?.approval) await deliver(client, actor, reply);
          const text = view?.approval ? `${reply.text}\nThe approval request is in the channel.` : reply.text;
          await client.views.update({ view_id: viewId, view: planModal(actor.channel, text, view && !view.approval ? view.plan.run : undefined) });
        });
      })());
      return;
    }
    later(async () => deliver(client, actor, await chat.handle(command.text, actor)));
  });

  bolt.view('plan_modal', async ({ ack, body, view, client }) => {
    await ack();
    const { channel, value } = JSON.parse(view.private_metadata) as { channel: string; value: string };
    const actor = { id: body.user.id, channel };
    const { runId, hash } = parseRunButton(value);
    later(async () => deliver(client, actor, await chat.call(startPlanned, { runId, hash }, actor)));
  });

  bolt.action('targets_builder', async ({ ack, body, action, client }) => {
    await ack();
    const channel = channelOf(body, body.user.id);
    later(() => client.views.open({ trigger_id: (body as { trigger_id: string }).trigger_id, view: builderView({ channel, targets: (action as { value: string }).value }) }));
  });

  for (const recycle of ['same_command', 'same_targets'] as const) {
    bolt.action(recycle, async ({ ack, body, action, client }) => {
      await ack();
      const channel = channelOf(body, body.user.id);
      later(async () => {
        const run = await (await backend.ops()).store.getRun(parseRunButton((action as { value: string }).value).runId);
        const params = Object.fromEntries(Object.entries(JSON.parse(run.params) as Record<string, string>).filter(([, v]) => v !== MASK));
        const state = recycle === 'same_command' ? { channel, command: run.command, params } : { channel, targets: selectorFlags(JSON.parse(run.selector)) };
        await client.views.open({ trigger_id: (body as { trigger_id: string }).trigger_id, view: builderView(state) });
      });
    });
  }

  bolt.shortcut('vmoodle_builder', async ({ ack, shortcut, client }) => {
    await ack();
    later(() => client.views.open({ trigger_id: shortcut.trigger_id, view: builderView({ channel: shortcut.user.id }) }));
  });

  bolt.action(BUILDER.command, async ({ ack, body, action, client }) => {
    await ack();
    const view = (body as { view: { id: string; hash: string; private_metadata: string } }).view;
    const state = JSON.parse(view.private_metadata) as BuilderState;
    const command = (action as { selected_option?: { value: string } }).selected_option?.value;
    later(() => client.views.update({ view_id: view.id, hash: view.hash, view: builderView({ ...state, command }) }));
  });

  bolt.action(BUILDER.glob, async ({ ack, body, action, client }) => {
    await ack();
    const view = (body as { view: { id: string; hash: string; private_metadata: string } }).view;
    const state = JSON.parse(view.private_metadata) as BuilderState;
    const glob = (action as { value?: string }).value ?? '';
    later(async () => {
      let count: string;
      try {
        const selection = resolveTargets(await backend.fleet(), { tohostsmatch: glob });
        count = `*${selection.counts.targets}* instances (matched ${selection.counts.matched}, disabled left out ${selection.counts.disabledLeftOut})`;
      } catch (err) {
        count = escapeMrkdwn(chat.failure(err).text);
      }
      await client.views.update({ view_id: view.id, hash: view.hash, view: builderView({ ...state, count }) });
    });
  });

  bolt.options(BUILDER.hosts, async ({ ack, options, body }) => {
    // Host names are registry data: only someone who may list instances sees them.
    if (chat.session({ id: body.user.id }).refusal(listInstances)) {
      await ack({ options: [] });
      return;
    }
    const query = (options as { value?: string }).value?.toLowerCase() ?? '';
    const fleet = await backend.fleet();
    const found = fleet.hosts.filter((h) => h.shortname.toLowerCase().includes(query) || h.wwwroot.toLowerCase().includes(query));
    await ack({ options: found.slice(0, SLACK_LIMITS.optionsPerSelect).map((h) => ({ text: { type: 'plain_text', text: `${h.shortname} (${h.wwwroot})`.slice(0, 75) }, value: h.shortname })) });
  });

  bolt.view(BUILDER.callback, async ({ ack, body, view, client }) => {
    const state = JSON.parse(view.private_metadata) as BuilderState;
    const actor = { id: body.user.id, channel: state.channel };
    let built: ReturnType<typeof builderArgs>;
    try {
      built = builderArgs(state, view.state.values as never);
    } catch (err) {
      await ack({ response_action: 'errors', errors: { [BUILDER.command]: chat.failure(err).error?.message.slice(0, 150) ?? 'not a valid request' } });
      return;
    }
    await ack();
    later(async () => {
      const reply = await chat.call(planVerb, built.args, actor);
      const planned = reply.view?.kind === 'plan' ? reply.view.plan : undefined;
      if (built.dry && planned) {
        await cancelRun(await backend.ops(), planned.run.id, actor.id);
        await deliver(client, actor, { text: `${planText(planned, SLACK_STYLE)}\nDry run: run ${planned.run.id} was only planned.` });
        return;
      }
      await deliver(client, actor, reply);
    });
  });

  bolt.event('app_home_opened', async ({ event }) => {
    later(() => publishHome(bolt.client, event.user, 1));
  });

  bolt.action('home_page', async ({ ack, body, action, client }) => {
    await ack();
    later(() => publishHome(client, body.user.id, Number((action as { value: string }).value)));
  });

  async function publishHome(client: WebClient, user: string, page: number): Promise<void> {
    const session = chat.session({ id: user });
    if (session.refusal(listInstances)) return;
    const rt = await backend.ops();
    const runs = await rt.store.listRuns(10);
    const pending = session.refusal(approveVerb) ? [] : runs.filter((r) => r.state === 'awaiting_approval' && r.requested_by !== user);
    await client.views.publish({ user_id: user, view: homeView(await (await backend.registry()).loadAll(), page, runs.slice(0, 5), pending) });
  }

  /** The buttons of plans and progress messages: each calls its verb with the run (and the hash it showed). */
  const RUN_BUTTONS: Record<string, (actor: Actor, runId: number, hash: string) => Promise<ChatReply>> = {
    start: (actor, runId, hash) => chat.call(startPlanned, { runId, hash }, actor),
    reject: (actor, runId) => chat.call(reject, { runId }, actor),
    cancel: (actor, runId) => chat.call(cancel, { runId }, actor),
    retry: (actor, runId) => chat.call(retry, { runId, given: {} }, actor),
    revert: (actor, runId) => chat.call(revert, { runId }, actor),
  };
  for (const [actionId, press] of Object.entries(RUN_BUTTONS)) {
    bolt.action(actionId, async ({ ack, body, action, client }) => {
      await ack();
      const { runId, hash } = parseRunButton((action as { value: string }).value);
      const actor = { id: body.user.id, channel: channelOf(body, '') };
      later(async () => {
        const reply = await press(actor, runId, hash);
        if (actionId === 'reject' && !reply.error) await inRequestThread(client, runId, reply.text);
        else await deliver(client, actor, reply);
      });
    });
  }

  // Approval requests past their time are ended, and say so in their thread.
  const sweep = async () => {
    for (const runId of await expireApprovals(await backend.ops(), policy)) {
      await inRequestThread(bolt.client, runId, `Run ${runId}: the approval request expired; nothing was run.`);
    }
  };
  const sweepTimer = setInterval(() => void sweep().catch(logFailure('expiring approval requests failed')), Math.min(60_000, Math.max(1000, policy.ttlMs / 10)));
  sweepTimer.unref();

  bolt.action('approve', async ({ ack, body, action, client }) => {
    await ack();
    const { runId } = parseRunButton((action as { value: string }).value);
    const actor = { id: body.user.id, channel: channelOf(body, '') };
    later(async () => {
      const refusal = chat.session(actor).refusal(approveVerb);
      const rt = await backend.ops();
      const run = await rt.store.getRun(runId);
      if (refusal || run.requested_by === actor.id || run.state !== 'awaiting_approval') {
        const text = refusal ?? (run.requested_by === actor.id ? 'You requested this run; a second person must approve it.' : `Run ${runId} is ${run.state.replaceAll('_', ' ')}.`);
        await client.chat.postEphemeral({ channel: actor.channel, user: actor.id, text: escapeMrkdwn(text) });
        return;
      }
      await client.views.open({ trigger_id: (body as { trigger_id: string }).trigger_id, view: approvalModal(run, await confirmationText(rt, run), actor.channel) });
    });
  });

  bolt.view('approve_modal', async ({ ack, body, view, client }) => {
    const { value, channel } = JSON.parse(view.private_metadata) as { value: string; channel: string };
    const { runId, hash } = parseRunButton(value);
    const typed = view.state.values.typed?.value?.value ?? '';
    const actor = { id: body.user.id, channel };
    // The hash is the one the approver was shown, carried in the modal, not the one stored now.
    const reply = await chat.call(approveVerb, { runId, typed, hash }, actor);
    if (reply.error) {
      await ack({ response_action: 'errors', errors: { typed: reply.error.message.slice(0, 150) } });
      return;
    }
    await ack();
    later(async () => {
      await inRequestThread(client, runId, reply.text);
      await deliver(client, actor, reply);
    });
  });

  // User groups named in the RBAC file: their members are looked up now and every few minutes.
  const refreshGroups = async () => {
    for (const group of rbac.groupIds()) {
      try {
        const answer = await bolt.client.usergroups.users.list({ usergroup: group });
        if (answer.users) rbac.setGroupMembers(group, answer.users);
      } catch (err) {
        // The members known so far stay; the next refresh tries again.
        log.warn({ ...errorFields(err), group }, 'the members of a user group could not be read');
      }
    }
  };
  await refreshGroups();
  const groupTimer = setInterval(() => void refreshGroups(), GROUP_REFRESH_MS);
  groupTimer.unref();

  const idle = async () => {
    while (work.size > 0) await Promise.all([...work]);
  };
  if (!receiver) {
    await bolt.start();
    return {
      url: 'socket mode',
      idle,
      close: async () => {
        clearInterval(groupTimer);
        clearInterval(sweepTimer);
        await bolt.stop();
      },
    };
  }
  const server: Server = createServer((req, res) => {
    lastRequest = Date.now();
    // Bolt refuses requests older than five minutes; one dated ahead of now is refused here, before Bolt sees it.
    const stamp = Number(req.headers['x-slack-request-timestamp']);
    if (Number.isFinite(stamp) && stamp > Date.now() / 1000 + SLACK_LIMITS.maxRequestAheadSeconds) {
      res.writeHead(401).end('request timestamp is in the future');
      return;
    }
    if (req.headers['x-slack-retry-num'] !== undefined) {
      // A retried delivery of something already acknowledged: acknowledging again starts nothing twice.
      res.writeHead(200).end();
      return;
    }
    receiver.requestListener(req, res);
  });
  await new Promise<void>((resolve) => server.listen(options.port, options.host ?? '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  return {
    url: `http://${options.host ?? '127.0.0.1'}:${port}/slack/events`,
    idle,
    close: () => {
      clearInterval(groupTimer);
      clearInterval(sweepTimer);
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
