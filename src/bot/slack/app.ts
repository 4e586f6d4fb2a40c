import { createServer, type Server } from 'node:http';
import { App as BoltApp, HTTPReceiver, LogLevel } from '@slack/bolt';
import type { WebClient } from '@slack/web-api';
import type { App } from '../../app.ts';
import { confirmationText, type ApprovalPolicy } from '../../ops/executor/approvals.ts';
import type { Rbac } from '../rbac.ts';
import { Router, type Actor, type Reply } from '../router.ts';
import { approvalBlocks, approvalModal, parseRunButton, startBlocks, textBlocks } from './blocks.ts';
import { SLACK_LIMITS } from './limits.ts';
import { postRunProgress } from './progress.ts';

export interface SlackOptions {
  signingSecret: string;
  botToken: string;
  /** The Web API's address; tests point it at a fake on loopback. */
  slackApiUrl?: string;
  port: number;
  host?: string;
}

export interface SlackBot {
  url: string;
  /** Resolves when every run the bot is reporting has been reported (tests wait on it). */
  idle(): Promise<void>;
  close(): Promise<void>;
}

const NOT_IN_CHANNEL = 'I am not in this channel: invite me with `/invite @vmoodle`, then try again.';

/**
 * The Slack front end: the real Bolt app (HTTP mode, signing secret) over the shared router. Every request is
 * acknowledged first and worked on after; the acting user always comes from the signed payload.
 */
export async function startSlackBot(app: App, rbac: Rbac, policy: ApprovalPolicy, options: SlackOptions): Promise<SlackBot> {
  const receiver = new HTTPReceiver({ signingSecret: options.signingSecret, endpoints: '/slack/events', logLevel: LogLevel.ERROR });
  const bolt = new BoltApp({
    receiver,
    token: options.botToken,
    tokenVerificationEnabled: false,
    logLevel: LogLevel.ERROR,
    clientOptions: options.slackApiUrl ? { slackApiUrl: options.slackApiUrl } : {},
  });
  const router = new Router(app, rbac, policy, 'slack');
  const work = new Set<Promise<unknown>>();
  const later = (task: () => Promise<unknown>) => {
    const p = task().catch(() => {}).finally(() => work.delete(p));
    work.add(p);
  };

  async function deliver(client: WebClient, actor: Actor & { channel: string }, reply: Reply): Promise<void> {
    try {
      if (reply.approval) {
        await client.chat.postMessage({ channel: actor.channel, text: reply.text.slice(0, SLACK_LIMITS.sectionText), blocks: approvalBlocks(reply.text, reply.approval.run) });
      } else if (reply.confirm) {
        await client.chat.postEphemeral({ channel: actor.channel, user: actor.id, text: reply.text.slice(0, SLACK_LIMITS.sectionText), blocks: startBlocks(reply.text, reply.confirm.run) });
      } else if (reply.ephemeral) {
        await client.chat.postEphemeral({ channel: actor.channel, user: actor.id, text: reply.text.slice(0, SLACK_LIMITS.sectionText), blocks: textBlocks(reply.text) });
      } else if (!reply.follow) {
        await client.chat.postMessage({ channel: actor.channel, text: reply.text.slice(0, SLACK_LIMITS.sectionText) });
      }
      if (reply.follow) await postRunProgress(client, await app.ops(), actor.channel, reply.follow);
    } catch (err) {
      if ((err as { data?: { error?: string } }).data?.error !== 'not_in_channel') throw err;
      await client.chat.postEphemeral({ channel: actor.channel, user: actor.id, text: NOT_IN_CHANNEL });
    }
  }

  bolt.command('/vmoodle', async ({ command, ack, client }) => {
    await ack();
    const actor = { id: command.user_id, channel: command.channel_id };
    later(async () => deliver(client, actor, await router.handle(command.text || 'help', actor)));
  });

  for (const verb of ['start', 'reject', 'cancel', 'retry'] as const) {
    bolt.action(verb, async ({ ack, body, action, client }) => {
      await ack();
      const { runId } = parseRunButton((action as { value: string }).value);
      const actor = { id: body.user.id, channel: (body as { channel?: { id: string } }).channel?.id ?? '' };
      later(async () => deliver(client, actor, await router.handle(`${verb} ${runId}`, actor)));
    });
  }

  bolt.action('approve', async ({ ack, body, action, client }) => {
    await ack();
    const { runId } = parseRunButton((action as { value: string }).value);
    const actor = { id: body.user.id, channel: (body as { channel?: { id: string } }).channel?.id ?? '' };
    later(async () => {
      const refusal = rbac.refusal(actor.id, 'approve', undefined, actor.channel);
      const rt = await app.ops();
      const run = await rt.store.getRun(runId);
      if (refusal || run.requested_by === actor.id || run.state !== 'awaiting_approval') {
        const text = refusal ?? (run.requested_by === actor.id ? 'You requested this run; a second person must approve it.' : `Run ${runId} is ${run.state.replaceAll('_', ' ')}.`);
        await client.chat.postEphemeral({ channel: actor.channel, user: actor.id, text });
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
    const reply = await router.approveFromSlack(runId, typed, hash, actor);
    if (!reply.follow) {
      await ack({ response_action: 'errors', errors: { typed: reply.text.replace(/^:warning: /, '').slice(0, 150) } });
      return;
    }
    await ack();
    later(async () => {
      await client.chat.postMessage({ channel, text: reply.text });
      await deliver(client, actor, { ...reply, text: '' });
    });
  });

  const server: Server = createServer((req, res) => {
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
    idle: async () => {
      while (work.size > 0) await Promise.all([...work]);
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
