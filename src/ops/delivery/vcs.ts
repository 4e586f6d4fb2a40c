import { join } from 'node:path';
import { runTool, ToolError, type ToolOptions } from './tools.ts';
import { exists } from '../moodle/dataroot.ts';

/** What an update changed in the version-controlled tree, shown before the tree is served. */
export interface Changes {
  vcs: 'git' | 'svn';
  /** `abc1234..def5678` for git, `r12..r15` for svn. */
  range: string;
  /** Commits the update brought (git), or undefined. */
  commits?: number;
  /** `M path`, `A path`, `D path`, one a file. */
  files: string[];
}

/** A branch, tag or commit as git and svn take them: nothing an option parser could read as an option. */
const REF = /^(?!-)(?!.*\.\.)[A-Za-z0-9._/@^~-]{1,200}$/;

export function checkRef(ref: string): string | undefined {
  return REF.test(ref) ? undefined : `'${ref}' is not a branch, tag or commit name`;
}

const lines = (text: string) =>
  text
    .split('\n')
    .map((l) => l.trimEnd())
    .filter(Boolean);

async function gitUpdate(
  tree: string,
  ref: string | undefined,
  component: string | undefined,
  opts: ToolOptions,
): Promise<Changes> {
  const git = (...args: string[]) => runTool(['git', '-C', tree, ...args], opts);
  const head = async () => (await git('rev-parse', 'HEAD')).stdout.trim();
  const before = await head();
  const remotes = lines((await git('remote')).stdout);
  if (remotes.includes('origin')) await git('fetch', '--prune', '--tags', 'origin');
  const resolve = async (name: string) => {
    for (const candidate of [`refs/remotes/origin/${name}`, name]) {
      try {
        return {
          name: candidate,
          commit: (await git('rev-parse', '--verify', '--quiet', `${candidate}^{commit}`)).stdout.trim(),
        };
      } catch (err) {
        if (!(err instanceof ToolError)) throw err;
      }
    }
    throw new ToolError(`node ${opts.node}: git knows no branch, tag or commit '${name}' in ${tree}`);
  };
  let target: string;
  let branch: string | undefined;
  if (ref !== undefined) {
    const found = await resolve(ref);
    target = found.commit;
    if (found.name.startsWith('refs/remotes/origin/')) branch = ref;
  } else {
    try {
      target = (await git('rev-parse', '--verify', '--quiet', '@{upstream}^{commit}')).stdout.trim();
    } catch {
      throw new ToolError(`node ${opts.node}: ${tree} follows no upstream branch: give ref=<branch, tag or commit>`);
    }
  }
  if (component !== undefined) {
    await git('restore', `--source=${target}`, '--staged', '--worktree', '--', component);
  } else {
    if (branch) await git('checkout', '--quiet', '-B', branch, target);
    else if (ref !== undefined) await git('checkout', '--quiet', '--detach', target);
    else await git('merge', '--quiet', '--ff-only', target);
  }
  const after = component !== undefined ? target : await head();
  const diff = await git(
    'diff',
    '--name-status',
    '--no-renames',
    before,
    after,
    ...(component !== undefined ? ['--', component] : []),
  );
  const count = await git('rev-list', '--count', `${before}..${after}`);
  return {
    vcs: 'git',
    range: `${before.slice(0, 12)}..${after.slice(0, 12)}`,
    commits: Number(count.stdout.trim()),
    files: lines(diff.stdout).map((l) => l.replace(/\t/, ' ')),
  };
}

async function svnUpdate(
  tree: string,
  ref: string | undefined,
  component: string | undefined,
  opts: ToolOptions,
): Promise<Changes> {
  const revision = async () => (await runTool(['svn', 'info', '--show-item', 'revision', tree], opts)).stdout.trim();
  const before = await revision();
  const out = await runTool(
    [
      'svn',
      'update',
      '--non-interactive',
      ...(ref !== undefined ? ['-r', ref] : []),
      '--',
      join(tree, component ?? ''),
    ],
    opts,
  );
  const after = await revision();
  return {
    vcs: 'svn',
    range: `r${before}..r${after}`,
    files: lines(out.stdout)
      .filter((l) => /^[ADUCGE]\s/.test(l))
      .map((l) => `${l[0]} ${l.slice(1).trim().replace(`${tree}/`, '')}`),
  };
}

/** Updates the version-controlled tree to a ref (or its upstream), the whole tree or one component path. */
export async function updateTree(
  tree: string,
  ref: string | undefined,
  component: string | undefined,
  opts: ToolOptions,
): Promise<Changes> {
  if (await exists(join(tree, '.git'))) return gitUpdate(tree, ref, component, opts);
  if (await exists(join(tree, '.svn'))) return svnUpdate(tree, ref, component, opts);
  throw new ToolError(`node ${opts.node}: ${tree} is neither a git nor an svn working copy, so it cannot be updated`);
}
