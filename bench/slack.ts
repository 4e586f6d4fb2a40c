import { createServer } from 'node:http';
import { App as BoltApp, HTTPReceiver, LogLevel } from '@slack/bolt';
import Table from 'cli-table3';
import { Backend } from '../src/backend.ts';
import { Rbac } from '../src/verbs/rbac.ts';
import { startSlackBot } from '../src/bot/slack/app.ts';
import { loadConfig } from '../src/config.ts';
import { ExecutorWorker } from '../src/ops/executor/worker.ts';
import { fieldsToRow, INSTANCE_DEFAULTS } from '../src/registry/instance.ts';
import { FakeSlackApi, runWithApproval, signedPost, slashBody } from '../test/support/slack.ts';
import { withBenchFleet } from './executor.ts';
import { withScratchDatabase } from './support.ts';

const SECRET = 'bench-signing-secret';
const rbac = new Rbac({ roles: { operator: ['UOP'], approver: ['UAPP'] } });
const policy = { threshold: 50, ttlMs: 30 * 60_000 };

/** A Bolt app that only acknowledges /vmoodle: the floor an ack can reach on this machine. */
async function bareBolt(slackApiUrl: string): Promise<{ url: string; close(): Promise<void> }> {
  const receiver = new HTTPReceiver({ signingSecret: SECRET, logLevel: LogLevel.ERROR });
  // Like the bot, it reaches only the fake Web API (Bolt asks auth.test who it is on the first request).
  const bolt = new BoltApp({ receiver, token: 'xoxb-bare', tokenVerificationEnabled: false, logLevel: LogLevel.ERROR, clientOptions: { slackApiUrl } });
  bolt.command('/vmoodle', async ({ ack }) => ack());
  const server = createServer((req, res) => receiver.requestListener(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return { url: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/slack/events`, close: () => new Promise((r) => server.close(() => r())) };
}

async function burst(url: string, count: number): Promise<{ p50: number; p99: number; ok: number }> {
  const times = await Promise.all(Array.from({ length: count }, async (_, i) => {
    const start = performance.now();
    const res = await signedPost(url, SECRET, slashBody('UOP', `showtargets --match 'https://b${i % 10}*'`));
    await res.arrayBuffer();
    return { ms: performance.now() - start, ok: res.status === 200 };
  }));
  const sorted = times.map((t) => t.ms).sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
  return { p50: at(0.5), p99: at(0.99), ok: times.filter((t) => t.ok).length };
}

/** Ack latency of the bot next to a bare Bolt app, and the Slack calls one 1,000-target run costs. */
export async function benchSlack(): Promise<void> {
  const api = new FakeSlackApi();
  await api.start();
  // Every backend below is built from the environment: the bot's Web API calls go to the recording server.
  process.env.SLACK_API_URL = api.url;
  const table = new Table({ head: ['measure', 'bot', 'bare Bolt', 'goal', 'met'], style: { head: [], border: [] } });
  await withScratchDatabase('slack', async (url) => {
    const app = new Backend(loadConfig({ ...process.env, MYSQL_URL: url, VMOODLE_MASTER_WWWROOT: 'https://master.example.org', VMOODLE_QUEUE_PREFIX: `vmops-bench-slack-${process.pid}` }));
    const registry = await app.registry();
    await app.masterDb.batchInsert(registry.table, Array.from({ length: 200 }, (_, i) => fieldsToRow({
      ...INSTANCE_DEFAULTS, name: `B${i}`, shortname: `b${i}`, vhostname: `https://b${i}.bench.example.org`, vdbname: `m${i}`, vdatapath: `/srv/b${i}`,
    })), 200);
    const bot = await startSlackBot(app, rbac, policy, { signingSecret: SECRET, botToken: 'xoxb-bench', port: 0 });
    const bare = await bareBolt(api.url);
    await burst(bot.url, 20);
    await burst(bare.url, 20);
    for (const n of [50, 200]) {
      const mine = await burst(bot.url, n);
      await bot.idle();
      const floor = await burst(bare.url, n);
      table.push([`ack p50 / p99, ${n} at once`, `${mine.p50.toFixed(0)} / ${mine.p99.toFixed(0)} ms (${mine.ok} ok)`, `${floor.p50.toFixed(0)} / ${floor.p99.toFixed(0)} ms`, 'bot p99 ≤ 1.5× bare', mine.p99 <= 1.5 * floor.p99 ? 'yes' : 'NO']);
    }
    await bot.close();
    await bare.close();
    await app.close();
  });

  await withBenchFleet('slack', async ({ app, rt }) => {
    const worker = new ExecutorWorker(rt);
    const bot = await startSlackBot(app, rbac, policy, { signingSecret: SECRET, botToken: 'xoxb-bench', port: 0 });
    const { calls, seconds } = await runWithApproval(bot, api, SECRET, { requester: 'UOP', line: "run generic/setconfig --tohosts '*' key=theme value=classic", approver: 'UAPP', typed: '1000' });
    table.push([
      'Slack API calls for one 1,000-target run', `${calls.length} (${calls.filter((c) => c.method === 'chat.update').length} edits of the parent, ${seconds.toFixed(1)} s)`, '', '< 30', calls.length < 30 ? 'yes' : 'NO',
    ]);
    await bot.close();
    await worker.close();
  });
  await api.close();
  console.log(`\nSlack front end (real Bolt app on loopback, fake Slack Web API)\n${table.toString()}`);
}
