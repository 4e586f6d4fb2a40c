import type { KnownBlock, View } from '@slack/types';
import type { RunRow } from '../../ops/executor/run-model.ts';
import type { Instance } from '../../registry/instance.ts';
import { cronLate, instanceState, mnetLabel } from '../../registry/status.ts';
import { fitSection, SLACK_LIMITS } from './limits.ts';
import { escapeMrkdwn, mention } from './mrkdwn.ts';
import type { SlackContext } from './context.ts';
import { listInstances } from '../../verbs/info-verbs.ts';
import { approve } from '../../verbs/run-verbs.ts';

/** Rows of the fleet table per section, and sections, kept within the Home tab's block limit. */
const ROWS_PER_SECTION = 10;
const FLEET_SECTIONS = 8;

const when = (t: number) => (t > 0 ? `<!date^${t}^{date_short} {time}|${new Date(t * 1000).toISOString()}>` : 'never');

function fleetRow(i: Instance): string {
  const gap = i.lastcrongap ? `${Math.round(i.lastcrongap / 60)} min` : '-';
  return `*${escapeMrkdwn(i.shortname)}* ${escapeMrkdwn(i.vhostname)} · ${instanceState(i)} · MNET ${mnetLabel(i.mnet)} · ${i.croncount} crons · last ${when(i.lastcron)} · gap ${cronLate(i) ? `:red_circle: ${gap}` : gap}`;
}

/** The hosts that waited longest for their cron, with its last outcome: red past a day or when it did not complete. */
function cronRows(instances: Instance[], outcomes: Record<string, string>): string {
  const now = Math.floor(Date.now() / 1000);
  return (
    instances
      .filter((i) => i.enabled)
      .sort((a, b) => a.lastcron - b.lastcron || a.id - b.id)
      .slice(0, ROWS_PER_SECTION)
      .map((i) => {
        const outcome = outcomes[String(i.id)]?.split(' ')[0];
        const bad = cronLate(i, now) || (outcome !== undefined && outcome !== 'completed');
        return `${bad ? ':red_circle: ' : ''}*${escapeMrkdwn(i.shortname)}* last cron ${when(i.lastcron)}${outcome ? ` · ${escapeMrkdwn(outcome)}` : ''}`;
      })
      .join('\n') || 'No enabled instance.'
  );
}

/** The App Home: the fleet table (one page of it), the cron's longest waits, recent runs, and the approvals waiting for this user. */
export function homeView(
  instances: Instance[],
  page: number,
  runs: RunRow[],
  pending: RunRow[],
  outcomes: Record<string, string> = {},
): View {
  const perPage = ROWS_PER_SECTION * FLEET_SECTIONS;
  const pages = Math.max(1, Math.ceil(instances.length / perPage));
  const shown = instances.slice((page - 1) * perPage, page * perPage);
  const blocks: KnownBlock[] = [
    {
      type: 'header',
      text: {
        type: 'plain_text',
        text: `Fleet: ${instances.length} instances, ${instances.filter((i) => i.enabled).length} enabled`,
      },
    },
  ];
  for (let i = 0; i < shown.length; i += ROWS_PER_SECTION) {
    blocks.push({
      type: 'section',
      text: {
        type: 'mrkdwn',
        text: fitSection(
          shown
            .slice(i, i + ROWS_PER_SECTION)
            .map(fleetRow)
            .join('\n'),
        ),
      },
    });
  }
  if (pages > 1) {
    blocks.push({
      type: 'actions',
      elements: [
        ...(page > 1
          ? [
              {
                type: 'button' as const,
                action_id: 'home_page',
                text: { type: 'plain_text' as const, text: 'Previous' },
                value: String(page - 1),
              },
            ]
          : []),
        ...(page < pages
          ? [
              {
                type: 'button' as const,
                action_id: 'home_page',
                text: { type: 'plain_text' as const, text: 'Next' },
                value: String(page + 1),
              },
            ]
          : []),
      ],
    });
  }
  blocks.push({ type: 'divider' }, { type: 'header', text: { type: 'plain_text', text: 'Cron: the longest waits' } });
  blocks.push({ type: 'section', text: { type: 'mrkdwn', text: fitSection(cronRows(instances, outcomes)) } });
  blocks.push({ type: 'divider' }, { type: 'header', text: { type: 'plain_text', text: 'Recent runs' } });
  blocks.push({
    type: 'section',
    text: {
      type: 'mrkdwn',
      text: fitSection(
        runs
          .map(
            (r) =>
              `#${r.id} ${r.state.replaceAll('_', ' ')} \`${escapeMrkdwn(r.command)}\` on ${r.target_count} by ${mention(r.requested_by)}`,
          )
          .join('\n') || 'No runs yet.',
      ),
    },
  });
  blocks.push({ type: 'header', text: { type: 'plain_text', text: 'Waiting for your approval' } });
  blocks.push({
    type: 'section',
    text: {
      type: 'mrkdwn',
      text: fitSection(
        pending
          .map((r) => `#${r.id} \`${escapeMrkdwn(r.command)}\` on ${r.target_count} by ${mention(r.requested_by)}`)
          .join('\n') || 'Nothing.',
      ),
    },
  });
  return { type: 'home', blocks: blocks.slice(0, SLACK_LIMITS.blocksPerModal) };
}

/** Publishes a user's Home tab; someone who may not list instances gets none. */
export async function publishHome(ctx: SlackContext, user: string, page: number): Promise<void> {
  const session = ctx.chat.session({ id: user });
  if (session.refusal(listInstances)) return;
  const rt = await ctx.ops();
  const runs = await rt.store.listRuns(10);
  const pending = session.refusal(approve)
    ? []
    : runs.filter((r) => r.state === 'awaiting_approval' && r.requested_by !== user);
  const outcomes = await rt.redis.hgetall(rt.keys.cronOutcomes());
  await ctx.client.views.publish({
    user_id: user,
    view: homeView(await (await ctx.backend.registry()).loadAll(), page, runs.slice(0, 5), pending, outcomes),
  });
}
