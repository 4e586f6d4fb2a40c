import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import parseArgs from 'string-argv';
import { beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/core/config.ts';
import { parseLine } from '../../src/verbs/index.ts';
import { runCli } from '../support/cli.ts';
import { leaseMoodleDatabase } from '../support/databases.ts';
import { opsFixture } from '../support/fleet.ts';
import { testServices } from '../support/services.ts';

interface Example {
  line: string;
  env: Record<string, string>;
  args: string[];
}

/** Where the README's examples write (an --out, a config.php to read): a folder of the test's own instead. */
const scratch = mkdtempSync(join(tmpdir(), 'vmops-readme-'));

/** Every `vmoodle …` line of the README's code blocks, continued lines joined, as the words a shell would pass. */
function readmeExamples(): Example[] {
  const text = readFileSync(join(PROJECT_ROOT, 'README.md'), 'utf8');
  const blocks = [...text.matchAll(/^```[a-z]*\n([\s\S]*?)^```/gm)].map((m) => m[1] as string);
  const lines = blocks.flatMap((b) => b.replace(/\\\n\s*/g, ' ').split('\n'));
  return lines.flatMap((raw) => {
    const line = raw.trim();
    const m = /^((?:[A-Z0-9_]+=\S+\s+)*)(?:npx\s+)?vmoodle\s+(.*)$/.exec(line);
    if (!m) return [];
    const env = Object.fromEntries(
      (m[1] ?? '')
        .trim()
        .split(/\s+/)
        .filter(Boolean)
        .map((a) => [a.slice(0, a.indexOf('=')), 'placeholder']),
    );
    const words: string[] = [];
    let optional = false;
    for (const word of parseArgs(m[2] as string)) {
      if (word.startsWith('#') || word === '>') break; // a comment, or the shell's redirection
      // An optional part the text explains, [--host physics]: left out.
      if (word.startsWith('[')) optional = true;
      if (optional) {
        optional = !word.endsWith(']');
        continue;
      }
      words.push(word.replace(/…/g, 'x').replace(/^\/(root|srv|var\/www)\//, `${scratch}/$1/`));
    }
    return [{ line, env, args: words }];
  });
}

/** What serves until stopped (the Slack app, a worker): parsed as the command line parses it, not run. */
const SERVES = new Set(['start', 'worker']);

/**
 * What an example may answer on a small sandbox is anything in its own terms (a host that is not there, a file the
 * example names, a confirmation count for another fleet), but not "this is not a command" or a crash.
 */
function notACommand(stderr: string): string | undefined {
  const code = /\[([a-z_]+)\](?:;|$)/m.exec(stderr)?.[1];
  const first = stderr.trim().split('\n')[0] ?? '';
  if (code === 'unknown_command' || code === 'internal') return first;
  if (
    code === 'usage' &&
    /unknown (option|verb|command)|too many arguments|missing required|is not a parameter|error:/.test(first)
  )
    return first;
  if (/^\s+at .+\(.+:\d+:\d+\)$/m.test(stderr)) return `a stack trace: ${first}`;
  return undefined;
}

describe.runIf(testServices().moodleDump)('the README examples', () => {
  const examples = readmeExamples();
  let env: Record<string, string | undefined>;

  beforeAll(async () => {
    // A master that is a Moodle (commands read their source there), and a sandbox of three instances beside it.
    ({ env } = await opsFixture('readme', await leaseMoodleDatabase()));
    const made = await runCli(['sandbox', 'create', '--count', '3'], env);
    expect(made.code).toBe(0);
  }, 120_000);

  it('are found: the README shows the command line at work', () => {
    expect(examples.length).toBeGreaterThan(50);
  });

  it('each runs on a sandbox as a command the product knows, answering in its own terms', async () => {
    const wrong: string[] = [];
    for (const example of examples) {
      // What serves until stopped is asked for its help with the example's own options, which parses them.
      const args = SERVES.has(example.args[0] as string) ? [...example.args, '--help'] : example.args;
      const result = await runCli(args, { ...env, ...example.env });
      const problem = result.code === 0 ? undefined : notACommand(result.stderr);
      if (problem) wrong.push(`${example.line}\n  → exit ${result.code}: ${problem}`);
    }
    expect(wrong).toEqual([]);
  }, 600_000);

  it('each slash command the README quotes is one the chat parses', () => {
    const text = readFileSync(join(PROJECT_ROOT, 'README.md'), 'utf8');
    const quoted = [...text.matchAll(/`\/vmoodle ([^`<]+)`/g)].map((m) => m[1] as string);
    for (const line of quoted) expect(() => parseLine(parseArgs(line)), line).not.toThrow();
  });
});
