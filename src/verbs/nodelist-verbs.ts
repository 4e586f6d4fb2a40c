import { readFile } from 'node:fs/promises';
import { UsageError } from '../core/errors.ts';
import { parseNodelist, type LineProblem } from '../registry/nodelist.ts';
import { afterPlan, wholeNumber } from './plan-verbs.ts';
import { defineVerb, type Session, type VerbDef } from './verb.ts';

interface NodelistArgs {
  file: string;
  encoding: 'utf-8' | 'iso-8859-1';
  lint: boolean;
  maxFailures?: string;
  canary?: number;
}

const ENCODINGS = ['utf-8', 'iso-8859-1'] as const;

/** A nodelist is a file on the machine the command line runs on; a chat has no business reading the bot's files. */
async function readNodelist(session: Session, { file, encoding }: NodelistArgs) {
  if (session.via !== 'cli')
    throw new UsageError('a nodelist is read from a file on the command line: run vmoodle lifecycle bulkcreate there');
  try {
    return parseNodelist(await readFile(file), encoding);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code)
      throw new UsageError(`cannot read ${file} (${(err as NodeJS.ErrnoException).code})`);
    throw err;
  }
}

/** What stops a file: every bad line, named; nothing was made or destroyed. */
function refused(file: string, problems: readonly LineProblem[]): never {
  const shown = problems
    .slice(0, 5)
    .map((p) => `line ${p.line}: ${p.message}`)
    .join('; ');
  throw new UsageError(
    `${file}: ${problems.length} bad line${problems.length === 1 ? '' : 's'}, nothing done: ${shown}${problems.length > 5 ? '; …' : ''}`,
    `vmoodle lifecycle bulkcreate ${file} --lint lists them all`,
  );
}

const nodelistSyntax = (withLint: boolean) => (cmd: import('commander').Command) => {
  cmd
    .argument('<file>', "a nodelist.csv in VMoodle's format (; between cells, the first line the header)")
    .option('--encoding <name>', `the file's encoding: ${ENCODINGS.join(' or ')}`, 'utf-8')
    .option('--canary <n>', 'make this many first, then wait for a go')
    .option('--max-failures <n|n%>', 'stop starting lines once more than this many failed (default 10%, at least 1)');
  return withLint ? cmd.option('-l, --lint', 'check every line and report each problem; make nothing') : cmd;
};

const nodelistArgs = (operands: readonly unknown[], opts: Readonly<Record<string, unknown>>): NodelistArgs => {
  const encoding = String(opts.encoding ?? 'utf-8').toLowerCase();
  if (!(ENCODINGS as readonly string[]).includes(encoding))
    throw new UsageError(`--encoding takes ${ENCODINGS.join(' or ')}, got '${encoding}'`);
  return {
    file: String(operands[0]),
    encoding: encoding as NodelistArgs['encoding'],
    lint: opts.lint === true,
    maxFailures: opts.maxFailures as string | undefined,
    canary: wholeNumber('--canary')(opts.canary),
  };
};

export const bulkCreate = defineVerb<NodelistArgs>({
  path: ['lifecycle', 'bulkcreate'],
  aliases: [],
  role: 'operator',
  summary:
    "make the instances of a nodelist.csv, one run (VMoodle's bulkcreatenodes.php); --lint checks every line and makes nothing",
  examples: ['lifecycle bulkcreate nodelist.csv --lint', 'lifecycle bulkcreate nodelist.csv --canary 1'],
  plans: true,
  syntax: nodelistSyntax(true),
  args: nodelistArgs,
  run: async (session, args) => {
    const nodelist = await readNodelist(session, args);
    const rt = await session.ops();
    const { readCreateLines } = await import('./nodelist-plan.ts');
    const { lines, problems } = await readCreateLines(rt, nodelist);
    if (args.lint) return { kind: 'lint', file: args.file, lines: nodelist.count, problems };
    if (problems.length) refused(args.file, problems);
    if (lines.length === 0) throw new UsageError(`${args.file}: no instance to make (only a header and comments)`);
    const { planNewInstances } = await import('../ops/executor/planner.ts');
    const plan = await planNewInstances(rt, {
      command: 'lifecycle/create',
      lines: lines.map((l) => l.params),
      requestedBy: session.actor.id,
      via: session.via,
      canary: args.canary,
      maxFailures: args.maxFailures,
    });
    return afterPlan(session, plan);
  },
});

export const bulkDestroy = defineVerb<NodelistArgs>({
  path: ['lifecycle', 'bulkdestroy'],
  aliases: [],
  role: 'operator',
  summary:
    'destroy the (disabled) instances a nodelist.csv names, each line checked against the registry, whose values alone are used (destructive)',
  examples: ['lifecycle bulkdestroy retired.csv --confirm=12'],
  plans: true,
  syntax: nodelistSyntax(false),
  args: nodelistArgs,
  run: async (session, args) => {
    const nodelist = await readNodelist(session, args);
    const rt = await session.ops();
    const { readDestroyLines } = await import('./nodelist-plan.ts');
    const { shortnames, problems } = await readDestroyLines(rt, nodelist);
    if (problems.length) refused(args.file, problems);
    if (shortnames.length === 0) throw new UsageError(`${args.file}: no instance named (only a header and comments)`);
    const { createPlan } = await import('../ops/executor/planner.ts');
    const plan = await createPlan(rt, {
      command: 'lifecycle/destroy',
      params: {},
      selector: { tohosts: shortnames, includeDisabled: true },
      requestedBy: session.actor.id,
      via: session.via,
      canary: args.canary,
      maxFailures: args.maxFailures,
    });
    return afterPlan(session, plan);
  },
});

export const NODELIST_VERBS: readonly VerbDef<never>[] = [bulkCreate, bulkDestroy] as VerbDef<never>[];
