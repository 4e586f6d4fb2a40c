import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rbac } from '../../src/verbs/rbac.ts';
import { startSlackBot, type SlackBot } from '../../src/bot/slack/app.ts';
import { SLACK_LIMITS } from '../../src/bot/slack/limits.ts';
import { parseMysqlUrl } from '../../src/core/db/mysql-url.ts';
import { endedRun, opsFixture, registerInstances, startWorker, thinFleet, type OpsFixture } from '../support/fleet.ts';
import { RunWatchdog } from '../../src/ops/executor/watchdog.ts';
import { RunMessageStore } from '../../src/bot/slack/run-messages.ts';
import { approveRun, requestApproval } from '../../src/ops/executor/approvals.ts';
import { createPlan } from '../../src/ops/executor/planner.ts';
import { testServices } from '../support/services.ts';
import {
  approvalSubmission,
  buttonPayload,
  eventBody,
  FakeSlackApi,
  firstButton,
  interactionBody,
  signedPost,
  slashBody,
  viewAction,
  viewSubmission,
  type RecordedCall,
} from '../support/slack.ts';
import { CATALOG } from '../../src/ops/commands/index.ts';
import { pushAlert } from '../../src/ops/executor/alerts.ts';
import { knownSecret } from '../support/secrets.ts';
import { runCli } from '../support/cli.ts';
import { userInfo } from 'node:os';
import { waitFor } from '../support/wait.ts';

const SECRET = knownSecret('signing-secret-for-tests');
const BOT_TOKEN = knownSecret('xoxb-test-token-never-shown');
const SMTP = knownSecret('Smtp-S3cret-in-slack');

let fx: OpsFixture;
let api: FakeSlackApi;
let bot: SlackBot;

// Operators may request SQL here (approvers decide); without the category, sql needs an approver to request it.
const rbac = new Rbac({
  roles: { admin: ['UADMIN'], operator: ['UOP'], approver: ['UAPP', 'UAPP2', 'SLEADS'], viewer: ['UVIEW'] },
  categories: { sql: 'operator' },
});
const DB_PASSWORD = knownSecret('Db-Pa55-never-in-slack');

async function slash(user: string, text: string, channel = 'C1'): Promise<Response> {
  const res = await signedPost(bot.url, SECRET, slashBody(user, text, channel));
  await bot.idle();
  return res;
}

async function interact(payload: object): Promise<Response> {
  const res = await signedPost(bot.url, SECRET, interactionBody(payload));
  await bot.idle();
  return res;
}

const lastReply = (user: string) => api.lastReply(user) as string;

/** Every block a payload carries must fit Slack's limits. */
function assertWithinLimits(call: RecordedCall): void {
  const blocks = (call.params.blocks ?? (call.params.view as { blocks?: unknown[] } | undefined)?.blocks) as
    | Array<{ text?: { text: string } }>
    | undefined;
  if (!blocks) return;
  expect(blocks.length).toBeLessThanOrEqual(
    call.method === 'views.open' ? SLACK_LIMITS.blocksPerModal : SLACK_LIMITS.blocksPerMessage,
  );
  for (const b of blocks) if (b.text) expect(b.text.text.length).toBeLessThanOrEqual(SLACK_LIMITS.sectionText);
}

describe.runIf(testServices().moodleDump)('the Slack bot', () => {
  beforeAll(async () => {
    api = new FakeSlackApi();
    await api.start();
    fx = await opsFixture('slack', undefined, { SLACK_API_URL: api.url, VMOODLE_OPS_CHANNEL: 'COPS' });
    await thinFleet(fx, 60);
    await registerInstances(fx, [{ shortname: 'tlocked', database: 'moodle_locked' }]);
    await fx.app
      .masterDb(fx.rt.registry.table)
      .where({ shortname: 'tlocked' })
      .update({ vdblogin: 'nobody', vdbpass: DB_PASSWORD });
    startWorker(fx);
    api.groups = { SLEADS: ['ULEAD'] };
    bot = await startSlackBot(
      fx.app,
      rbac,
      { threshold: 50, ttlMs: 30 * 60_000 },
      { signingSecret: SECRET, botToken: BOT_TOKEN, port: 0 },
    );
  });
  afterAll(async () => {
    await bot?.close();
    await api?.close();
  });

  it('answers a signed /vmoodle showtargets at once, with an ephemeral preview', async () => {
    const start = Date.now();
    const res = await signedPost(bot.url, SECRET, slashBody('UVIEW', 'showtargets --hosts t1,t2,t3'));
    expect(res.status).toBe(200);
    expect(Date.now() - start).toBeLessThan(SLACK_LIMITS.ackMs);
    await bot.idle();
    expect(lastReply('UVIEW')).toMatch(/^3 targets \(matched 3\)/);
    // The time to each ack is among the metrics of the process that serves Slack.
    const acks = await fx.rt.metrics.registry.getSingleMetricAsString('vmoodle_slack_ack_seconds');
    expect(Number(/vmoodle_slack_ack_seconds_count (\d+)/.exec(acks)?.[1])).toBeGreaterThan(0);
  });

  it('refuses stale, future-dated and badly signed requests with 401, and runs nothing', async () => {
    const before = api.calls.length;
    const now = Math.floor(Date.now() / 1000);
    expect((await signedPost(bot.url, SECRET, slashBody('UADMIN', 'runs'), { timestamp: now - 6 * 60 })).status).toBe(
      401,
    );
    expect((await signedPost(bot.url, SECRET, slashBody('UADMIN', 'runs'), { timestamp: now + 2 * 60 })).status).toBe(
      401,
    );
    expect((await signedPost(bot.url, SECRET, slashBody('UADMIN', 'runs'), { signature: 'v0=00' })).status).toBe(401);
    await bot.idle();
    expect(api.calls.length).toBe(before);
  });

  it('gives the members of a user group named in the RBAC file its role', async () => {
    await slash('ULEAD', 'help');
    expect(lastReply('ULEAD')).toMatch(/^Verbs you may use: .*approve, reject/);
  });

  it('lets an approval request expire: a late approval starts nothing and the expiry is audited', async () => {
    const plan = await createPlan(fx.rt, {
      command: 'sql/multisql',
      params: { sql: 'DELETE FROM {config_log}' },
      selector: { tohosts: ['t50'] },
      requestedBy: 'UOP',
      via: 'slack',
    });
    await requestApproval(fx.rt, plan.run.id, 'UOP');
    await expect(
      approveRun(fx.rt, plan.run.id, 'UAPP', 't50', plan.run.plan_hash, { threshold: 50, ttlMs: -1 }),
    ).rejects.toThrow(/expired; plan it again/);
    expect((await fx.rt.store.getRun(plan.run.id)).state).toBe('cancelled');
    expect((await fx.rt.store.events(plan.run.id)).map((e) => e.kind)).toEqual([
      'plan',
      'approval_requested',
      'expire',
    ]);
  });

  it('gives an unknown user no access, and a viewer no run', async () => {
    await slash('USTRANGER', 'showtargets --hosts t1');
    expect(lastReply('USTRANGER')).toContain('you have no access to vmoodle-ops');
    await slash('UVIEW', 'run generic/purgecaches --hosts t1');
    const modal = (api.of('views.update').at(-1) as RecordedCall).params.view as {
      blocks: unknown[];
      submit?: unknown;
    };
    expect(JSON.stringify(modal.blocks)).toContain('run needs the operator role; you are viewer');
    expect(modal.submit).toBeUndefined();
  });

  it('says how to invite the bot where it is not in the channel', async () => {
    await slash('UOP', 'run sql/multisql --hosts t4 sql="DELETE FROM {config_log}"', 'CNOTIN');
    expect(lastReply('UOP')).toContain('/invite @vmoodle');
  });

  it('takes a destructive run through a second person: never the requester, one run for two approvers', async () => {
    await slash('UADMIN', 'run sql/multisql --hosts t5,t6 sql="DELETE FROM {config_log}"');
    const request = api.of('chat.postMessage').at(-1) as RecordedCall;
    expect(request.params.text).toContain('Needs a second person');
    const blocks = request.params.blocks as Array<{
      type: string;
      elements?: Array<{ action_id: string; value: string }>;
    }>;
    const approve = blocks.find((b) => b.type === 'actions')?.elements?.find((e) => e.action_id === 'approve') as {
      value: string;
    };
    const runId = Number(approve.value.split(':')[0]);

    await interact(buttonPayload('UADMIN', 'approve', approve.value));
    expect(lastReply('UADMIN')).toBe('You requested this run; a second person must approve it.');
    await interact(buttonPayload('UOP', 'approve', approve.value));
    expect(lastReply('UOP')).toBe('approve needs the approver role; you are operator');

    await interact(buttonPayload('UAPP', 'approve', approve.value));
    const modal = api.of('views.open').at(-1) as RecordedCall;
    const view = modal.params.view as { callback_id: string; private_metadata: string; blocks: unknown[] };
    expect(view.callback_id).toBe('approve_modal');
    expect(JSON.stringify(view.blocks)).toContain('Type the number of targets');

    const wrong = await signedPost(
      bot.url,
      SECRET,
      interactionBody(approvalSubmission('UAPP', view.private_metadata, '3')),
    );
    expect(await wrong.json()).toEqual({
      response_action: 'errors',
      errors: { typed: `Type 2 to approve run ${runId}.` },
    });

    const [a, b] = await Promise.all([
      signedPost(bot.url, SECRET, interactionBody(approvalSubmission('UAPP', view.private_metadata, '2'))),
      signedPost(bot.url, SECRET, interactionBody(approvalSubmission('UAPP2', view.private_metadata, '2'))),
    ]);
    expect([await a.text(), await b.text()]).toEqual(['', '']);
    await bot.idle();
    const approvals = api
      .of('chat.postMessage')
      .filter((c) => String(c.params.text).startsWith(`Run ${runId} approved by`));
    expect(approvals).toHaveLength(1);
    expect(approvals[0]?.params).toMatchObject({
      thread_ts: request.answer?.ts,
      text: expect.stringMatching(/^Run \d+ approved by <@UAPP2?> and started\.$/),
    });
    const loser = approvals[0]?.params.text === `Run ${runId} approved by <@UAPP> and started.` ? 'UAPP2' : 'UAPP';
    expect(lastReply(loser)).toMatch(new RegExp(`run ${runId} (is not awaiting approval|was already started)`));
    const closed = api.of('chat.update').filter((c) => c.params.text === approvals[0]?.params.text);
    expect(closed).toHaveLength(1);
    expect(JSON.stringify(closed[0]?.params.blocks)).not.toContain('"actions"');
    await interact(buttonPayload('UAPP', 'approve', approve.value));
    expect(lastReply('UAPP')).toBe(`This approval request is closed: ${approvals[0]?.params.text}`);
    const events = (await fx.rt.store.events(runId)).map((e) => e.kind);
    expect(events.filter((e) => e === 'start')).toHaveLength(1);
    expect(events.filter((e) => e === 'approve')).toHaveLength(1);
    expect((await fx.rt.store.getRun(runId)).state).toBe('succeeded');
  });

  it('puts a rejection and an expiry in the approval request’s thread', async () => {
    await slash('UOP', 'run sql/multisql --hosts t8 sql="DELETE FROM {config_log}"');
    const request = api.of('chat.postMessage').at(-1) as RecordedCall;
    const value = (
      request.params.blocks as Array<{ type: string; elements?: Array<{ action_id: string; value: string }> }>
    )
      .find((b) => b.type === 'actions')
      ?.elements?.find((e) => e.action_id === 'reject')?.value as string;
    await interact(buttonPayload('UAPP', 'reject', value));
    const rejected = api.of('chat.postMessage').at(-1) as RecordedCall;
    expect(rejected.params).toMatchObject({
      thread_ts: expect.any(String),
      text: `Run ${value.split(':')[0]} rejected by <@UAPP>; nothing was run.`,
    });
    const closed = api.of('chat.update').at(-1) as RecordedCall;
    expect(closed.params).toMatchObject({ ts: request.answer?.ts, text: rejected.params.text });
    expect(JSON.stringify(closed.params.blocks)).not.toContain('"actions"');
    expect((await fx.rt.store.getRun(Number(value.split(':')[0]))).state).toBe('cancelled');

    const hasty = await startSlackBot(
      fx.app,
      rbac,
      { threshold: 50, ttlMs: 300 },
      { signingSecret: SECRET, botToken: BOT_TOKEN, port: 0 },
    );
    try {
      await signedPost(
        hasty.url,
        SECRET,
        slashBody('UOP', 'run sql/multisql --hosts t9 sql="DELETE FROM {config_log}"'),
      );
      await hasty.idle();
      const runId = Number(
        /Run (\d+):/.exec((api.of('chat.postMessage').at(-1) as RecordedCall).params.text as string)?.[1],
      );
      await waitFor(
        'the expired request cancelled',
        async () => (await fx.rt.store.getRun(runId)).state === 'cancelled',
        { timeoutMs: 10_000 },
      );
      expect(api.of('chat.postMessage').at(-1)?.params).toMatchObject({
        thread_ts: expect.any(String),
        text: `Run ${runId}: the approval request expired; nothing was run.`,
      });
    } finally {
      await hasty.close();
    }
  });

  it('tells a command-line approval in the approval request’s thread, as break-glass, and closes the request', async () => {
    await slash('UOP', 'run sql/multisql --hosts t10 sql="DELETE FROM {config_log}"');
    const request = api.of('chat.postMessage').at(-1) as RecordedCall;
    const value = firstButton(request)?.value as string;
    const runId = Number(value.split(':')[0]);
    const settings = await fx.app.settings();
    const before = await fx.app.security();
    await settings.write({ ...before, rbac: { roles: { approver: [userInfo().username] } } }, 'test');
    try {
      const approved = await runCli(['runs', 'approve', String(runId), 't10'], fx.env);
      expect(approved.stderr).toBe('');
    } finally {
      await settings.write(before, 'test');
    }
    const told = await waitFor(
      'the break-glass notice in the thread',
      () =>
        api
          .of('chat.postMessage')
          .find((c) => c.params.thread_ts === request.answer?.ts && String(c.params.text).includes('break-glass')),
      { timeoutMs: 10_000 },
    );
    const closed = await waitFor(
      'the request message closed',
      () =>
        api
          .of('chat.update')
          .filter((c) => c.params.ts === request.answer?.ts)
          .at(-1),
      { timeoutMs: 10_000 },
    );
    expect(told?.params.text).toBe(
      `:rotating_light: Run ${runId} was approved on the command line by ${userInfo().username}@cli (break-glass).`,
    );
    expect(closed?.params.text).toBe(`Run ${runId} approved by ${userInfo().username}@cli and started.`);
    expect(JSON.stringify(closed?.params.blocks)).not.toContain('"actions"');
    expect((await fx.rt.store.events(runId)).map((e) => e.kind)).toContain('break_glass');
  });

  it("tells in the run's thread that the workers recovered it after its queued work was lost", async () => {
    await fx.rt.queue.pause();
    await slash('UOP', 'run sql/multisql --hosts t12,t13 sql="DELETE FROM {config_log}"');
    const request = api.of('chat.postMessage').at(-1) as RecordedCall;
    const value = firstButton(request)?.value as string;
    const runId = Number(value.split(':')[0]);
    await interact(buttonPayload('UAPP', 'approve', value));
    const view = (api.of('views.open').at(-1) as RecordedCall).params.view as { private_metadata: string };
    // Not waited for as interact() does: the run's report cannot end while its queue is paused.
    await signedPost(bot.url, SECRET, interactionBody(approvalSubmission('UAPP', view.private_metadata, '2')));
    await waitFor('the run started', async () => (await fx.rt.store.getRun(runId)).state === 'running');
    // Redis loses the queued work (restarted empty), and the run is older than one look of the watchdog.
    await fx.rt.queue.obliterate({ force: true });
    await fx.rt.queue.resume();
    await fx.rt.store.db(fx.rt.store.t.runs).where({ id: runId }).decrement('started_at', 60_000);
    await new RunWatchdog(fx.rt, fx.rt.log).tick();

    const told = await waitFor(
      'the recovery told in the thread',
      () =>
        api
          .of('chat.postMessage')
          .find((c) => String(c.params.text).includes(`Run ${runId}`) && String(c.params.text).includes('recovered')),
      { timeoutMs: 10_000 },
    );
    expect(told.params).toMatchObject({
      channel: 'C1',
      thread_ts: (await new RunMessageStore(fx.rt).get(runId))?.parent_ts,
      text: `:recycle: Run ${runId}'s queued work was lost from Redis; the workers recovered it: 2 targets queued again, 0 interrupted.`,
    });
    expect((await endedRun(fx, runId)).state).toBe('succeeded');
  });

  it('refuses an approval replayed for a plan other than the one shown', async () => {
    await slash('UOP', 'run sql/multisql --hosts t7 sql="DELETE FROM {config_log}"');
    const value = firstButton(api.of('chat.postMessage').at(-1) as RecordedCall)?.value as string;
    const runId = Number(value.split(':')[0]);
    const replayed = JSON.stringify({ value: `${runId}:${'0'.repeat(64)}`, channel: 'C1', expected: 't7' });
    const res = await signedPost(bot.url, SECRET, interactionBody(approvalSubmission('UAPP', replayed, 't7')));
    expect(res.status).toBe(200);
    await bot.idle();
    expect(lastReply('UAPP')).toContain(
      `run ${runId} changed since the approval request was shown; nothing was started`,
    );
    expect((await fx.rt.store.getRun(runId)).state).toBe('awaiting_approval');
  });

  it('opens the command builder for a bare /vmoodle, with the catalogue, then the chosen command’s inputs and a live count', async () => {
    await slash('UOP', '');
    const opened = api.of('views.open').at(-1) as RecordedCall;
    const view = opened.params.view as {
      callback_id: string;
      private_metadata: string;
      blocks: Array<{ block_id?: string; element?: { option_groups?: Array<{ options: unknown[] }> } }>;
    };
    expect(view.callback_id).toBe('builder');
    const select = view.blocks.find((b) => b.block_id === 'builder_command')?.element;
    expect(select?.option_groups?.flatMap((g) => g.options)).toHaveLength(CATALOG.size);

    await interact(
      viewAction(
        'UOP',
        'builder_command',
        { id: 'V9', private_metadata: view.private_metadata },
        { type: 'static_select', selected_option: { value: 'generic/setconfig' } },
      ),
    );
    const updated = (api.of('views.update').at(-1) as RecordedCall).params.view as {
      blocks: Array<{ block_id?: string }>;
    };
    expect(updated.blocks.map((b) => b.block_id).filter((id) => id?.startsWith('param_'))).toEqual([
      'param_key',
      'param_value',
      'param_unset',
    ]);

    await interact(
      viewAction(
        'UOP',
        'builder_glob',
        { id: 'V9', private_metadata: view.private_metadata },
        { type: 'plain_text_input', value: 'https://t1*' },
      ),
    );
    const counted = JSON.stringify((api.of('views.update').at(-1) as RecordedCall).params.view);
    expect(counted).toContain('*11* instances (matched 11');

    const values = {
      builder_command: { builder_command: { selected_option: { value: 'generic/setconfig' } } },
      param_key: { value: { value: 'theme' } },
      param_value: { value: { value: 'classic' } },
      builder_glob: { builder_glob: { value: 'https://t2*' } },
      builder_hosts: { builder_hosts: { selected_options: [] } },
      dry: { value: { selected_options: [{ value: 'dry' }] } },
    };
    const res = await signedPost(
      bot.url,
      SECRET,
      interactionBody(viewSubmission('UOP', 'builder', view.private_metadata, values)),
    );
    expect(res.status).toBe(200);
    await bot.idle();
    expect(lastReply('UOP')).toMatch(/^Run \d+: `generic\/setconfig` key=theme value=classic/);
    expect(lastReply('UOP')).toMatch(/Dry run: run \d+ was only planned\.$/);
  });

  it('shows a run’s plan in a modal opened at once and filled in, and starts it once however often it is submitted', async () => {
    await slash('UOP', 'run generic/setconfig --hosts t30,t31 key=lang value=fr');
    const opened = (api.of('views.open').at(-1) as RecordedCall).params.view as {
      callback_id: string;
      blocks: unknown[];
    };
    expect(opened.callback_id).toBe('plan_modal');
    expect(JSON.stringify(opened.blocks)).toContain('Computing the plan…');
    const filled = (api.of('views.update').at(-1) as RecordedCall).params.view as {
      private_metadata: string;
      submit: { text: string };
      blocks: unknown[];
    };
    expect(filled.submit.text).toBe('Run on 2');
    expect(JSON.stringify(filled.blocks)).toContain('t30: en → fr');
    const runId = Number((JSON.parse(filled.private_metadata) as { value: string }).value.split(':')[0]);
    await Promise.all(
      [1, 2, 3].map(() =>
        signedPost(bot.url, SECRET, interactionBody(viewSubmission('UOP', 'plan_modal', filled.private_metadata, {}))),
      ),
    );
    await bot.idle();
    expect((await fx.rt.store.events(runId)).filter((e) => e.kind === 'start')).toHaveLength(1);
    expect((await fx.rt.store.getRun(runId)).state).toBe('succeeded');
    const parent = api.of('chat.update').at(-1) as RecordedCall;
    const buttons = JSON.stringify(parent.params.blocks);
    for (const action of ['same_command', 'same_targets', 'revert']) expect(buttons).toContain(action);
  });

  it('writes the results file with formula-like cells neutralised, so a value typed into a site cannot run in a spreadsheet', async () => {
    const before = api.calls.length;
    await slash(
      'UOP',
      `run generic/setconfig --hosts t32,t33 key=supportname value='=HYPERLINK("http://evil.example","x"),@1'`,
    );
    const filled = (api.of('views.update').at(-1) as RecordedCall).params.view as { private_metadata: string };
    await interact(viewSubmission('UOP', 'plan_modal', filled.private_metadata, {}));
    const csv = api.calls.slice(before).find((c) => c.method === 'upload') as RecordedCall;
    const lines = csv.raw.split(/\r?\n/);
    expect(lines).toContain('shortname,wwwroot,status,old,new,message,value,attempts,duration_ms');
    const t32 = lines.find((l) => l.startsWith('t32,')) as string;
    expect(t32).toContain(`,"'=HYPERLINK(""http://evil.example"",""x""),@1",`);
    expect(lines.filter((l) => /,"?=/.test(l))).toEqual([]);
  });

  it('offers to run a command on the hosts a preview showed', async () => {
    await slash('UOP', "showtargets --match 'https://t4*'");
    const preview = api.repliesTo('UOP').at(-1) as RecordedCall;
    const button = firstButton(preview);
    expect(button?.action_id).toBe('targets_builder');
    await interact(buttonPayload('UOP', 'targets_builder', button?.value as string));
    const builder = (api.of('views.open').at(-1) as RecordedCall).params.view as {
      callback_id: string;
      blocks: unknown[];
    };
    expect(builder.callback_id).toBe('builder');
    expect(JSON.stringify(builder.blocks)).toContain("Targets: `--match 'https://t4*'`");
  });

  it('publishes the App Home: the fleet, recent runs and the approvals waiting', async () => {
    await slash('UOP', 'run sql/multisql --hosts t40 sql="DELETE FROM {config_log}"');
    const res = await signedPost(
      bot.url,
      SECRET,
      eventBody({ type: 'app_home_opened', user: 'UAPP', channel: 'D1', tab: 'home' }),
      { json: true },
    );
    expect(res.status).toBe(200);
    await bot.idle();
    const home = (api.of('views.publish').at(-1) as RecordedCall).params as {
      user_id: string;
      view: { blocks: Array<{ text?: { text: string } }> };
    };
    expect(home.user_id).toBe('UAPP');
    const text = home.view.blocks.map((b) => b.text?.text ?? '').join('\n');
    expect(text).toContain('Fleet: 61 instances, 61 enabled');
    expect(text).toMatch(/\*t1\* https:\/\/t1\.campus\.example\.org · enabled/);
    expect(text).toMatch(/#\d+ `sql\/multisql` on 1 by <@UOP>/);
  });

  it('reports a run in one parent message edited a bounded number of times, with the thread and the CSV, within Slack limits and without secrets', async () => {
    const before = api.calls.length;
    await slash('UADMIN', `run generic/setconfig --match 'https://t*' key=smtppass value=${SMTP} --max-failures 100%`);
    const confirm = api.of('chat.postMessage').at(-1) as RecordedCall;
    const value = (confirm.params.blocks as Array<{ type: string; elements?: Array<{ value: string }> }>).find(
      (b) => b.type === 'actions',
    )?.elements?.[0]?.value as string;
    const started = Date.now();
    await interact(buttonPayload('UAPP', 'approve', value));
    const view = (api.of('views.open').at(-1) as RecordedCall).params.view as { private_metadata: string };
    await interact(approvalSubmission('UAPP', view.private_metadata, '61'));
    const seconds = (Date.now() - started) / 1000;
    const runCalls = api.calls.slice(before);
    const parents = runCalls.filter((c) => c.method === 'chat.update');
    expect(parents.length).toBeLessThanOrEqual(Math.ceil((seconds * 1000) / SLACK_LIMITS.progressEditMs) + 1);
    expect(runCalls.filter((c) => c.method !== 'respond').length).toBeLessThan(30);
    expect(runCalls.some((c) => c.method === 'files.completeUploadExternal')).toBe(true);
    const csv = runCalls.find((c) => c.method === 'upload') as RecordedCall;
    expect(csv.raw).toContain('shortname,wwwroot,status');
    expect(csv.raw.split('\n').filter((l) => l.includes(',applied,')).length).toBe(60);
    const server = parseMysqlUrl(testServices().mysqlServer);
    // The client authenticates to Slack with its token; what must never carry a secret is what the bot says.
    const everything = api.calls
      .map((c) => (c.method === 'upload' ? c.raw : JSON.stringify({ ...c.params, token: undefined })))
      .join('\n');
    expect(everything).toContain("Access denied for user 'nobody'");
    for (const secret of [SMTP, BOT_TOKEN.slice(5), SECRET, DB_PASSWORD, ...(server.password ? [server.password] : [])])
      expect(everything).not.toContain(secret);
    for (const call of api.calls) assertWithinLimits(call);
  });
  it("posts a compare run's differences by host in its thread and the whole matrix as a CSV file", async () => {
    // The editors installed on every instance (their version rows), and one instance without tinymce in its list.
    const instances = await fx.app
      .masterDb(fx.rt.registry.table)
      .where('shortname', 'like', 't%')
      .whereNot({ shortname: 'tlocked' })
      .select('shortname', 'vdbname', 'vdbprefix');
    for (const i of instances) {
      await fx.app.masterDb.raw(
        "INSERT INTO ??.?? (plugin, name, value) VALUES ('editor_tiny', 'version', '1'), ('editor_atto', 'version', '1'), ('editor_tinymce', 'version', '1'), ('editor_textarea', 'version', '1')",
        [i.vdbname, `${i.vdbprefix}config_plugins`],
      );
    }
    const t7 = instances.find((i) => i.shortname === 't7');
    await fx.app.masterDb.raw("UPDATE ??.?? SET value = 'tiny,atto,textarea' WHERE name = 'texteditors'", [
      t7.vdbname,
      `${t7.vdbprefix}config`,
    ]);
    const before = api.calls.length;
    await slash('UOP', "run plugins/compare --match 'https://t*' --exclude '*tlocked*' plugintype=editor");
    const filled = (api.of('views.update').at(-1) as RecordedCall).params.view as { private_metadata: string };
    await interact(viewSubmission('UOP', 'plan_modal', filled.private_metadata, {}));
    const runCalls = api.calls.slice(before);
    const summary = runCalls
      .filter((c) => c.method === 'chat.postMessage')
      .map((c) => String(c.params.text))
      .find((t) => t.includes('differ'));
    expect(summary).toMatch(
      /^Run \d+ succeeded: 60 applied\n1 of 4 plugins differs across 60 hosts:\n• t7 differs on 1: tinymce disabled \(most: enabled\)$/,
    );
    const files = runCalls.filter((c) => c.method === 'upload').map((c) => c.raw);
    const matrix = files.find((f) => f.includes('plugin,t1,t2,'));
    expect(matrix?.split(/\r?\n/)).toContain(
      `tinymce,${Array.from({ length: 60 }, (_, i) => (i === 6 ? 'disabled' : 'enabled')).join(',')}`,
    );
    expect(
      runCalls.some(
        (c) => c.method === 'files.getUploadURLExternal' && String(c.params.filename).endsWith('-plugins.csv'),
      ),
    ).toBe(true);
  });

  it("posts the workers' alerts to the ops channel, escaped, each once, and shows the cron's longest waits on the App Home", async () => {
    await pushAlert(fx.rt, { kind: 'cron', text: 'Cron of t3 <!channel>: maintenance' });
    const posted = await waitFor(
      'the alert in the ops channel',
      () => api.of('chat.postMessage').find((c) => c.params.channel === 'COPS'),
      { timeoutMs: 10_000 },
    );
    expect(posted?.params.text).toBe(':alarm_clock: Cron of t3 &lt;!channel&gt;: maintenance');
    expect(await fx.rt.redis.llen(fx.rt.keys.alerts())).toBe(0);
    await fx.rt.redis.hset(
      fx.rt.keys.cronOutcomes(),
      String((await fx.app.masterDb(fx.rt.registry.table).where({ shortname: 't1' }).first('id')).id),
      `maintenance ${Date.now()}`,
    );
    await signedPost(
      bot.url,
      SECRET,
      eventBody({ type: 'app_home_opened', user: 'UAPP', channel: 'D1', tab: 'home' }),
      { json: true },
    );
    await bot.idle();
    const home = JSON.stringify((api.of('views.publish').at(-1) as RecordedCall).params);
    expect(home).toContain('Cron: the longest waits');
    expect(home).toContain(':red_circle: *t1* last cron never · maintenance');
  });

  it('plans `/vmoodle mnet renewall` and `cron run` in the plan modal as `run` does, renewing all pairs through a second person', async () => {
    await slash('UOP', 'mnet renewall --hosts t10,t11');
    const filled = (api.of('views.update').at(-1) as RecordedCall).params.view as { blocks: unknown[] };
    expect(JSON.stringify(filled.blocks)).toContain('mnet/renewall');
    expect(JSON.stringify(filled.blocks)).toContain('The approval request is in the channel.');
    await slash('UOP', 'cron run --hosts t12 via=http');
    const cron = (api.of('views.update').at(-1) as RecordedCall).params.view as {
      submit?: { text: string };
      blocks: unknown[];
    };
    expect(JSON.stringify(cron.blocks)).toContain('cron/run');
    expect(cron.submit?.text).toBe('Run on 1');
  });

  it('escapes user and registry text in every Slack payload, so it can neither mention the channel nor hide a link', async () => {
    const registry = () => fx.app.masterDb(fx.rt.registry.table);
    await registry().where({ shortname: 't60' }).update({ shortname: 't60<!channel>' });
    const before = api.calls.length;
    try {
      await slash('UOP', "showtargets --match 'https://t60*'");
      await slash('UOP', "showtargets --hosts '<!channel>'");
      await slash(
        'UOP',
        'run generic/setconfig --hosts t59 key=theme "value=<!channel> <https://evil.example|click here> & more"',
      );
      await signedPost(
        bot.url,
        SECRET,
        eventBody({ type: 'app_home_opened', user: 'UAPP', channel: 'D1', tab: 'home' }),
        { json: true },
      );
      await bot.idle();
    } finally {
      await registry().where({ shortname: 't60<!channel>' }).update({ shortname: 't60' });
    }
    const said = api.calls
      .slice(before)
      .map((c) => JSON.stringify(c.params))
      .join('\n');
    expect(said).not.toContain('<!channel>');
    expect(said).not.toContain('<https://evil.example');
    expect(said).toContain('t60&lt;!channel&gt;');
    expect(said).toContain("unknown host in --tohosts: '&lt;!channel&gt;'");
    expect(said).toContain('value=&lt;!channel&gt; &lt;https://evil.example|click here&gt; &amp; more');
  });
});
