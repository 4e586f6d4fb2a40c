import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.ts';
import { opsFixture, thinFleet, type OpsFixture } from '../support/fleet.ts';
import { testServices } from '../support/services.ts';

let fx: OpsFixture;

describe.runIf(testServices().moodleDump)('a malformed command line', () => {
  beforeAll(async () => {
    fx = await opsFixture('malformed');
    await thinFleet(fx, 2);
  });

  it.each([
    ['an unknown verb', ['frobnicate']],
    ['an unknown option', ['showtargets', '--tohost=x']],
    [
      'a failure brake that is not a number',
      ['run', 'generic/purgecaches', '--hosts', 't1', '--max-failures=abc', '--yes'],
    ],
    ['a canary that is not a number', ['run', 'generic/purgecaches', '--hosts', 't1', '--canary', 'x', '--yes']],
    ['a run id that is not a number', ['runs', 'cancel', 'abc']],
    ['a missing run id', ['runs', 'show']],
    ['one argument too many', ['runs', 'go', '1', '2']],
    ['a run without a command', ['run', '--hosts', 't1']],
    ['an unknown command', ['run', 'generic/nosuch', '--hosts', 't1']],
    ['a word that is not name=value', ['run', 'generic/setconfig', '--hosts', 't1', 'key']],
    ['an unknown parameter', ['run', 'generic/setconfig', '--hosts', 't1', 'kye=x']],
    ['a missing parameter', ['run', 'generic/setconfig', '--hosts', 't1', '--yes']],
    ['an empty --attributes name', ['run', '-c', 'generic/setconfig', '-t', 't1', '-a', '=1']],
    ['a malformed glob', ['showtargets', '--match', 'a,,b']],
    ['an unknown host', ['showtargets', '--hosts', 'nosuch']],
    ['a page that is not a number', ['instances', 'list', '--page', 'x']],
    ['a state out of its choices', ['instances', 'list', '--state', 'gone']],
    ['a limit out of range', ['runs', 'list', '--limit', '0']],
    ['a count that is not a number', ['sandbox', 'create', '--count', 'x']],
    ['a flag given with its alias', ['showtargets', '--hosts', 't1', '--tohosts', 't2']],
  ])('exits 2 with one line for %s, and plans nothing', async (_label, args) => {
    const result = await runCli(args, fx.env);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^vmoodle: /);
    expect(result.stderr.trim().split('\n').length).toBeLessThanOrEqual(2);
    expect(await fx.rt.store.listRuns(5)).toEqual([]);
  });
});
