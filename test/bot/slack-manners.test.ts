import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/core/config.ts';
import { startSlackBot, type SlackBot } from '../../src/bot/slack/app.ts';
import { FINAL_STATES } from '../../src/ops/executor/run-model.ts';
import { ExecutorWorker } from '../../src/ops/executor/worker.ts';
import { Rbac } from '../../src/verbs/rbac.ts';
import { opsFixture, registerInstances, startWorker, thinFleet, type OpsFixture } from '../support/fleet.ts';
import { createDatabase, thinInstances } from '../support/databases.ts';
import { knownSecret } from '../support/secrets.ts';
import { testServices } from '../support/services.ts';
import {
  buttonPayload,
  eventBody,
  FakeSlackApi,
  interactionBody,
  responseUrl,
  signedPost,
  slashBody,
  viewSubmission,
  type RecordedCall,
} from '../support/slack.ts';
import { passTime, waitFor } from '../support/wait.ts';

const SECRET = knownSecret('5ec2e7f0a11ce5c0ffee5ec2e7f0a11c');
const TOKEN = knownSecret('xoxb-manners-token');
const ROLES = { admin: ['UADMIN'], operator: ['UOP'], approver: ['UAPP'], viewer: ['UVIEW'] };

/** A node no worker serves: work for it waits, so that a run stays running for as long as a test needs. */
const NODE = 'web8';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const until = <T>(what: string | (() => string), probe: () => T | Promise<T>, timeoutMs = 15_000) =>
  waitFor(what, probe, { timeoutMs });

describe.runIf(testServices().moodleDump)('Slack manners', () => {
  let fx: OpsFixture;
  let api: FakeSlackApi;
  let bot: SlackBot;
  let nodeData: string;

  const post = async (body: string, opts: Parameters<typeof signedPost>[3] = {}) => {
    const res = await signedPost(bot.url, SECRET, body, opts);
    await bot.idle();
    return res;
  };

  beforeAll(async () => {
    api = new FakeSlackApi();
    await api.start();
    nodeData = mkdtempSync(join(tmpdir(), 'vmops-slacknode-'));
    const nodes = join(nodeData, 'nodes.yml');
    writeFileSync(nodes, `${NODE}:\n  code_root: ${nodeData}\n  dataroots: [${join(nodeData, 'data')}]\n`);
    fx = await opsFixture('manners', undefined, { SLACK_API_URL: api.url, VMOODLE_NODES: nodes });
    await thinFleet(fx, 4);
    const db = await createDatabase('manners');
    const prefixes = await thinInstances(db.name, 2, {
      tables: ['config', 'config_log', 'config_plugins', 'course', 'user'],
      rowsOf: ['config', 'course'],
    });
    await registerInstances(
      fx,
      prefixes.map((prefix, i) => ({
        shortname: `n${i + 1}`,
        database: db.name,
        prefix,
        dataroot: join(nodeData, 'data', `n${i + 1}`),
      })),
    );
    startWorker(fx);
    bot = await startSlackBot(
      fx.app,
      new Rbac({ roles: ROLES }),
      { threshold: 50, ttlMs: 30 * 60_000 },
      { signingSecret: SECRET, botToken: TOKEN, port: 0 },
    );
  });
  afterAll(async () => {
    await bot?.close();
    await api?.close();
  });

  it('answers through the response_url, and in the direct message once the URL has had its five posts', async () => {
    const url = responseUrl('UVIEW');
    for (let i = 0; i < 7; i++) await post(slashBody('UVIEW', 'help', 'DSOMEONE', url));
    const replies = api.repliesTo('UVIEW');
    expect(replies.map((c) => c.method)).toEqual([
      'respond',
      'respond',
      'respond',
      'respond',
      'respond',
      'chat.postMessage',
      'chat.postMessage',
    ]);
    expect(replies.every((c) => String(c.params.text).startsWith('Verbs you may use'))).toBe(true);
    expect(api.calls.filter((c) => c.url?.endsWith(url.slice(url.indexOf('/respond/'))))).toHaveLength(5);
    expect(replies[0]?.params).toMatchObject({ response_type: 'ephemeral' });
  });

  it('answers every kind of button that names an unknown run', async () => {
    for (const action of ['start', 'reject', 'cancel', 'retry', 'revert', 'approve', 'same_command', 'same_targets']) {
      const before = api.repliesTo('UADMIN').length;
      await post(interactionBody(buttonPayload('UADMIN', action, '999999:abc')));
      const said = api
        .repliesTo('UADMIN')
        .slice(before)
        .map((c) => c.params.text);
      expect(said, action).toEqual([expect.stringContaining('no run 999999')]);
    }
  });

  it('refuses a badly signed retry, and handles a signed event once per event_id, retried or not', async () => {
    const home = eventBody({ type: 'app_home_opened', user: 'UVIEW', channel: 'D1', tab: 'home' }, 'EvOnce1');
    expect((await post(home, { json: true, retry: 1, signature: 'v0=00' })).status).toBe(401);
    const published = () => api.of('views.publish').length;
    const before = published();
    // A retry of an event whose first delivery never got here is handled.
    expect((await post(home, { json: true, retry: 1 })).status).toBe(200);
    expect(published()).toBe(before + 1);
    expect((await post(home, { json: true })).status).toBe(200);
    expect((await post(home, { json: true, retry: 2 })).status).toBe(200);
    expect(published()).toBe(before + 1);
  });

  it('asks Slack who it is once, at start, not before each request', async () => {
    const own = new FakeSlackApi();
    await own.start();
    const app = new (await import('../../src/verbs/backend.ts')).Backend(
      (await import('../../src/core/config.ts')).loadConfig({ ...fx.env, SLACK_API_URL: own.url }),
    );
    const second = await startSlackBot(
      app,
      new Rbac({ roles: ROLES }),
      { threshold: 50, ttlMs: 60_000 },
      { signingSecret: SECRET, botToken: TOKEN, port: 0 },
    );
    try {
      for (let i = 0; i < 4; i++) await signedPost(second.url, SECRET, slashBody('UVIEW', 'help'));
      await second.idle();
      expect(own.of('auth.test')).toHaveLength(1);
      expect(own.repliesTo('UVIEW')).toHaveLength(4);
    } finally {
      await second.close();
      await app.close();
      await own.close();
    }
  });

  it('says who cancelled a run in its parent message, without the buttons of a running run', async () => {
    await post(slashBody('UOP', `run generic/setconfig --hosts n1 key=theme value=classic`));
    const filled = (api.of('views.update').at(-1) as RecordedCall).params.view as { private_metadata: string };
    await signedPost(
      bot.url,
      SECRET,
      interactionBody(viewSubmission('UOP', 'plan_modal', filled.private_metadata, {})),
    );
    const parent = await until('the parent message', () =>
      api
        .of('chat.postMessage')
        .find((c) => /^Run \d+ started$/.test(String(c.params.text)) && c.params.channel === 'C1'),
    );
    const runId = Number(/^Run (\d+)/.exec(String(parent.params.text))?.[1]);
    const value = JSON.stringify(parent.params.blocks).match(/"value":"([^"]+)"/)?.[1] as string;
    await post(interactionBody(buttonPayload('UADMIN', 'cancel', value)));
    const final = await until('the final parent', () =>
      api
        .of('chat.update')
        .find((c) => c.params.ts === parent.answer?.ts && c.params.text === `Run ${runId} cancelled`),
    );
    expect(JSON.stringify(final.params.blocks)).toContain('Cancelled by <@UADMIN>.');
    expect(JSON.stringify(final.params.blocks)).not.toContain('"action_id":"cancel"');
    await bot.idle();
  });

  it('goes on with the same messages after the bot process is killed mid-run and started again', async () => {
    await (await fx.app.settings()).write({ ...(await fx.app.security()), rbac: { roles: ROLES } }, 'test');
    const port = await freePort();
    const env = {
      ...process.env,
      ...fx.env,
      SLACK_BOT_TOKEN: TOKEN,
      SLACK_SIGNING_SECRET: SECRET,
      SLACK_PORT: String(port),
    };
    const children: ChildProcess[] = [];
    const startBot = async () => {
      const child = spawn(process.execPath, [join(PROJECT_ROOT, 'bin/vmoodle.js'), 'start'], {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.push(child);
      let out = '';
      child.stdout?.on('data', (d) => (out += String(d)));
      child.stderr?.on('data', (d) => (out += String(d)));
      await until(
        () => `the bot to serve Slack (it said: ${out})`,
        () => out.includes('Serving Slack at'),
      );
      return child;
    };
    const url = `http://127.0.0.1:${port}/slack/events`;
    const worker = () => new ExecutorWorker(fx.rt, { node: NODE });
    let nodeWorker: ExecutorWorker | undefined;
    try {
      const first = await startBot();
      const before = api.calls.length;
      await signedPost(url, SECRET, slashBody('UOP', 'run generic/setconfig --hosts n2 key=theme value=classic'));
      const filled = await until('the filled plan', () =>
        api.calls.slice(before).find((c) => c.method === 'views.update'),
      );
      await signedPost(
        url,
        SECRET,
        interactionBody(
          viewSubmission(
            'UOP',
            'plan_modal',
            (filled.params.view as { private_metadata: string }).private_metadata,
            {},
          ),
        ),
      );
      const parent = await until('the parent message', () =>
        api.calls
          .slice(before)
          .find((c) => c.method === 'chat.postMessage' && /^Run \d+ started$/.test(String(c.params.text))),
      );
      const runId = Number(/^Run (\d+)/.exec(String(parent.params.text))?.[1]);
      await until('the waiting note', () =>
        api.calls.slice(before).find((c) => String(c.params.text).startsWith(':hourglass:')),
      );
      first.kill('SIGKILL');
      await new Promise((r) => first.once('exit', r));

      await startBot();
      nodeWorker = worker();
      await fx.rt.progress.follow(
        runId,
        () => undefined,
        (e) => e.type === 'state' && FINAL_STATES.includes(e.state),
      );
      expect((await fx.rt.store.getRun(runId)).state).toBe('succeeded');
      const ts = parent.answer?.ts;
      // The killed process's lease on the report runs out first (REPORT_LEASE_MS).
      const summary = await until(
        'the summary in the thread',
        () =>
          api.calls.find(
            (c) =>
              c.method === 'chat.postMessage' &&
              c.params.thread_ts === ts &&
              String(c.params.text).startsWith(`Run ${runId} succeeded`),
          ),
        40_000,
      );
      expect(summary.params.channel).toBe('C1');
      const edits = api.calls.filter(
        (c) => c.method === 'chat.update' && String(c.params.text).startsWith(`Run ${runId}`),
      );
      expect(edits.at(-1)?.params).toMatchObject({ channel: 'C1', ts, text: `Run ${runId} succeeded` });
      expect(
        api.calls.filter(
          (c) =>
            c.method === 'chat.postMessage' &&
            /^Run \d+ started$/.test(String(c.params.text)) &&
            String(c.params.text).includes(String(runId)),
        ),
      ).toHaveLength(1);
      await until('the results file', () =>
        api.calls.find(
          (c) => c.method === 'files.completeUploadExternal' && JSON.stringify(c.params).includes(String(ts)),
        ),
      );
      await passTime(500, 'a second summary of the run, were one posted, would be there by now');
      expect(
        api.calls.filter(
          (c) =>
            c.method === 'chat.postMessage' &&
            c.params.thread_ts === ts &&
            String(c.params.text).startsWith(`Run ${runId} succeeded`),
        ),
      ).toHaveLength(1);
    } finally {
      for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
      await Promise.all(
        children.map((c) =>
          c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once('exit', r)) : undefined,
        ),
      );
      await nodeWorker?.close();
    }
  });
});
