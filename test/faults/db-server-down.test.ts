import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMysqlUrl } from '../../src/core/db/mysql-url.ts';
import { freePort } from '../../src/core/services/private-server.ts';
import { createPlan } from '../../src/ops/executor/planner.ts';
import { startRun } from '../../src/ops/executor/run-actions.ts';
import { createDatabase, thinInstances } from '../support/databases.ts';
import {
  allowTestServer,
  endedRun,
  opsFixture,
  registerInstances,
  startWorker,
  type OpsFixture,
} from '../support/fleet.ts';
import { testServices } from '../support/services.ts';
import { passTime } from '../support/wait.ts';

/** A database server that is down, then back: a port that refuses, then forwards to the real server. */
class LateServer {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  constructor(readonly port: number) {}
  start(): Promise<void> {
    const real = parseMysqlUrl(testServices().mysqlServer);
    this.server = createServer((client) => {
      const upstream = createConnection({ host: real.host, port: real.port });
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => s.destroy());
      }
      client.pipe(upstream).pipe(client);
    });
    return new Promise((resolve) => this.server?.listen(this.port, '127.0.0.1', () => resolve()));
  }
  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((resolve) => (this.server ? this.server.close(resolve) : resolve(undefined)));
  }
}

describe.runIf(testServices().moodleDump)('a database server down for a while', () => {
  let fx: OpsFixture;
  let late: LateServer;

  beforeAll(async () => {
    late = new LateServer(await freePort());
    fx = await opsFixture('dbdown', undefined, { VMOODLE_TARGET_TIMEOUT: '30' });
    await allowTestServer(fx.app, [`127.0.0.1:${late.port}`]);
    const db = await createDatabase('dbdown');
    const [prefix] = await thinInstances(db.name, 1, {
      tables: ['config', 'config_log', 'config_plugins'],
      rowsOf: ['config'],
    });
    await registerInstances(fx, [
      { shortname: 'far', database: db.name, prefix: prefix as string, vdbhost: `127.0.0.1:${late.port}` },
    ]);
    await startWorker(fx).waitUntilReady();
  });
  afterAll(() => late?.stop());

  it("is waited for, with backoff, within the target's deadline, and the write is made once it is back", async () => {
    const plan = await createPlan(fx.rt, {
      command: 'generic/setconfig',
      params: { key: 'theme', value: 'patient' },
      selector: { tohosts: ['far'] },
      requestedBy: 'tester',
      via: 'cli',
    });
    await startRun(fx.rt, plan.run.id, 'tester', plan.run.plan_hash);
    await passTime(5_000, 'the server stays down longer than a few quick attempts');
    await late.start();
    const run = await endedRun(fx, plan.run.id, 40_000);
    const [target] = await fx.rt.store.getTargets(plan.run.id);
    expect([run.state, target?.status, target?.new_value, target?.message]).toEqual([
      'succeeded',
      'applied',
      'patient',
      null,
    ]);
  }, 60_000);
});
