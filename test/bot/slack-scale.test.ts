import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rbac } from '../../src/verbs/rbac.ts';
import { startSlackBot, type SlackBot } from '../../src/bot/slack/app.ts';
import { SLACK_LIMITS } from '../../src/bot/slack/limits.ts';
import { opsFixture, startWorker, thinFleet, type OpsFixture } from '../support/fleet.ts';
import { testServices } from '../support/services.ts';
import { FakeSlackApi, runWithApproval, type RecordedCall } from '../support/slack.ts';

const SECRET = 'signing-secret-for-scale';
let fx: OpsFixture;
let api: FakeSlackApi;
let bot: SlackBot;

describe.runIf(testServices().moodleDump)('the Slack bot on 1,000 targets', () => {
  beforeAll(async () => {
    api = new FakeSlackApi();
    await api.start();
    fx = await opsFixture('slackscale', undefined, { VMOODLE_WORKER_CONCURRENCY: '20', SLACK_API_URL: api.url });
    await thinFleet(fx, 1000);
    startWorker(fx);
    const rbac = new Rbac({ roles: { operator: ['UOP'], approver: ['UAPP'] } });
    bot = await startSlackBot(
      fx.app,
      rbac,
      { threshold: 50, ttlMs: 30 * 60_000 },
      { signingSecret: SECRET, botToken: 'xoxb-scale', port: 0 },
    );
  }, 120_000);
  afterAll(async () => {
    await bot?.close();
    await api?.close();
  });

  it('reports the run with a bounded number of edits and calls, every payload within Slack limits', async () => {
    const { calls, seconds } = await runWithApproval(bot, api, SECRET, {
      requester: 'UOP',
      line: "run generic/setconfig --tohosts '*' key=theme value=classic",
      approver: 'UAPP',
      typed: '1000',
    });
    const edits = calls.filter((c) => c.method === 'chat.update').length;
    expect(edits).toBeGreaterThanOrEqual(1);
    expect(edits).toBeLessThanOrEqual(Math.ceil((seconds * 1000) / SLACK_LIMITS.progressEditMs) + 1);
    expect(calls.length).toBeLessThan(30);
    const csv = calls.find((c) => c.method === 'upload') as RecordedCall;
    expect(csv.raw.split('\n').filter((l) => l.includes(',applied,'))).toHaveLength(1000);
    for (const call of api.calls) {
      const blocks = (call.params.blocks ?? []) as Array<{ text?: { text: string } }>;
      expect(blocks.length).toBeLessThanOrEqual(SLACK_LIMITS.blocksPerMessage);
      for (const b of blocks) if (b.text) expect(b.text.text.length).toBeLessThanOrEqual(SLACK_LIMITS.sectionText);
      if (typeof call.params.text === 'string')
        expect(call.params.text.length).toBeLessThanOrEqual(SLACK_LIMITS.sectionText);
    }
  }, 120_000);
});
