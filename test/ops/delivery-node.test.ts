import { spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisNodeLock } from '../../src/ops/delivery/lock.ts';
import { deliveryLayout, readState, type DeliveryLayout } from '../../src/ops/delivery/state.ts';
import { runStep, swapLink, type NodeLock, type StepRequest } from '../../src/ops/delivery/steps.ts';
import { failureText, runTool } from '../../src/ops/delivery/tools.ts';
import { silentLogger } from '../../src/core/log.ts';
import type { NodeConfig } from '../../src/core/nodes.ts';
import { releaseFiles, releaseRepo, servedDirectory, treeFiles, type ReleaseRepo } from '../support/code-trees.ts';
import { testServices } from '../support/services.ts';

const node = (name: string, codeRoot: string): NodeConfig => ({
  name,
  codeRoot,
  dataroots: ['/srv/none'],
  php: '/usr/bin/php',
  maxPhp: 1,
});

describe('delivery steps on one node, with real git trees and symlinks', () => {
  let redis: Redis;
  let lock: NodeLock;
  let repo: ReleaseRepo;
  let layout: DeliveryLayout;
  const step = (req: Omit<StepRequest, 'by'>) => runStep(layout, { by: 'alice', ...req }, lock);
  const served = () => readlinkSync(layout.link);

  beforeAll(() => {
    redis = new Redis(testServices().redisUrl);
    lock = redisNodeLock(redis, (n) => `${testServices().runId}:delivery-node:${n}`, silentLogger());
    repo = releaseRepo();
    layout = deliveryLayout(node('web1', servedDirectory(repo, 'web1')));
  });
  afterAll(() => redis.quit());

  it('refuses every step but convert on a node never converted, and convert only once', async () => {
    const refused = await step({ step: 'secure' });
    expect(refused).toMatchObject({ ok: false, mode: 'unconverted', live: 'a directory', allowed: ['convert'] });
    expect(refused.summary).toBe(
      'refused: node web1 has not been converted to the delivery layout: run deliver convert first',
    );

    const converted = await step({ step: 'convert' });
    expect(converted).toMatchObject({ ok: true, mode: 'production', live: 'moodle-VCS', allowed: ['secure'] });
    expect(lstatSync(layout.link).isSymbolicLink()).toBe(true);
    expect(treeFiles(layout.link)).toEqual(releaseFiles(1));

    const again = await step({ step: 'convert' });
    expect(again.ok).toBe(false);
    expect(again.summary).toBe(
      `refused: node web1 is already converted: ${layout.link} is a symlink the delivery steps swap`,
    );
    expect(served()).toBe('moodle-VCS');
    expect(treeFiles(layout.link)).toEqual(releaseFiles(1));
  });

  it('runs the four steps and a rollback, leaving exactly the expected trees and symlink targets', async () => {
    const early = await step({ step: 'switch' });
    expect(early.summary).toMatch(
      /^refused: switch is not allowed on node web1 in production \(switch serves the SAVE copy, which needs a secure step/,
    );

    // A file deleted and a dotfile added in the live tree must reach SAVE as they are.
    expect((await step({ step: 'secure' })).ok).toBe(true);
    rmSync(join(layout.vcs, 'mod/forum/lib.php'));
    writeFileSync(join(layout.vcs, '.user.ini'), 'opcache.enable=1\n');
    const secured = await step({ step: 'secure', superSave: true });
    expect(secured).toMatchObject({
      ok: true,
      summary: 'the live tree copied into moodle-SAVE and moodle-SUPERSAVE',
      allowed: ['secure', 'switch', 'rollback'],
    });
    const live = treeFiles(layout.vcs);
    expect(live['mod/forum/lib.php']).toBeUndefined();
    expect(treeFiles(layout.save)).toEqual(live);
    expect(treeFiles(layout.supersave)).toEqual(live);
    expect(existsSync(join(layout.save, '.git'))).toBe(true);
    // Put the live tree back as git has it, so that the update starts from a clean working copy.
    await new Promise((r) =>
      spawn('git', ['-C', layout.vcs, 'checkout', '--', '.'], { stdio: 'ignore' }).once('close', r),
    );
    rmSync(join(layout.vcs, '.user.ini'));

    expect((await step({ step: 'update' })).summary).toMatch(
      /^refused: update is not allowed on node web1 in production/,
    );
    const switched = await step({ step: 'switch' });
    expect(switched).toMatchObject({ ok: true, mode: 'delivery', live: 'moodle-SAVE', allowed: ['update', 'restore'] });
    expect(served()).toBe('moodle-SAVE');

    const updated = await step({ step: 'update', ref: 'v2' });
    expect(updated.ok).toBe(true);
    expect(updated.changes).toEqual({
      vcs: 'git',
      range: `${repo.commits.v1.slice(0, 12)}..${repo.commits.v2.slice(0, 12)}`,
      commits: 1,
      files: ['M index.php', 'A mod/forum/new.php', 'D mod/forum/old.php', 'M version.php'],
    });
    expect(treeFiles(layout.vcs)).toEqual(releaseFiles(2));
    // Users are still served the safe copy.
    expect(served()).toBe('moodle-SAVE');
    expect(treeFiles(layout.link)).toEqual(live);

    const restored = await step({ step: 'restore' });
    expect(restored).toMatchObject({
      ok: true,
      mode: 'production',
      live: 'moodle-VCS',
      allowed: ['secure', 'rollback'],
    });
    expect(treeFiles(layout.link)).toEqual(releaseFiles(2));

    const rolledBack = await step({ step: 'rollback' });
    expect(rolledBack).toMatchObject({ ok: true, mode: 'delivery', live: 'moodle-SAVE' });
    expect(treeFiles(layout.link)).toEqual(live);
    expect(treeFiles(layout.vcs)).toEqual(releaseFiles(2));

    // Refused steps changed nothing, so the node's history has only what ran.
    const state = await readState(layout);
    expect(state?.history.map((h) => `${h.step} by ${h.by}: ${h.ok}`)).toEqual([
      'convert by alice: true',
      'secure by alice: true',
      'secure by alice: true',
      'switch by alice: true',
      'update by alice: true',
      'restore by alice: true',
      'rollback by alice: true',
    ]);
  });

  it('updates one component path only, and says what it changed', async () => {
    // The node is in delivery after the rollback; the tree goes back to v1, then mod/forum alone to v2.
    expect((await step({ step: 'update', ref: 'v1' })).ok).toBe(true);
    const part = await step({ step: 'update', ref: 'v2', component: 'mod/forum' });
    expect(part.changes?.files).toEqual(['A mod/forum/new.php', 'D mod/forum/old.php']);
    const files = treeFiles(layout.vcs);
    expect(files['index.php']).toBe(releaseFiles(1)['index.php']);
    expect(files['mod/forum/new.php']).toBeDefined();
    expect(files['mod/forum/old.php']).toBeUndefined();

    expect((await step({ step: 'update', ref: '--upload-pack=touch /tmp/x' })).summary).toBe(
      "refused: '--upload-pack=touch /tmp/x' is not a branch, tag or commit name",
    );
    expect((await step({ step: 'secure', component: '../../etc' })).summary).toBe(
      "refused: '../../etc' is not a component path: give a path relative to the code tree, such as mod/forum",
    );
    expect((await step({ step: 'update', ref: 'nosuchtag' })).summary).toBe(
      `node web1: git knows no branch, tag or commit 'nosuchtag' in ${layout.vcs}`,
    );
  });

  it('lets one step at a time work on a node', async () => {
    const [a, b] = await Promise.all([step({ step: 'update', ref: 'v2' }), step({ step: 'update', ref: 'v2' })]);
    const busy = [a, b].filter((r) => !r.ok);
    expect([a, b].filter((r) => r.ok)).toHaveLength(1);
    expect(busy).toHaveLength(1);
    expect(busy[0]?.summary).toMatch(
      /^node web1 is busy: update by alice since \d{4}-\d\d-\d\dT[\d:.]+Z; try again when it ends$/,
    );
  });

  it('never leaves a moment with no served path while the symlink is swapped', async () => {
    // A reader in its own process opens a file through the served path as fast as it can.
    const reader = spawn(
      process.execPath,
      [
        '-e',
        `
      const fs = require('node:fs');
      let reads = 0, misses = 0;
      const end = Date.now() + 4000;
      while (Date.now() < end) {
        try { fs.readFileSync(${JSON.stringify(join(layout.link, 'version.php'))}); reads++; } catch { misses++; }
      }
      process.stdout.write(JSON.stringify({ reads, misses }));
    `,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    reader.stdout.on('data', (d) => (out += d));
    const opts = { node: 'web1' };
    let swaps = 0;
    const until = Date.now() + 3000;
    while (Date.now() < until) {
      await swapLink(layout, swaps % 2 ? layout.save : layout.vcs, opts);
      swaps++;
    }
    await new Promise((r) => reader.once('close', r));
    const { reads, misses } = JSON.parse(out) as { reads: number; misses: number };
    expect(swaps).toBeGreaterThan(20);
    expect(reads).toBeGreaterThan(1000);
    expect(misses).toBe(0);
  });
});

describe('delivery commands that cannot run', () => {
  it("maps a command's failure to what the operator must fix, as tool_delivery's runner tells exit codes apart", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmops-tools-'));
    const noexec = join(dir, 'noexec');
    writeFileSync(noexec, '#!/bin/sh\n', { mode: 0o644 });
    await expect(runTool([noexec], { node: 'web1' })).rejects.toThrow(
      `permission problem on node web1: ${noexec} could not be run (EACCES)`,
    );
    await expect(runTool(['/nonexistent/git'], { node: 'web1' })).rejects.toThrow(
      'command not found on node web1: /nonexistent/git is not installed',
    );
    await expect(runTool(['sh', '-c', 'exit 126'], { node: 'web1' })).rejects.toThrow(
      'permission problem on node web1: sh could not be run (exit 126)',
    );
    await expect(runTool(['sh', '-c', 'exit 127'], { node: 'web1', user: 'moodleadm' })).rejects.toThrow(
      /^command not found on node web1: (sh is not installed for moodleadm \(exit 127\)|sudo is not installed)$/,
    );
    await expect(
      runTool(['sh', '-c', 'echo "fatal: not a git repository" >&2; exit 128'], { node: 'web1' }),
    ).rejects.toThrow('sh failed on node web1 (exit 128): fatal: not a git repository');
    expect(failureText('svn', 'web1', 1, 'sudo: a password is required\n', 'moodleadm')).toBe(
      "sudo on node web1 asks for a password to run svn as moodleadm: give the worker's user a NOPASSWD rule for it",
    );
  });

  it('says so when a tree is an svn working copy and svn is not installed, and changes nothing', async () => {
    const repo = releaseRepo();
    const layout = deliveryLayout(node('web1', servedDirectory(repo, 'svn')));
    rmSync(join(layout.link, '.git'), { recursive: true });
    mkdirSync(join(layout.link, '.svn'));
    const redis = new Redis(testServices().redisUrl);
    const lock = redisNodeLock(redis, (n) => `${testServices().runId}:delivery-svn:${n}`, silentLogger());
    try {
      for (const step of ['convert', 'secure', 'switch'] as const)
        expect((await runStep(layout, { step, by: 'alice' }, lock)).ok).toBe(true);
      const update = await runStep(layout, { step: 'update', by: 'alice' }, lock);
      const svn = await new Promise<boolean>((resolve) =>
        spawn('svn', ['--version'], { stdio: 'ignore' })
          .once('error', () => resolve(false))
          .once('close', () => resolve(true)),
      );
      if (!svn)
        expect(update).toMatchObject({
          ok: false,
          summary: 'command not found on node web1: svn is not installed',
          mode: 'delivery',
          live: 'moodle-SAVE',
        });
      else expect(update.ok).toBe(false);
      expect(treeFiles(layout.vcs)).toEqual(releaseFiles(1));
    } finally {
      await redis.quit();
    }
  });
});
