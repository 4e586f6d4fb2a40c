import { userInfo } from 'node:os';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consoleChat } from '../../src/bot/console.ts';
import { startSlackBot, type SlackBot } from '../../src/bot/slack/app.ts';
import { Rbac } from '../../src/verbs/rbac.ts';
import { runCli } from '../support/cli.ts';
import { opsFixture, startWorker, thinFleet, type OpsFixture } from '../support/fleet.ts';
import { knownSecret } from '../support/secrets.ts';
import { testServices } from '../support/services.ts';
import { FakeSlackApi, signedPost, slashBody, type RecordedCall } from '../support/slack.ts';

const SIGNING = knownSecret('signing-secret-front-ends');

let fx: OpsFixture;
let api: FakeSlackApi;
let bot: SlackBot;

/** The same words typed on the command line, in the terminal chat and as /vmoodle in Slack. */
async function everywhere(
  words: string[],
): Promise<{ cli: { code: number; out: string; err: string }; chat: string; slack: string }> {
  const cli = await runCli(words, fx.env);
  let chat = '';
  await consoleChat(
    { stdout: (t) => void (chat += t), stderr: (t) => void (chat += t), env: fx.env },
    fx.app,
    Readable.from([`${words.join(' ')}\n`]),
  );
  const before = api.calls.length;
  await signedPost(bot.url, SIGNING, slashBody('UADMIN', words.join(' ')));
  await bot.idle();
  // What the user saw last: a reply for them alone, or the plan modal a `run` line opens.
  const shown = api.calls
    .slice(before)
    .filter((c) => c.method === 'respond' || c.method === 'views.update')
    .at(-1) as RecordedCall;
  const blocks = (shown.params.view as { blocks: Array<{ text?: { text: string } }> } | undefined)?.blocks;
  const slack = (blocks ? blocks.map((b) => b.text?.text ?? '').join('\n') : (shown.params.text as string))
    .replaceAll('&gt;', '>')
    .replaceAll('&lt;', '<');
  return { cli: { code: cli.code, out: cli.stdout, err: cli.stderr }, chat, slack };
}

const cliCode = (stderr: string) => /\[(\w+)\]/.exec(stderr)?.[1];
const chatCode = (text: string) => /\((\w+)\)(\n|$)/.exec(text)?.[1];

describe.runIf(testServices().moodleDump)('one verb, three front ends', () => {
  let runId: number;

  beforeAll(async () => {
    api = new FakeSlackApi();
    await api.start();
    fx = await opsFixture('frontends', undefined, { SLACK_API_URL: api.url });
    await thinFleet(fx, 3);
    startWorker(fx);
    const rbac = new Rbac({ roles: { admin: ['UADMIN', userInfo().username] } });
    bot = await startSlackBot(
      fx.app,
      rbac,
      { threshold: 50, ttlMs: 60_000 },
      { signingSecret: SIGNING, botToken: 'xoxb-front-ends', port: 0 },
    );
    const planned = await runCli(
      ['--json', 'run', 'generic/setconfig', '--hosts', 't1,t2', 'key=theme', 'value=classic', '--yes'],
      fx.env,
    );
    runId = JSON.parse(planned.stdout).run;
  });
  afterAll(async () => {
    await bot?.close();
    await api?.close();
  });

  it('shows a run the same way: its state and counts', async () => {
    const { cli, chat, slack } = await everywhere(['runs', 'show', String(runId)]);
    const line = `Run ${runId} succeeded: 2 applied`;
    expect(cli.code).toBe(0);
    expect(cli.out).toContain(line);
    expect(chat).toContain(line);
    expect(slack).toContain(line);
    const short = await everywhere(['status', String(runId)]);
    expect([short.cli.out.includes(line), short.chat.includes(line), short.slack.includes(line)]).toEqual([
      true,
      true,
      true,
    ]);
  });

  it.each([
    ['a run that does not exist', ['runs', 'cancel', '999999'], 'not_found', 1],
    ['a canary go for a run that has none', ['runs', 'go', 'RUN'], 'run_state', 1],
    ['a run id that is not a number', ['runs', 'show', 'abc'], 'usage', 2],
    ['an unknown parameter', ['run', 'generic/setconfig', '--hosts', 't3', 'kye=x'], 'bad_parameter', 2],
    ['a retry of a run where every target succeeded', ['runs', 'retry', 'RUN'], 'run_state', 1],
  ])('refuses %s with the same error code everywhere', async (_label, template, code, exit) => {
    const words = template.map((w) => (w === 'RUN' ? String(runId) : w));
    const before = (await fx.rt.store.listRuns(100)).length;
    const { cli, chat, slack } = await everywhere(words);
    expect(cli.code).toBe(exit);
    expect(cliCode(cli.err)).toBe(code);
    expect(chatCode(chat)).toBe(code);
    expect(chatCode(slack)).toBe(code);
    expect((await fx.rt.store.listRuns(100)).length).toBe(before);
  });

  it('answers a verb defined in one file (runs last) on all three, in its long and short forms', async () => {
    const line = `Run ${runId} succeeded: 2 applied`;
    for (const words of [['runs', 'last'], ['last']]) {
      const { cli, chat, slack } = await everywhere(words);
      expect([cli.out.includes(line), chat.includes(line), slack.includes(line)]).toEqual([true, true, true]);
    }
  });

  it('answers --help for a verb in the chats as on the command line', async () => {
    const { cli, chat, slack } = await everywhere(['run', '--help']);
    for (const text of [cli.out, chat, slack]) expect(text).toContain('--max-failures <n|n%>');
  });

  it('disables, enables and edits an instance with the same words everywhere, and takes no password in chat', async () => {
    const disabled = await everywhere(['instances', 'disable', 't3']);
    expect(disabled.cli.out).toBe('disabled 1: t3\n');
    expect([disabled.chat, disabled.slack].map((t) => t.includes('disabled 0 (1 already disabled)'))).toEqual([
      true,
      true,
    ]);
    expect((await fx.rt.registry.get('t3')).enabled).toBe(false);
    const enabled = await everywhere(['instances', 'enable', 't3']);
    expect(enabled.cli.out).toBe('enabled 1: t3\n');
    expect((await fx.rt.registry.get('t3')).enabled).toBe(true);

    const edited = await everywhere(['instances', 'edit', 't3', '--name', 'Third']);
    for (const text of [edited.cli.out, edited.chat, edited.slack]) expect(text).toContain('updated t3: name');
    expect((await fx.rt.registry.get('t3')).name).toBe('Third');

    const before = (await fx.rt.registry.get('t3')).vdbpass;
    await signedPost(bot.url, SIGNING, slashBody('UADMIN', 'instances edit t3 --vdbpass-env SLACK_SIGNING_SECRET'));
    await bot.idle();
    const reply = api.calls.filter((c) => c.method === 'respond').at(-1)?.params.text as string;
    expect(reply).toContain('a database password is never given in chat');
    expect((await fx.rt.registry.get('t3')).vdbpass).toBe(before);
  });
});
