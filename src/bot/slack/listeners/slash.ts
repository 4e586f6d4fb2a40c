import type { App } from '@slack/bolt';
import { planModal } from '../blocks.ts';
import { builderView } from '../builder.ts';
import type { SlackContext } from '../context.ts';
import type { ReplyTo } from '../replies.ts';
import { findVerb } from '../../../verbs/index.ts';
import { PLAN_VERBS } from '../../../verbs/plan-verbs.ts';

/** A line whose verb plans a command (`run`, `mnet renew`, `cron run`): its plan shows in a modal. */
function opensPlan(text: string): boolean {
  if (/\s--help\b/.test(text)) return false;
  try {
    const { verb } = findVerb(text.trim().split(/\s+/));
    return PLAN_VERBS.includes(verb) && verb.path[0] !== 'showtargets';
  } catch {
    // biome-ignore lint/plugin: an unknown verb is answered by the chat with what it is and what was meant
    return false;
  }
}

/** `/vmoodle …`: acknowledged at once; bare, it opens the command builder; a verb that plans shows its plan in a modal. */
export function registerSlashCommand(bolt: App, ctx: SlackContext): void {
  bolt.command('/vmoodle', async ({ command, ack, respond }) => {
    await ack();
    const to: ReplyTo = {
      user: command.user_id,
      channel: command.channel_id,
      respond,
      responseUrl: command.response_url,
    };
    const actor = { id: command.user_id, channel: command.channel_id };
    if (!command.text.trim()) {
      ctx.now(to, () =>
        ctx.client.views.open({ trigger_id: command.trigger_id, view: builderView({ channel: command.channel_id }) }),
      );
      return;
    }
    if (opensPlan(command.text)) {
      // The plan shows in a modal opened at once, while the trigger is fresh, and filled in once computed.
      ctx.now(to, async () => {
        const opened = await ctx.client.views.open({
          trigger_id: command.trigger_id,
          view: planModal(actor.channel, 'Computing the plan…'),
        });
        const viewId = (opened.view as { id: string }).id;
        ctx.later(to, async () => {
          const reply = await ctx.chat.handle(command.text, actor);
          const view = reply.view?.kind === 'plan' ? reply.view : undefined;
          if (view?.approval) await ctx.deliver(to, reply);
          const text = view?.approval ? `${reply.text}\nThe approval request is in the channel.` : reply.text;
          await ctx.client.views.update({
            view_id: viewId,
            view: planModal(actor.channel, text, view && !view.approval ? view.plan.run : undefined),
          });
        });
      });
      return;
    }
    ctx.later(to, async () => ctx.deliver(to, await ctx.chat.handle(command.text, actor)));
  });
}
