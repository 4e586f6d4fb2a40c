import type {
  App,
  BlockAction,
  BlockElementAction,
  BlockSuggestion,
  ButtonAction,
  PlainTextInputAction,
  SlackActionMiddlewareArgs,
  StaticSelectAction,
} from '@slack/bolt';
import { confirmationText } from '../../../ops/executor/approvals.ts';
import { MASK } from '../../../ops/moodle/sensitive.ts';
import { resolveTargets } from '../../../registry/selector.ts';
import { listInstances } from '../../../verbs/info-verbs.ts';
import { approve, cancel, reject, retry, revert, startPlanned } from '../../../verbs/run-verbs.ts';
import { selectorFlags } from '../../../verbs/target-flags.ts';
import type { Actor } from '../../../verbs/verb.ts';
import type { ChatReply } from '../../chat.ts';
import { approvalModal, DELIVERY_ACTION, parseRunButton } from '../blocks.ts';
import { STEP_VERBS } from '../../../verbs/delivery-verbs.ts';
import { BUILDER, builderView, type BuilderState } from '../builder.ts';
import { decisionText, type SlackContext } from '../context.ts';
import { publishHome } from '../home.ts';
import { SLACK_LIMITS } from '../limits.ts';
import { escapeMrkdwn } from '../mrkdwn.ts';
import { plain, type ReplyTo } from '../replies.ts';

type Handler = (args: SlackActionMiddlewareArgs<BlockAction>) => Promise<void>;

/**
 * A handler for one action_id, typed by the element that carries it. Bolt routes by action_id; the element behind each
 * id is the one the bot's own blocks put there, which is what this one narrowing relies on.
 */
const on = <A extends BlockElementAction>(
  handler: (args: SlackActionMiddlewareArgs<BlockAction<A>>) => Promise<void>,
): Handler => handler as unknown as Handler;

/** Who pressed, and the way back to them: the message's response_url, or their DM for a button in a view. */
function replyTo(body: BlockAction): ReplyTo & { actor: Actor } {
  const user = body.user.id;
  const channel = body.channel?.id ?? user;
  return {
    user,
    channel,
    actor: { id: user, channel },
    ...(body.response_url ? { responseUrl: body.response_url } : {}),
  };
}

/** The builder's state, carried in its view. */
const builderState = (body: BlockAction) => JSON.parse(body.view?.private_metadata ?? '{}') as BuilderState;

/**
 * Every button and input of the bot's messages and views, in one Bolt listener routing by action_id: Bolt runs each
 * listener's middleware for every request, so one per kind keeps an ack as quick as a bare Bolt app's.
 */
export function registerActions(bolt: App, ctx: SlackContext): void {
  const handlers: Record<string, Handler> = {};
  handlers.targets_builder = on<ButtonAction>(async ({ ack, body, action, respond }) => {
    await ack();
    const to = { ...replyTo(body), respond };
    ctx.now(to, () =>
      ctx.client.views.open({
        trigger_id: body.trigger_id,
        view: builderView({ channel: to.channel, targets: action.value ?? '' }),
      }),
    );
  });

  for (const recycle of ['same_command', 'same_targets'] as const) {
    handlers[recycle] = on<ButtonAction>(async ({ ack, body, action, respond }) => {
      await ack();
      const to = { ...replyTo(body), respond };
      ctx.now(to, async () => {
        const run = await (await ctx.ops()).store.getRun(parseRunButton(action.value ?? '').runId);
        const params = Object.fromEntries(
          Object.entries(JSON.parse(run.params) as Record<string, string>).filter(([, v]) => v !== MASK),
        );
        const state =
          recycle === 'same_command'
            ? { channel: to.channel, command: run.command, params }
            : { channel: to.channel, targets: selectorFlags(JSON.parse(run.selector)) };
        await ctx.client.views.open({ trigger_id: body.trigger_id, view: builderView(state) });
      });
    });
  }

  handlers[BUILDER.command] = on<StaticSelectAction>(async ({ ack, body, action }) => {
    await ack();
    const state = builderState(body);
    const view = body.view as { id: string; hash: string };
    ctx.later({ user: body.user.id, channel: state.channel }, () =>
      ctx.client.views.update({
        view_id: view.id,
        hash: view.hash,
        view: builderView({ ...state, command: action.selected_option?.value }),
      }),
    );
  });

  handlers[BUILDER.glob] = on<PlainTextInputAction>(async ({ ack, body, action }) => {
    await ack();
    const state = builderState(body);
    const view = body.view as { id: string; hash: string };
    ctx.later({ user: body.user.id, channel: state.channel }, async () => {
      let count: string;
      try {
        const selection = resolveTargets(await ctx.backend.fleet(), { tohostsmatch: action.value ?? '' });
        count = `*${selection.counts.targets}* instances (matched ${selection.counts.matched}, disabled left out ${selection.counts.disabledLeftOut})`;
      } catch (err) {
        // A glob that does not parse is the answer itself, shown where the count goes.
        count = escapeMrkdwn(ctx.chat.failure(err).text);
      }
      await ctx.client.views.update({ view_id: view.id, hash: view.hash, view: builderView({ ...state, count }) });
    });
  });

  bolt.options<'block_suggestion'>(BUILDER.hosts, async ({ ack, options, body }) => {
    // Host names are registry data: only someone who may list instances sees them.
    if (ctx.chat.session({ id: body.user.id }).refusal(listInstances)) {
      await ack({ options: [] });
      return;
    }
    const query = (options as BlockSuggestion).value.toLowerCase();
    const fleet = await ctx.backend.fleet();
    const found = fleet.hosts.filter(
      (h) => h.shortname.toLowerCase().includes(query) || h.wwwroot.toLowerCase().includes(query),
    );
    await ack({
      options: found.slice(0, SLACK_LIMITS.optionsPerSelect).map((h) => ({
        text: { type: 'plain_text', text: `${h.shortname} (${h.wwwroot})`.slice(0, 75) },
        value: h.shortname,
      })),
    });
  });

  handlers.home_page = on<ButtonAction>(async ({ ack, body, action }) => {
    await ack();
    const user = body.user.id;
    ctx.later({ user, channel: user }, () => publishHome(ctx, user, Number(action.value)));
  });

  /** The buttons of plans and progress messages: each calls its verb with the run (and the hash it showed). */
  const RUN_BUTTONS: Record<string, (actor: Actor, runId: number, hash: string) => Promise<ChatReply>> = {
    start: (actor, runId, hash) => ctx.chat.call(startPlanned, { runId, hash }, actor),
    reject: (actor, runId) => ctx.chat.call(reject, { runId }, actor),
    cancel: (actor, runId) => ctx.chat.call(cancel, { runId }, actor),
    retry: (actor, runId) => ctx.chat.call(retry, { runId, given: {} }, actor),
    revert: (actor, runId) => ctx.chat.call(revert, { runId }, actor),
  };
  for (const [actionId, press] of Object.entries(RUN_BUTTONS)) {
    handlers[actionId] = on<ButtonAction>(async ({ ack, body, action, respond }) => {
      await ack();
      const { runId, hash } = parseRunButton(action.value ?? '');
      const to = { ...replyTo(body), respond };
      ctx.later(to, async () => {
        if (actionId === 'reject' && (await closedRequest(ctx, to, runId))) return;
        await ctx.deliver(to, await press(to.actor, runId, hash));
      });
    });
  }

  // A delivery status's step buttons plan that step as the one who pressed, as `/vmoodle deliver <step>` would.
  for (const [step, verb] of Object.entries(STEP_VERBS)) {
    handlers[`${DELIVERY_ACTION}${step}`] = on<ButtonAction>(async ({ ack, body, respond }) => {
      await ack();
      const to = { ...replyTo(body), respond };
      ctx.later(to, async () => ctx.deliver(to, await ctx.chat.call(verb, verb.args([], {}), to.actor)));
    });
  }

  // The approval modal opens at once, while the trigger is fresh; the checks before it are a read of the run.
  handlers.approve = on<ButtonAction>(async ({ ack, body, action, respond }) => {
    await ack();
    const { runId } = parseRunButton(action.value ?? '');
    const to = { ...replyTo(body), respond };
    ctx.now(to, async () => {
      const refusal = ctx.chat.session(to.actor).refusal(approve);
      if (refusal) return ctx.replies.send(to, plain(refusal));
      if (await closedRequest(ctx, to, runId)) return undefined;
      const rt = await ctx.ops();
      const run = await rt.store.getRun(runId);
      if (run.requested_by === to.user)
        return ctx.replies.send(to, plain('You requested this run; a second person must approve it.'));
      return ctx.client.views.open({
        trigger_id: body.trigger_id,
        view: approvalModal(run, await confirmationText(rt, run), to.channel),
      });
    });
  });

  const ids = new RegExp(
    `^(${Object.keys(handlers)
      .map((id) => id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
      .join('|')})$`,
  );
  bolt.action<BlockAction>({ type: 'block_actions', action_id: ids }, async (args) =>
    (handlers[args.action.action_id] as Handler)(args),
  );
}

/** Says so, and returns true, when a run's approval request was decided already; an unknown run throws (and is told). */
async function closedRequest(ctx: SlackContext, to: ReplyTo, runId: number): Promise<boolean> {
  const rt = await ctx.ops();
  const run = await rt.store.getRun(runId);
  if (run.state === 'awaiting_approval') return false;
  await ctx.replies.send(to, { text: `This approval request is closed: ${await decisionText(rt, run)}` });
  return true;
}
