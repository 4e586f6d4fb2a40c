import { randomBytes } from 'node:crypto';
import { errorKind } from '../../core/errors.ts';
import type { Knex } from 'knex';
import { auditTables, type AuditTables } from '../../core/db/schema.ts';
import type { Keyring } from '../../core/keyring.ts';
import {
  FINAL_STATES,
  FINAL_TARGET,
  type NewRun,
  type NewTarget,
  type RunEvent,
  type RunRow,
  type RunState,
  type StatusCounts,
  type TargetResult,
  type TargetRow,
  type TargetStatus,
} from './run-model.ts';

export class RunNotFoundError extends errorKind('not_found') {}

/** Results per UPDATE when many arrive at once. */
const RESULTS_PER_STATEMENT = 200;

interface PendingResult {
  targetId: number;
  result: TargetResult & { attempts?: number; old_known?: boolean };
  done: { resolve(): void; reject(err: unknown): void };
}

export interface NodeTargetWaiting {
  id: number;
  run_id: number;
  node: string;
  shortname: string;
  message: string | null;
  state: RunState;
  started_at: number;
}

/** Runs, their targets and their events, in the master database: the audit trail and the executor's state. */
export class RunStore {
  readonly t: AuditTables;
  private pending: PendingResult[] = [];
  /** Whether results are being written now (the next batch gathers meanwhile), or a write is about to start. */
  private flushing = false;

  constructor(
    readonly db: Knex,
    tablePrefix: string,
    /** Opens what targets returned, which is kept sealed (see Keyring.sealAtRest). */
    private readonly keyring: Keyring,
  ) {
    this.t = auditTables(tablePrefix);
  }

  private target(row: Record<string, unknown>): TargetRow {
    const target = normaliseTarget(row);
    return target.returned_value === null
      ? target
      : { ...target, returned_value: this.keyring.openAtRest(target.returned_value) };
  }

  async createRun(run: NewRun, targets: NewTarget[]): Promise<number> {
    return this.db.transaction(async (trx) => {
      const [id] = await trx.insert({ ...run, created_at: Date.now() }).into(this.t.runs);
      const runId = Number(id);
      for (let i = 0; i < targets.length; i += 500) {
        await trx
          .insert(targets.slice(i, i + 500).map((t) => ({ ...t, run_id: runId, status: 'pending' })))
          .into(this.t.targets);
      }
      return runId;
    });
  }

  async getRun(id: number): Promise<RunRow> {
    const row = await this.db.select('*').from(this.t.runs).where({ id }).first();
    if (!row) throw new RunNotFoundError(`no run ${id}`);
    return normaliseRun(row);
  }

  async listRuns(limit = 20): Promise<RunRow[]> {
    return (await this.db.select('*').from(this.t.runs).orderBy('id', 'desc').limit(limit)).map(normaliseRun);
  }

  /** Runs the master says are under way (running or being cancelled). */
  async runsUnderWay(): Promise<RunRow[]> {
    const rows = await this.db.select('*').from(this.t.runs).whereIn('state', ['running', 'cancelling']);
    return rows.map(normaliseRun);
  }

  /**
   * Runs `work` while this process holds the master's named lock for a run's recovery, or returns undefined at once
   * when another holds it: one recovery of a run at a time, whichever worker found it lost.
   */
  async whileRecovering<T>(runId: number, work: () => Promise<T>): Promise<T | undefined> {
    const name = `${this.t.runs}:recover:${runId}`;
    // A named lock belongs to a connection: the transaction keeps one for the lock's whole life.
    return this.db.transaction(async (trx) => {
      const [rows] = (await trx.raw('SELECT GET_LOCK(?, 0) AS got', [name])) as [Array<{ got: number | null }>];
      if (Number(rows[0]?.got) !== 1) return undefined;
      try {
        return await work();
      } finally {
        await trx.raw('SELECT RELEASE_LOCK(?)', [name]);
      }
    });
  }

  async getTargets(runId: number): Promise<TargetRow[]> {
    return (await this.db.select('*').from(this.t.targets).where({ run_id: runId }).orderBy('position')).map((row) =>
      this.target(row),
    );
  }

  /**
   * Moves a run between states only from the ones given: a double click or two approvers start one run. A run
   * that ends lets go of its secrets: a retry asks for them again.
   */
  async transition(id: number, from: readonly RunState[], to: RunState, extra: Partial<RunRow> = {}): Promise<boolean> {
    const ending = FINAL_STATES.includes(to) ? { secret_params: '' } : {};
    const changed = await this.db(this.t.runs)
      .where({ id })
      .whereIn('state', from as RunState[])
      .update({ state: to, ...extra, ...ending });
    return changed === 1;
  }

  async openCanary(id: number): Promise<boolean> {
    return (await this.db(this.t.runs).where({ id, canary_open: false }).update({ canary_open: true })) === 1;
  }

  /**
   * Records what a target's site held just before this run writes it, once: a later attempt leaves the first one's.
   * Called inside the site's transaction, before its write: with the master out of reach the write is not made.
   * Kept sealed, since the value may be a secret.
   */
  async recordWriteIntent(targetId: number, old: string | null): Promise<void> {
    await this.db(this.t.targetWrites)
      .insert({
        target_id: targetId,
        old_value: old === null ? null : this.keyring.sealAtRest(old),
        recorded_at: Date.now(),
      })
      .onConflict('target_id')
      .ignore();
  }

  /** What an earlier attempt of this target recorded before its write, if one got that far. */
  async writeIntent(targetId: number): Promise<{ old: string | null } | undefined> {
    const row = await this.db(this.t.targetWrites).where({ target_id: targetId }).first('old_value');
    if (!row) return undefined;
    return { old: row.old_value === null ? null : this.keyring.openAtRest(row.old_value as string) };
  }

  /**
   * Claims a target for a worker: pending or retrying → applying. Returns the row as it was when the claim fails,
   * which is how a redelivered job learns that a worker died while applying it.
   */
  async claimTarget(targetId: number): Promise<{ claimed: boolean; row: TargetRow }> {
    const claimed =
      (await this.db(this.t.targets)
        .where({ id: targetId })
        .whereIn('status', ['pending', 'retrying'])
        .update({ status: 'applying', started_at: Date.now(), attempts: this.db.raw('attempts + 1') })) === 1;
    const row = this.target(await this.db.select('*').from(this.t.targets).where({ id: targetId }).first());
    return { claimed, row };
  }

  async recordTarget(targetId: number, result: TargetResult): Promise<void> {
    await this.db(this.t.targets)
      .where({ id: targetId })
      .update({ ...result, finished_at: Date.now() });
  }

  /**
   * Records a final result, unless the target already has one (a job delivered twice reports once). Results that
   * arrive together are committed together, one transaction for many targets; the promise resolves once this one
   * is committed, so a job never completes before its result is durable.
   */
  recordFinal(targetId: number, result: PendingResult['result']): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ targetId, result: { ...result }, done: { resolve, reject } });
      if (!this.flushing) {
        // Group commit: the results of this turn of the event loop go together, and those that arrive while they are
        // written go in the next write, which starts as soon as this one ends. No result waits on a timer.
        this.flushing = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  private async flush(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    try {
      await this.write(batch);
    } finally {
      if (this.pending.length > 0) setImmediate(() => void this.flush());
      else this.flushing = false;
    }
  }

  private async write(batch: PendingResult[]): Promise<void> {
    const finishedAt = Date.now();
    try {
      for (let i = 0; i < batch.length; i += RESULTS_PER_STATEMENT)
        await this.updateResults(batch.slice(i, i + RESULTS_PER_STATEMENT), finishedAt);
      for (const p of batch) p.done.resolve();
    } catch (err) {
      for (const p of batch) p.done.reject(err);
    }
  }

  /**
   * Many targets' results in one UPDATE (one round trip, atomic): each column set by a CASE on the target id, for the
   * targets with no final result yet. For one target given twice, the first result wins, as a second write would
   * find the first final.
   */
  private async updateResults(batch: PendingResult[], finishedAt: number): Promise<void> {
    const columns = [...new Set(batch.flatMap((p) => Object.keys(p.result)))];
    const sets: string[] = [];
    const bindings: unknown[] = [];
    for (const column of columns) {
      const given = batch.filter((p) => Object.hasOwn(p.result, column));
      sets.push(`?? = CASE id ${given.map(() => 'WHEN ? THEN ?').join(' ')} ELSE ?? END`);
      bindings.push(
        column,
        ...given.flatMap((p) => [p.targetId, p.result[column as keyof PendingResult['result']] ?? null]),
        column,
      );
    }
    const ids = batch.map((p) => p.targetId);
    await this.db.raw(
      `UPDATE ?? SET ${sets.join(', ')}, finished_at = ? WHERE id IN (${ids.map(() => '?').join(', ')}) AND status NOT IN (${FINAL_TARGET.map(() => '?').join(', ')})`,
      [this.t.targets, ...bindings, finishedAt, ...ids, ...FINAL_TARGET] as Knex.RawBinding[],
    );
  }

  /** Targets of running or cancelling runs that wait in a node's queue, not yet started or between attempts. */
  async nodeTargetsWaiting(): Promise<NodeTargetWaiting[]> {
    const rows = await this.db({ t: this.t.targets })
      .join({ r: this.t.runs }, 't.run_id', 'r.id')
      .whereIn('t.status', ['pending', 'retrying'])
      .whereNotNull('t.node')
      .whereIn('r.state', ['running', 'cancelling'])
      .select('t.id', 't.run_id', 't.node', 't.shortname', 't.message', 'r.state', 'r.started_at');
    return rows.map((r: Record<string, unknown>) => ({
      ...(r as unknown as NodeTargetWaiting),
      id: Number(r.id),
      run_id: Number(r.run_id),
      started_at: Number(r.started_at),
    }));
  }

  /** Puts back to pending a target given a final status that a worker then took after all, so its result lands. */
  async reopenTarget(targetId: number, status: TargetStatus): Promise<void> {
    await this.db(this.t.targets)
      .where({ id: targetId, status })
      .update({ status: 'pending', message: null, finished_at: null });
  }

  /** Sets the message of targets still waiting to start (a note on why they wait, or none). */
  async noteWaiting(targetIds: readonly number[], message: string | null): Promise<void> {
    if (targetIds.length === 0) return;
    await this.db(this.t.targets)
      .whereIn('id', targetIds as number[])
      .whereIn('status', ['pending', 'retrying'])
      .update({ message });
  }

  async countStatuses(runId: number): Promise<StatusCounts> {
    const rows: Array<{ status: TargetStatus; n: number }> = await this.db(this.t.targets)
      .select('status')
      .count({ n: '*' })
      .where({ run_id: runId })
      .groupBy('status');
    return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
  }

  async addEvent(runId: number, kind: string, actor: string, detail?: string): Promise<void> {
    await this.db.insert({ run_id: runId, kind, actor, at: Date.now(), detail: detail ?? null }).into(this.t.events);
  }

  /**
   * This master's installation id, created on first use: the one row of its table (a second process racing to
   * create it finds the first one's).
   */
  async installationId(): Promise<string> {
    const read = async () =>
      ((await this.db(this.t.installation).where({ one: 1 }).first('id')) as { id: string } | undefined)?.id;
    const found = await read();
    if (found) return found;
    await this.db(this.t.installation)
      .insert({ one: 1, id: randomBytes(16).toString('hex'), created_at: Date.now() })
      .onConflict('one')
      .ignore();
    return (await read()) as string;
  }

  async events(runId: number): Promise<RunEvent[]> {
    return this.db.select('kind', 'actor', 'at', 'detail').from(this.t.events).where({ run_id: runId }).orderBy('id');
  }
}

const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));

function normaliseRun(row: Record<string, unknown>): RunRow {
  return {
    ...(row as unknown as RunRow),
    id: Number(row.id),
    parent_id: num(row.parent_id),
    created_at: Number(row.created_at),
    started_at: num(row.started_at),
    finished_at: num(row.finished_at),
  };
}

function normaliseTarget(row: Record<string, unknown>): TargetRow {
  return {
    ...(row as unknown as TargetRow),
    id: Number(row.id),
    run_id: Number(row.run_id),
    host_id: Number(row.host_id),
    delay_ms: Number(row.delay_ms),
  };
}
