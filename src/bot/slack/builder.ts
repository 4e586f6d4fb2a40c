import type { KnownBlock, View } from '@slack/types';
import { CATALOG } from '../../ops/commands/index.ts';
import type { ParamSpec } from '../../ops/commands/command.ts';
import { UsageError } from '../../core/errors.ts';
import type { Selector } from '../../registry/selector.ts';
import type { PlanArgs } from '../../verbs/plan-verbs.ts';
import { parseSelectorFlags } from '../../verbs/target-flags.ts';
import { SLACK_LIMITS } from './limits.ts';
import { escapeMrkdwn } from './mrkdwn.ts';

export const BUILDER = {
  callback: 'builder',
  command: 'builder_command',
  glob: 'builder_glob',
  hosts: 'builder_hosts',
  param: (name: string) => `param_${name}`,
} as const;

export interface BuilderState {
  channel: string;
  command?: string;
  count?: string;
  /** Targets carried over (from a preview or a run), as the slash command's target flags. */
  targets?: string;
  /** Parameter values carried over from a run, to change only what differs. */
  params?: Record<string, string>;
}

/** One input per parameter of the chosen command, typed as its schema says. */
function paramInput(spec: ParamSpec, carried?: string): KnownBlock {
  const label = { type: 'plain_text' as const, text: spec.label.slice(0, 150) };
  const hint = spec.help ? { hint: { type: 'plain_text' as const, text: spec.help.slice(0, 150) } } : {};
  const optional = spec.default !== undefined || spec.type === 'boolean';
  if (spec.type === 'boolean' || spec.type === 'enum' || spec.type === 'menum') {
    const choices = spec.type === 'boolean' ? ['1', '0'] : [...(spec.choices ?? [])];
    const options = choices.slice(0, SLACK_LIMITS.optionsPerSelect).map((c) => ({
      text: { type: 'plain_text' as const, text: spec.type === 'boolean' ? (c === '1' ? 'yes' : 'no') : c },
      value: c,
    }));
    const initial = options.find((o) => o.value === (carried ?? spec.default ?? '0'));
    return {
      type: 'input',
      block_id: BUILDER.param(spec.name),
      label,
      optional,
      ...hint,
      element:
        spec.type === 'menum'
          ? { type: 'multi_static_select', action_id: 'value', options }
          : { type: 'static_select', action_id: 'value', options, ...(initial ? { initial_option: initial } : {}) },
    };
  }
  return {
    type: 'input',
    block_id: BUILDER.param(spec.name),
    label,
    optional,
    ...hint,
    element: {
      type: 'plain_text_input',
      action_id: 'value',
      multiline: spec.type === 'ltext',
      ...((carried ?? spec.default) ? { initial_value: carried ?? spec.default } : {}),
    },
  };
}

/**
 * The command builder: a command from the catalogue, its parameters (generated from its schema once chosen),
 * targets as globs with a live count or as instances picked by name, and a dry run.
 */
export function builderView(state: BuilderState): View {
  const categories = [...new Set([...CATALOG.values()].map((c) => c.category))];
  const commandOptions = categories.map((category) => ({
    label: { type: 'plain_text' as const, text: category },
    options: [...CATALOG.values()]
      .filter((c) => c.category === category)
      .map((c) => ({ text: { type: 'plain_text' as const, text: c.name }, value: c.name })),
  }));
  const chosen = state.command ? CATALOG.get(state.command) : undefined;
  const initial = chosen
    ? { initial_option: { text: { type: 'plain_text' as const, text: chosen.name }, value: chosen.name } }
    : {};
  const blocks: KnownBlock[] = [
    {
      type: 'input',
      block_id: BUILDER.command,
      dispatch_action: true,
      label: { type: 'plain_text', text: 'Command' },
      element: { type: 'static_select', action_id: BUILDER.command, option_groups: commandOptions, ...initial },
    },
    ...(chosen
      ? [
          { type: 'context', elements: [{ type: 'mrkdwn', text: chosen.summary }] } as KnownBlock,
          ...chosen.params.map((p) => paramInput(p, state.params?.[p.name])),
        ]
      : []),
    ...(state.targets
      ? [
          {
            type: 'context',
            elements: [
              {
                type: 'mrkdwn',
                text: `Targets: \`${escapeMrkdwn(state.targets.slice(0, 2000))}\` (unless chosen below)`,
              },
            ],
          } as KnownBlock,
        ]
      : []),
    {
      type: 'input',
      block_id: BUILDER.glob,
      dispatch_action: true,
      optional: true,
      label: { type: 'plain_text', text: 'Targets: wwwroot globs' },
      hint: { type: 'plain_text', text: "comma separated, e.g. *.example.org ('*' any run, '?' one character)" },
      element: {
        type: 'plain_text_input',
        action_id: BUILDER.glob,
        dispatch_action_config: { trigger_actions_on: ['on_character_entered'] },
      },
    },
    {
      type: 'context',
      block_id: 'count',
      elements: [{ type: 'mrkdwn', text: state.count ?? 'Type a glob to see how many instances it selects.' }],
    },
    {
      type: 'input',
      block_id: BUILDER.hosts,
      optional: true,
      label: { type: 'plain_text', text: 'Or pick instances' },
      element: { type: 'multi_external_select', action_id: BUILDER.hosts, min_query_length: 1 },
    },
    {
      type: 'input',
      block_id: 'dry',
      optional: true,
      label: { type: 'plain_text', text: 'Dry run' },
      element: {
        type: 'checkboxes',
        action_id: 'value',
        options: [{ text: { type: 'plain_text', text: 'Only show the plan' }, value: 'dry' }],
      },
    },
  ];
  return {
    type: 'modal',
    callback_id: BUILDER.callback,
    private_metadata: JSON.stringify(state),
    title: { type: 'plain_text', text: 'Run a command' },
    submit: { type: 'plain_text', text: 'Plan' },
    close: { type: 'plain_text', text: 'Cancel' },
    blocks: blocks.slice(0, SLACK_LIMITS.blocksPerModal),
  };
}

type StateValues = Record<
  string,
  Record<
    string,
    { value?: string | null; selected_option?: { value: string } | null; selected_options?: Array<{ value: string }> }
  >
>;

/**
 * The plan a submitted builder asks for, as the run verb's typed arguments: nothing is put back into a command line
 * to be parsed again.
 */
export function builderArgs(state: BuilderState, values: StateValues): { args: PlanArgs; dry: boolean } {
  const command = values[BUILDER.command]?.[BUILDER.command]?.selected_option?.value ?? state.command;
  if (!command) throw new UsageError('choose a command');
  const spec = CATALOG.get(command);
  const params: Record<string, string> = {};
  for (const p of spec?.params ?? []) {
    const field = values[BUILDER.param(p.name)]?.value;
    const value = field?.selected_options
      ? field.selected_options.map((o) => o.value).join(',')
      : (field?.selected_option?.value ?? field?.value);
    if (value !== undefined && value !== null && value !== '') params[p.name] = value;
  }
  const glob = values[BUILDER.glob]?.[BUILDER.glob]?.value;
  const hosts = values[BUILDER.hosts]?.[BUILDER.hosts]?.selected_options?.map((o) => o.value) ?? [];
  const selector: Selector =
    hosts.length > 0
      ? { tohosts: hosts }
      : glob
        ? { tohostsmatch: glob }
        : state.targets
          ? parseSelectorFlags(state.targets)
          : {};
  return {
    args: { command, params, selector, test: false },
    dry: (values.dry?.value?.selected_options ?? []).length > 0,
  };
}
