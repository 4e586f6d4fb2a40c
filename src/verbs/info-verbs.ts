import { UsageError } from '../core/errors.ts';
import { defineVerb, type VerbDef } from './verb.ts';

const STATES = ['enabled', 'disabled', 'all'] as const;

export const listInstances = defineVerb<{
  filter?: string;
  state?: (typeof STATES)[number];
  page: number;
  perPage: number;
}>({
  path: ['instances', 'list'],
  aliases: ['instances'],
  role: 'viewer',
  summary: 'the registry, a page at a time, ordered by name',
  examples: ['instances list --filter campus --state enabled --page 2'],
  syntax: (cmd) =>
    cmd
      .option('--filter <text>', 'only instances whose name, short name or wwwroot contains the text')
      .option('--state <state>', `which instances: ${STATES.join(', ')}`)
      .option('--page <n>', 'which page', '1')
      .option('--per-page <n>', 'instances a page', '35'),
  args: (_operands, opts) => {
    const number = (flag: string, value: unknown, max: number) => {
      if (typeof value !== 'string' || !/^\d{1,6}$/.test(value) || Number(value) < 1 || Number(value) > max)
        throw new UsageError(`${flag} takes a whole number from 1 to ${max}`);
      return Number(value);
    };
    const state = opts.state as string | undefined;
    if (state !== undefined && !(STATES as readonly string[]).includes(state))
      throw new UsageError(`--state takes ${STATES.join(', ')}, got '${state}'`);
    return {
      ...(typeof opts.filter === 'string' ? { filter: opts.filter } : {}),
      ...(state ? { state: state as (typeof STATES)[number] } : {}),
      page: number('--page', opts.page, 1_000_000),
      perPage: number('--per-page', opts.perPage, 1000),
    };
  },
  run: async (session, query) => ({ kind: 'instances', page: await (await session.backend.registry()).list(query) }),
});

/** How many hosts the cron status shows unless asked for more. */
const CRON_SHOWN = 35;

export const cronStatus = defineVerb<{ limit: number }>({
  path: ['cron', 'status'],
  aliases: [],
  role: 'viewer',
  summary:
    'the enabled hosts by how long ago their cron last ran, the longest first, with its outcome; LATE past a day',
  examples: ['cron status', 'cron status --limit 200'],
  syntax: (cmd) => cmd.option('--limit <n>', 'hosts shown', String(CRON_SHOWN)),
  args: (_operands, opts) => {
    const limit = String(opts.limit ?? CRON_SHOWN);
    if (!/^\d{1,6}$/.test(limit) || Number(limit) < 1)
      throw new UsageError('--limit takes a whole number from 1 to 999999');
    return { limit: Number(limit) };
  },
  run: async (session, { limit }) => {
    const rt = await session.ops();
    const [fleet, outcomes] = await Promise.all([session.backend.fleet(), rt.redis.hgetall(rt.keys.cronOutcomes())]);
    const hosts = fleet.instances
      .filter((i) => i.enabled)
      .sort((a, b) => a.lastcron - b.lastcron || a.id - b.id)
      .map((instance) => {
        const [outcome, at] = (outcomes[String(instance.id)] ?? '').split(' ');
        return { instance, outcome: outcome || undefined, at: at ? Number(at) : undefined };
      });
    return {
      kind: 'cron',
      hosts: hosts.slice(0, limit),
      total: hosts.length,
      schedule: rt.config.cron.schedule,
      strategy: rt.config.cron.strategy,
    };
  },
});

export const INFO_VERBS: readonly VerbDef<never>[] = [listInstances, cronStatus] as VerbDef<never>[];
