import type { App, SlackViewMiddlewareArgs, ViewSubmitAction } from '@slack/bolt';
import { cancelRun } from '../../../ops/executor/run-actions.ts';
import { plan as planVerb } from '../../../verbs/plan-verbs.ts';
import { approve, startPlanned } from '../../../verbs/run-verbs.ts';
import { planText, SLACK_STYLE } from '../../../verbs/text-views.ts';
import { parseRunButton } from '../blocks.ts';
import { BUILDER, builderArgs, type BuilderState } from '../builder.ts';
import type { SlackContext } from '../context.ts';
import { plain, type ReplyTo } from '../replies.ts';

/** A modal has no response_url: its replies go to the user's direct message with the bot. */
const replyTo = (body: ViewSubmitAction, channel: string): ReplyTo & { actor: { id: string; channel: string } } => ({
  user: body.user.id,
  channel,
  actor: { id: body.user.id, channel },
});

type Handler = (args: SlackViewMiddlewareArgs<ViewSubmitAction>) => Promise<void>;

/** The bot's modals, submitted: one Bolt listener routing by callback_id, as for actions. */
export function registerViews(bolt: App, ctx: SlackContext): void {
  const handlers: Record<string, Handler> = {};
  handlers.plan_modal = async ({ ack, body, view }) => {
    await ack();
    const { channel, value } = JSON.parse(view.private_metadata) as { channel: string; value: string };
    const to = replyTo(body, channel);
    const { runId, hash } = parseRunButton(value);
    ctx.later(to, async () => ctx.deliver(to, await ctx.chat.call(startPlanned, { runId, hash }, to.actor)));
  };

  handlers[BUILDER.callback] = async ({ ack, body, view }) => {
    const state = JSON.parse(view.private_metadata) as BuilderState;
    const to = replyTo(body, state.channel);
    let built: ReturnType<typeof builderArgs>;
    try {
      built = builderArgs(state, view.state.values as never);
    } catch (err) {
      await ack({
        response_action: 'errors',
        errors: { [BUILDER.command]: ctx.chat.failure(err).error?.message.slice(0, 150) ?? 'not a valid request' },
      });
      return;
    }
    await ack();
    ctx.later(to, async () => {
      const reply = await ctx.chat.call(planVerb, built.args, to.actor);
      const planned = reply.view?.kind === 'plan' ? reply.view.plan : undefined;
      if (built.dry && planned) {
        await cancelRun(await ctx.ops(), planned.run.id, to.user);
        await ctx.replies.send(
          to,
          plain(`${planText(planned, SLACK_STYLE)}\nDry run: run ${planned.run.id} was only planned.`),
        );
        return;
      }
      await ctx.deliver(to, reply);
    });
  };

  // Acknowledged at once: a wrong confirmation is a field error, checked against what the modal asked; the approval
  // itself (the plan hash shown, a second person, not expired) runs after the ack and answers in the direct message.
  handlers.approve_modal = async ({ ack, body, view }) => {
    const { value, channel, expected } = JSON.parse(view.private_metadata) as {
      value: string;
      channel: string;
      expected: string;
    };
    const { runId, hash } = parseRunButton(value);
    const typed = view.state.values.typed?.value?.value ?? '';
    if (typed.trim() !== expected) {
      await ack({ response_action: 'errors', errors: { typed: `Type ${expected} to approve run ${runId}.` } });
      return;
    }
    await ack();
    const to = replyTo(body, channel);
    ctx.later(to, async () => ctx.deliver(to, await ctx.chat.call(approve, { runId, typed, hash }, to.actor)));
  };

  bolt.view<ViewSubmitAction>(
    { type: 'view_submission', callback_id: new RegExp(`^(${Object.keys(handlers).join('|')})$`) },
    async (args) => (handlers[args.view.callback_id] as Handler)(args),
  );
}
