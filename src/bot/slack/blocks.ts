import type { KnownBlock, View } from '@slack/types';
import type { RunRow } from '../../ops/executor/run-model.ts';
import { fitSection, SLACK_LIMITS } from './limits.ts';
import { escapeMrkdwn, mention } from './mrkdwn.ts';

const section = (text: string): KnownBlock => ({ type: 'section', text: { type: 'mrkdwn', text: fitSection(text) } });

/** Plain text (a reply, which may quote users and the registry), escaped and split over as many sections as it needs. */
export function textBlocks(text: string): KnownBlock[] {
  const blocks: KnownBlock[] = [];
  let rest = escapeMrkdwn(text);
  while (rest.length > 0 && blocks.length < SLACK_LIMITS.blocksPerMessage) {
    const cut =
      rest.length <= SLACK_LIMITS.sectionText
        ? rest.length
        : rest.lastIndexOf('\n', SLACK_LIMITS.sectionText - 1) + 1 || SLACK_LIMITS.sectionText;
    blocks.push(section(rest.slice(0, cut)));
    rest = rest.slice(cut);
  }
  return blocks;
}

/** The value buttons carry: which run and which plan was shown. Never who clicks (that comes from the signed payload). */
export const runButtonValue = (run: RunRow) => `${run.id}:${run.plan_hash}`;

export function parseRunButton(value: string): { runId: number; hash: string } {
  const [id, hash] = value.split(':');
  return { runId: Number(id), hash: hash ?? '' };
}

export function approvalBlocks(text: string, run: RunRow): KnownBlock[] {
  return [
    ...textBlocks(text).slice(0, SLACK_LIMITS.blocksPerMessage - 1),
    {
      type: 'actions',
      elements: [
        {
          type: 'button',
          action_id: 'approve',
          text: { type: 'plain_text', text: 'Approve…' },
          style: 'primary',
          value: runButtonValue(run),
        },
        {
          type: 'button',
          action_id: 'reject',
          text: { type: 'plain_text', text: 'Reject' },
          style: 'danger',
          value: runButtonValue(run),
        },
      ],
    },
  ];
}

export function startBlocks(text: string, run: RunRow): KnownBlock[] {
  return [
    ...textBlocks(text).slice(0, SLACK_LIMITS.blocksPerMessage - 1),
    {
      type: 'actions',
      elements: [
        {
          type: 'button',
          action_id: 'start',
          text: { type: 'plain_text', text: `Run on ${run.target_count}` },
          style: 'primary',
          value: runButtonValue(run),
        },
      ],
    },
  ];
}

/** The plan of a `run`: opened at once while it is computed, then filled in; submitting starts it. */
export function planModal(channel: string, text: string, run?: RunRow): View {
  return {
    type: 'modal',
    callback_id: 'plan_modal',
    private_metadata: JSON.stringify({ channel, value: run ? runButtonValue(run) : '' }),
    title: { type: 'plain_text', text: run ? `Run ${run.id}` : 'Plan' },
    close: { type: 'plain_text', text: 'Close' },
    ...(run ? { submit: { type: 'plain_text' as const, text: `Run on ${run.target_count}` } } : {}),
    blocks: textBlocks(text).slice(0, SLACK_LIMITS.blocksPerModal),
  };
}

/** A preview's reply, with a way on to the command builder for those targets. */
export function previewBlocks(text: string, targetFlags: string): KnownBlock[] {
  return [
    ...textBlocks(text).slice(0, SLACK_LIMITS.blocksPerMessage - 1),
    {
      type: 'actions',
      elements: [
        {
          type: 'button',
          action_id: 'targets_builder',
          text: { type: 'plain_text', text: 'Run a command on these' },
          value: targetFlags.slice(0, SLACK_LIMITS.buttonValue),
        },
      ],
    },
  ];
}

/** An approval request once decided: what was asked, and the outcome in place of the buttons. */
export function closedApprovalBlocks(run: RunRow, outcome: string): KnownBlock[] {
  return [
    section(
      `*Run ${run.id}* \`${escapeMrkdwn(run.command)}\` on *${run.target_count}* targets, requested by ${mention(run.requested_by)}.`,
    ),
    { type: 'context', elements: [{ type: 'mrkdwn', text: outcome }] },
  ];
}

/** The approver confirms by typing what the request asks: the target count, or the short name for one target. */
export function approvalModal(run: RunRow, expected: string, channel: string): View {
  return {
    type: 'modal',
    callback_id: 'approve_modal',
    private_metadata: JSON.stringify({ value: runButtonValue(run), channel, expected }),
    title: { type: 'plain_text', text: `Approve run ${run.id}` },
    submit: { type: 'plain_text', text: 'Approve and run' },
    close: { type: 'plain_text', text: 'Cancel' },
    blocks: [
      section(
        `\`${escapeMrkdwn(run.command)}\` on *${run.target_count}* targets, requested by ${mention(run.requested_by)}.`,
      ),
      {
        type: 'input',
        block_id: 'typed',
        label: {
          type: 'plain_text',
          text: run.target_count === 1 ? 'Type the instance short name' : 'Type the number of targets',
        },
        element: { type: 'plain_text_input', action_id: 'value', placeholder: { type: 'plain_text', text: expected } },
      },
    ],
  };
}

const BAR = 20;

/**
 * The parent message of a run: a progress bar and counts, with Cancel while it runs, Retry and Revert after. `note`
 * is mrkdwn the bot wrote (who cancelled it), shown under the bar.
 */
export function progressBlocks(
  run: RunRow,
  done: number,
  failed: number,
  reversible = false,
  note?: string,
): KnownBlock[] {
  const filled = run.target_count ? Math.round((done / run.target_count) * BAR) : BAR;
  const bar = `${'█'.repeat(filled)}${'░'.repeat(BAR - filled)}`;
  const blocks: KnownBlock[] = [
    section(
      `*Run ${run.id}* \`${escapeMrkdwn(run.command)}\` — ${run.state.replaceAll('_', ' ')}\n\`${bar}\` ${done}/${run.target_count} done, ${failed} not succeeded${note ? `\n${note}` : ''}`,
    ),
  ];
  if (run.state === 'cancelling') return blocks;
  if (run.state === 'running') {
    blocks.push({
      type: 'actions',
      elements: [
        {
          type: 'button',
          action_id: 'cancel',
          text: { type: 'plain_text', text: 'Cancel' },
          style: 'danger',
          value: runButtonValue(run),
        },
      ],
    });
  } else {
    blocks.push({
      type: 'actions',
      elements: [
        {
          type: 'button',
          action_id: 'same_command',
          text: { type: 'plain_text', text: 'Same command → other targets' },
          value: runButtonValue(run),
        },
        {
          type: 'button',
          action_id: 'same_targets',
          text: { type: 'plain_text', text: 'Same targets → other command' },
          value: runButtonValue(run),
        },
        ...(failed > 0
          ? [
              {
                type: 'button' as const,
                action_id: 'retry',
                text: { type: 'plain_text' as const, text: 'Retry failed' },
                value: runButtonValue(run),
              },
            ]
          : []),
        ...(reversible
          ? [
              {
                type: 'button' as const,
                action_id: 'revert',
                text: { type: 'plain_text' as const, text: 'Revert' },
                value: runButtonValue(run),
              },
            ]
          : []),
      ],
    });
  }
  return blocks;
}

/** The steps a delivery status offers: only those every node allows now; serving another tree is styled as dangerous. */
export function deliveryBlocks(text: string, steps: readonly string[], serving: readonly string[]): KnownBlock[] {
  const blocks = textBlocks(text).slice(0, SLACK_LIMITS.blocksPerMessage - 1);
  if (steps.length === 0) return blocks;
  return [
    ...blocks,
    {
      type: 'actions',
      elements: steps.map((step) => ({
        type: 'button' as const,
        action_id: `${DELIVERY_ACTION}${step}`,
        text: {
          type: 'plain_text' as const,
          text: `${step[0]?.toUpperCase()}${step.slice(1)}${serving.includes(step) ? '…' : ''}`,
        },
        value: step,
        ...(serving.includes(step) ? { style: 'danger' as const } : {}),
      })),
    },
  ];
}

/** The action ids of delivery step buttons: this prefix and the step. */
export const DELIVERY_ACTION = 'deliver_';
