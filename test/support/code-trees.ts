import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';

const git = (cwd: string, ...args: string[]) =>
  execFileSync('git', ['-C', cwd, ...args], {
    encoding: 'utf8',
    env: {
      ...process.env,
      GIT_AUTHOR_NAME: 'Release',
      GIT_AUTHOR_EMAIL: 'release@example.org',
      GIT_COMMITTER_NAME: 'Release',
      GIT_COMMITTER_EMAIL: 'release@example.org',
    },
  }).trim();

function writeTree(dir: string, files: Record<string, string | null>): void {
  for (const [path, content] of Object.entries(files)) {
    const full = join(dir, path);
    if (content === null) rmSync(full, { force: true });
    else {
      mkdirSync(dirname(full), { recursive: true });
      writeFileSync(full, content);
    }
  }
}

/** Moodle 4.5.6's code as a release repository sees it, cut down to what delivery looks at. */
export const RELEASE_1: Record<string, string> = {
  'version.php': "<?php\n$version = 2024100706.00;\n$release = '4.5.6 (Build: 20250811)';\n",
  'index.php': '<?php // front page, release 1\n',
  '.htaccess': 'Options -Indexes\n',
  'mod/forum/lib.php': '<?php // forum 1\n',
  'mod/forum/old.php': '<?php // removed in release 2\n',
  'local/vmoodle/cli/upgrade.php': '<?php // stand-in\n',
  'local/vmoodle/cli/purge_caches.php': '<?php // stand-in\n',
};

/** What release 2 changes: a new version, a changed and an added file, a removed one. */
export const RELEASE_2: Record<string, string | null> = {
  'version.php': "<?php\n$version = 2024100707.00;\n$release = '4.5.7 (Build: 20251006)';\n",
  'index.php': '<?php // front page, release 2\n',
  'mod/forum/new.php': '<?php // added in release 2\n',
  'mod/forum/old.php': null,
};

export interface ReleaseRepo {
  /** A bare repository, the nodes' origin. */
  origin: string;
  /** The commit of each release tag. */
  commits: { v1: string; v2: string };
}

/** A bare origin with branch main at release 2, tags v1 and v2. */
export function releaseRepo(): ReleaseRepo {
  const root = mkdtempSync(join(tmpdir(), 'vmops-release-'));
  const work = join(root, 'work');
  const origin = join(root, 'origin.git');
  mkdirSync(work);
  git(work, 'init', '--quiet', '--initial-branch=main');
  writeTree(work, RELEASE_1);
  git(work, 'add', '-A');
  git(work, 'commit', '--quiet', '-m', 'Moodle 4.5.6');
  git(work, 'tag', 'v1');
  const v1 = git(work, 'rev-parse', 'HEAD');
  writeTree(work, RELEASE_2);
  git(work, 'add', '-A');
  git(work, 'commit', '--quiet', '-m', 'Moodle 4.5.7');
  git(work, 'tag', 'v2');
  const v2 = git(work, 'rev-parse', 'HEAD');
  execFileSync('git', ['clone', '--quiet', '--bare', work, origin]);
  return { origin, commits: { v1, v2 } };
}

/** A web node's served code as tool_delivery leaves it: a real `moodle` directory, a clone of origin at v1. */
export function servedDirectory(repo: ReleaseRepo, label: string): string {
  const dir = mkdtempSync(join(tmpdir(), `vmops-${label}-`));
  const code = join(dir, 'moodle');
  execFileSync('git', ['clone', '--quiet', repo.origin, code]);
  git(code, 'checkout', '--quiet', '-B', 'main', 'v1');
  git(code, 'branch', '--quiet', '--set-upstream-to=origin/main', 'main');
  return code;
}

/** Every file under a tree (dotfiles too, .git left out) with its content, to compare trees whole. */
export function treeFiles(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (at: string) => {
    for (const name of readdirSync(at)) {
      if (name === '.git') continue;
      const full = join(at, name);
      if (statSync(full).isDirectory()) walk(full);
      else out[relative(dir, full)] = readFileSync(full, 'utf8');
    }
  };
  walk(dir);
  return out;
}

/** A release's files, applied over release 1 when it is release 2. */
export function releaseFiles(release: 1 | 2): Record<string, string> {
  if (release === 1) return { ...RELEASE_1 };
  const files: Record<string, string> = { ...RELEASE_1 };
  for (const [path, content] of Object.entries(RELEASE_2)) {
    if (content === null) delete files[path];
    else files[path] = content;
  }
  return files;
}
