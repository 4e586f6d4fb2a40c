import { createHash } from 'node:crypto';
import type { RespondFn } from '@slack/bolt';
import type { KnownBlock } from '@slack/types';
import type { WebClient } from '@slack/web-api';
import type { Redis } from 'ioredis';
import type { Logger } from '../../core/log.ts';
import { errorFields } from '../../core/log.ts';
import { SLACK_LIMITS } from './limits.ts';
import { escapeMrkdwn } from './mrkdwn.ts';
import { textBlocks } from './blocks.ts';

/** Who a reply is for, and the request's own way back to them when it has one. */
export interface ReplyTo {
  user: string;
  /** Where the request was made: a channel, a DM, or the user's id for a Home tab or a modal. */
  channel: string;
  respond?: RespondFn;
  responseUrl?: string;
}

export interface SlackMessage {
  text: string;
  blocks?: KnownBlock[];
}

/** Errors of chat.postMessage that mean the bot may not post in that conversation. */
const NOT_A_MEMBER = new Set(['not_in_channel', 'channel_not_found', 'is_archived', 'restricted_action']);

/** The hint for a conversation the bot may not post in, naming it as a link when its id is one Slack gives. */
export const notInChannel = (channel: string) =>
  `I am not in ${/^[CG][A-Z0-9]{2,}$/.test(channel) ? `<#${channel}>` : 'this conversation'}: invite me with \`/invite @vmoodle\`, then try again.`;

/** A reply built from plain text: escaped, and split over sections. */
export const plain = (text: string): SlackMessage => ({
  text: escapeMrkdwn(text).slice(0, SLACK_LIMITS.sectionText),
  blocks: textBlocks(text),
});

/**
 * How the bot answers someone. A reply goes to the request's response_url, which works in any channel and in direct
 * messages whether the bot is there or not, as long as the URL has posts left (Slack takes five within thirty
 * minutes, counted in Redis across the bot's processes); after that, or without one (a modal), it goes to the user's
 * direct message with the bot. Public messages go only where the bot is a member.
 */
export class Replies {
  constructor(
    private readonly client: WebClient,
    /** The Redis the bot shares with the executor, and its key prefix. */
    private readonly redis: () => Promise<{ redis: Redis; prefix: string }>,
    private readonly log: Logger,
  ) {}

  async send(to: ReplyTo, message: SlackMessage): Promise<void> {
    if (to.respond && to.responseUrl && (await this.takeResponsePost(to.responseUrl))) {
      try {
        await to.respond({
          response_type: 'ephemeral',
          replace_original: false,
          text: message.text,
          ...(message.blocks ? { blocks: message.blocks } : {}),
        });
        return;
      } catch (err) {
        // An expired or used-up URL: the direct message still reaches them.
        this.log.warn({ ...errorFields(err) }, 'a reply to a response_url failed; sent as a direct message');
      }
    }
    await this.client.chat.postMessage({
      channel: to.user,
      text: message.text,
      ...(message.blocks ? { blocks: message.blocks } : {}),
    });
  }

  /**
   * Posts where everyone in the channel sees it; where the bot is not a member, tells the user so (by a reply) and
   * returns undefined.
   */
  async post(to: ReplyTo, message: SlackMessage & { thread_ts?: string }): Promise<string | undefined> {
    try {
      const posted = await this.client.chat.postMessage({ channel: to.channel, ...message });
      return posted.ts as string;
    } catch (err) {
      const code = (err as { data?: { error?: string } }).data?.error;
      if (!code || !NOT_A_MEMBER.has(code)) throw err;
      await this.send(to, { text: notInChannel(to.channel) });
      return undefined;
    }
  }

  /** One post of a response_url's five, or false when they are used up. */
  private async takeResponsePost(url: string): Promise<boolean> {
    const { redis, prefix } = await this.redis();
    const key = `${prefix}:slack:respond:${createHash('sha256').update(url).digest('hex').slice(0, 32)}`;
    // The window starts at the first post: INCR keeps the key's expiry.
    const [, [, used]] = (await redis.multi().set(key, 0, 'PX', SLACK_LIMITS.responseUrlMs, 'NX').incr(key).exec()) as [
      unknown,
      [unknown, number],
    ];
    return used <= SLACK_LIMITS.responseUrlPosts;
  }
}
