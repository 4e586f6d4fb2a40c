import { createServer, type Server } from 'node:http';
import { App as BoltApp, HTTPReceiver } from '@slack/bolt';
import { Histogram, type Registry } from 'prom-client';
import { WebClient } from '@slack/web-api';
import type { Backend } from '../../verbs/backend.ts';
import { errorFields } from '../../core/log.ts';
import { expireApprovals } from '../../ops/executor/approvals.ts';
import type { ApprovalPolicy } from '../../ops/executor/approval-policy.ts';
import type { Rbac } from '../../verbs/rbac.ts';
import { Chat } from '../chat.ts';
import { SLACK_STYLE } from '../../verbs/text-views.ts';
import { boltLogger } from './bolt-logger.ts';
import { REPORT_LEASE_MS, SlackContext } from './context.ts';
import { SLACK_LIMITS } from './limits.ts';
import { registerActions } from './listeners/actions.ts';
import { registerSlashCommand } from './listeners/slash.ts';
import { registerEvents } from './listeners/events.ts';
import { registerShortcuts } from './listeners/shortcuts.ts';
import { registerViews } from './listeners/views.ts';
import { ConfigError } from '../../core/config.ts';

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

const GROUP_REFRESH_MS = 5 * 60_000;

/**
 * The Slack front end: the real Bolt app (HTTP mode with a signing secret, or Socket Mode) over the shared verbs,
 * with one listener module per kind of request. Every request is acknowledged first and worked on after; the acting
 * user always comes from the signed payload. The bot asks Slack who it is once, at start.
 */
export async function startSlackBot(
  backend: Backend,
  rbac: Rbac,
  policy: ApprovalPolicy,
  options: SlackOptions,
): Promise<SlackBot> {
  if (!options.appToken && !options.signingSecret)
    throw new ConfigError('Slack needs SLACK_SIGNING_SECRET (HTTP mode) or SLACK_APP_TOKEN (Socket Mode)');
  const log = backend.log.child({ component: 'slack' });
  backend.secrets.add(options.botToken, options.signingSecret, options.appToken);
  const logger = boltLogger(log);
  const clientOptions = { slackApiUrl: backend.config.slack.apiUrl };
  // Bolt, given a token without verification, would call auth.test before every request's ack.
  const whoami = await new WebClient(options.botToken, clientOptions).auth.test();
  const identity = {
    token: options.botToken,
    botId: whoami.bot_id as string,
    botUserId: whoami.user_id as string,
    tokenVerificationEnabled: false,
    logger,
    clientOptions,
  };
  const receiver = options.appToken
    ? undefined
    : new HTTPReceiver({ signingSecret: options.signingSecret as string, endpoints: '/slack/events', logger });
  const bolt = receiver
    ? new BoltApp({ receiver, ...identity })
    : new BoltApp({ appToken: options.appToken, socketMode: true, ...identity });
  bolt.error(async (err) => {
    log.error({ ...errorFields(err.original ?? err) }, 'a Slack request failed');
  });
  const ctx = new SlackContext(backend, new Chat(backend, rbac, policy, 'slack', SLACK_STYLE), bolt.client, log);
  bolt.use(async ({ next }) => ctx.work.during(next()));
  registerEvents(bolt, ctx);
  registerSlashCommand(bolt, ctx);
  registerActions(bolt, ctx);
  registerViews(bolt, ctx);
  registerShortcuts(bolt, ctx);

  // Approval requests past their time are ended, and their messages closed.
  const sweep = async () => {
    for (const runId of await expireApprovals(await backend.ops(), policy)) await ctx.closeApproval(runId);
  };
  const sweepTimer = setInterval(() => ctx.work.now(sweep), Math.min(60_000, Math.max(1000, policy.ttlMs / 10)));
  sweepTimer.unref();

  // The RBAC an admin last imported, and the members of the user groups it names: now and every few minutes.
  const refreshGroups = async () => {
    try {
      const { rbac: current } = await backend.security();
      if (current) rbac.replace(current);
    } catch (err) {
      log.warn({ ...errorFields(err) }, 'the RBAC could not be read again from the master; the one known so far stays');
    }
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
  // Reports left unfinished by a bot process that stopped are taken over, now and once their lease runs out.
  await ctx.resumeReports();
  const resumeTimer = setInterval(
    () =>
      ctx.work.now(async () => {
        await ctx.resumeReports();
        await ctx.postAlerts();
      }),
    REPORT_LEASE_MS / 2,
  );
  resumeTimer.unref();

  const stopTimers = () => {
    clearInterval(groupTimer);
    clearInterval(sweepTimer);
    clearInterval(resumeTimer);
  };
  const idle = () => ctx.work.idle();
  if (!receiver) {
    await bolt.start();
    return {
      url: 'socket mode',
      idle,
      close: async () => {
        stopTimers();
        await bolt.stop();
      },
    };
  }
  const acks = ackSeconds((await backend.ops()).metrics.registry);
  const server: Server = createServer((req, res) => {
    ctx.work.requestStarted();
    // Slack takes the response to its request as the ack: the time to it is what Slack's 3 s limit measures.
    const acked = acks.startTimer();
    res.once('finish', () => acked());
    res.once('close', () => ctx.work.requestAnswered());
    // Bolt refuses requests older than five minutes; one dated ahead of now is refused here, before Bolt sees it.
    const stamp = Number(req.headers['x-slack-request-timestamp']);
    if (Number.isFinite(stamp) && stamp > Date.now() / 1000 + SLACK_LIMITS.maxRequestAheadSeconds) {
      res.writeHead(401).end('request timestamp is in the future');
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
      stopTimers();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** The Slack acknowledgement latency, among the metrics of the process that serves Slack over HTTP. */
function ackSeconds(registry: Registry): Histogram {
  const name = 'vmoodle_slack_ack_seconds';
  return (
    (registry.getSingleMetric(name) as Histogram | undefined) ??
    new Histogram({
      name,
      help: "Time from a Slack request's arrival to the response that acknowledges it",
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5],
      registers: [registry],
    })
  );
}
