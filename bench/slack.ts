import { createServer } from 'node:http';
import { App as BoltApp, HTTPReceiver, LogLevel } from '@slack/bolt';
import Table from 'cli-table3';
import { Rbac } from '../src/verbs/rbac.ts';
import { startSlackBot } from '../src/bot/slack/app.ts';
import { ExecutorWorker } from '../src/ops/executor/worker.ts';
import { fieldsToRow, INSTANCE_DEFAULTS } from '../src/registry/instance.ts';
import { FakeSlackApi, runWithApproval, signedPost, slashBody } from '../test/support/slack.ts';
import { withBenchFleet } from './executor.ts';
import { withScratchDatabase, benchBackend } from './support.ts';

const SECRET = 'bench-signing-secret';
const rbac = new Rbac({ roles: { operator: ['UOP'], approver: ['UAPP'] } });
const policy = { threshold: 50, ttlMs: 30 * 60_000 };

/** A Bolt app that only acknowledges /vmoodle: the floor an ack can reach on this machine. */
async function bareBolt(slackApiUrl: string): Promise<{ url: string; close(): Promise<void> }> {
  const receiver = new HTTPReceiver({ signingSecret: SECRET, logLevel: LogLevel.ERROR });
  // Told who it is, as the bot is, so that it asks the Web API nothing per request.
  const bolt = new BoltApp({
    receiver,
    token: 'xoxb-bare',
    botId: 'BBOT',
    botUserId: 'UBOT',
    tokenVerificationEnabled: false,
    logLevel: LogLevel.ERROR,
    clientOptions: { slackApiUrl },
  });
  bolt.command('/vmoodle', async ({ ack }) => ack());
  const server = createServer((req, res) => receiver.requestListener(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return {
    url: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/slack/events`,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

const quantile = (values: number[], q: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
};

/** `count` commands sent at once: each one's ack time, and when it was sent (for what it started later). */
async function burst(
  url: string,
  count: number,
  line: (i: number) => string,
): Promise<{ ms: number[]; ok: number; sent: Map<string, number> }> {
  const sent = new Map<string, number>();
  const times = await Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const body = slashBody('UOP', line(i));
      const start = performance.now();
      sent.set(new URLSearchParams(body).get('trigger_id') as string, start);
      const res = await signedPost(url, SECRET, body);
      await res.arrayBuffer();
      return { ms: performance.now() - start, ok: res.status === 200 };
    }),
  );
  return { ms: times.map((t) => t.ms), ok: times.filter((t) => t.ok).length, sent };
}

/** Bursts measured per size, after one to warm up. */
const ROUNDS = 5;

const showtargets = (i: number) => `showtargets --match 'https://b${i % 10}*'`;

/** Ack latency of the bot next to a bare Bolt app, and the Slack calls one 1,000-target run costs. */
export async function benchSlack(): Promise<void> {
  const api = new FakeSlackApi();
  await api.start();
  // Every backend below is built from the environment: the bot's Web API calls go to the recording server.
  process.env.SLACK_API_URL = api.url;
  const table = new Table({ head: ['measure', 'bot', 'bare Bolt', 'goal', 'met'], style: { head: [], border: [] } });
  await withScratchDatabase('slack', async (url) => {
    const app = await benchBackend({
      ...process.env,
      MYSQL_URL: url,
      VMOODLE_MASTER_WWWROOT: 'https://master.example.org',
      VMOODLE_QUEUE_PREFIX: `vmops-bench-slack-${process.pid}`,
    });
    const registry = await app.registry();
    await app.masterDb.batchInsert(
      registry.table,
      Array.from({ length: 200 }, (_, i) =>
        fieldsToRow({
          ...INSTANCE_DEFAULTS,
          name: `B${i}`,
          shortname: `b${i}`,
          vhostname: `https://b${i}.bench.example.org`,
          vdbname: `m${i}`,
          vdatapath: `/srv/b${i}`,
        }),
      ),
      200,
    );
    const bot = await startSlackBot(app, rbac, policy, { signingSecret: SECRET, botToken: 'xoxb-bench', port: 0 });
    const bare = await bareBolt(api.url);
    for (const n of [50, 200]) {
      // A warm-up burst each, then rounds in turn, so that both meet the same machine; quantiles over every round's acks.
      const mine: number[] = [];
      const floor: number[] = [];
      let ok = 0;
      for (let round = 0; round <= ROUNDS; round++) {
        const a = await burst(bot.url, n, showtargets);
        await bot.idle();
        const b = await burst(bare.url, n, showtargets);
        if (round === 0) continue;
        mine.push(...a.ms);
        floor.push(...b.ms);
        ok += a.ok;
      }
      const [p50, p99, floor50, floor99] = [
        quantile(mine, 0.5),
        quantile(mine, 0.99),
        quantile(floor, 0.5),
        quantile(floor, 0.99),
      ];
      table.push([
        `ack p50 / p99, ${n} at once (${ROUNDS} rounds)`,
        `${p50.toFixed(0)} / ${p99.toFixed(0)} ms (${ok} ok)`,
        `${floor50.toFixed(0)} / ${floor99.toFixed(0)} ms`,
        'bot p99 ≤ 1.5× bare',
        p99 <= 1.5 * floor99 ? 'yes' : 'NO',
      ]);
    }
    // A bare /vmoodle opens the command builder: its trigger_id lasts 3 s, so the modal must open well within it.
    const before = api.calls.length;
    const opened = await burst(bot.url, 200, () => '');
    await bot.idle();
    const delays = api.calls
      .slice(before)
      .filter((c) => c.method === 'views.open')
      .map((c) => c.at - (opened.sent.get(c.params.trigger_id as string) as number));
    const slowest = Math.max(...delays);
    table.push([
      'request to views.open, 200 at once',
      `p50 ${quantile(delays, 0.5).toFixed(0)} ms, p99 ${quantile(delays, 0.99).toFixed(0)} ms, max ${slowest.toFixed(0)} ms (${delays.length} opened)`,
      '',
      'every one ≤ 2,500 ms',
      delays.length === 200 && slowest <= 2500 ? 'yes' : 'NO',
    ]);
    await bot.close();
    await bare.close();
    await app.close();
  });

  await withBenchFleet('slack', async ({ app, rt }) => {
    const worker = new ExecutorWorker(rt);
    const bot = await startSlackBot(app, rbac, policy, { signingSecret: SECRET, botToken: 'xoxb-bench', port: 0 });
    const { calls, seconds } = await runWithApproval(bot, api, SECRET, {
      requester: 'UOP',
      line: "run generic/setconfig --tohosts '*' key=theme value=classic",
      approver: 'UAPP',
      typed: '1000',
    });
    table.push([
      'Slack API calls for one 1,000-target run',
      `${calls.length} (${calls.filter((c) => c.method === 'chat.update').length} edits of the parent, ${seconds.toFixed(1)} s)`,
      '',
      '< 30',
      calls.length < 30 ? 'yes' : 'NO',
    ]);
    await bot.close();
    await worker.close();
  });
  await api.close();
  console.log(`\nSlack front end (real Bolt app on loopback, fake Slack Web API)\n${table.toString()}`);
}
