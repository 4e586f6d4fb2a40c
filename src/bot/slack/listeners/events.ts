import type { App } from '@slack/bolt';
import { SLACK_LIMITS } from '../limits.ts';
import type { SlackContext } from '../context.ts';
import { publishHome } from '../home.ts';

/**
 * Events API deliveries. Slack retries one it thinks failed, with the same event_id: each event_id is handled once
 * (remembered in Redis for an hour), whatever the retry header says, so a retry of an event whose first delivery
 * failed here is still handled. Should the handling fail, the id is forgotten so that Slack's next retry can try.
 */
export function registerEvents(bolt: App, ctx: SlackContext): void {
  bolt.use(async ({ body, next }) => {
    const eventId = (body as { event_id?: unknown }).event_id;
    if (typeof eventId !== 'string') {
      await next();
      return;
    }
    const rt = await ctx.ops();
    const key = `${rt.queuePrefix}:slack:event:${eventId}`;
    if ((await rt.redis.set(key, '1', 'EX', SLACK_LIMITS.eventIdSeconds, 'NX')) !== 'OK') return;
    try {
      await next();
    } catch (err) {
      await rt.redis.del(key);
      throw err;
    }
  });

  bolt.event('app_home_opened', async ({ event }) => {
    ctx.work.later(() => publishHome(ctx, event.user, 1));
  });
}
