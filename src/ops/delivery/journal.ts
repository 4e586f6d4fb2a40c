import type { Knex } from 'knex';
import { OpsError } from '../../core/errors.ts';
import type { AuditTables } from '../../core/db/schema.ts';
import type { Step } from './state.ts';

/** A delivery session, tool_delivery's journal: what is delivered, why, and what it changes for users. */
export interface SessionRow {
  id: number;
  title: string;
  description: string;
  impact: string;
  opened_by: string;
  opened_at: number;
  closed_by: string | null;
  closed_at: number | null;
  followup: string | null;
  report: string | null;
  slack_channel: string | null;
  slack_ts: string | null;
}

/** One step's outcome on one node (the node `*` for what a step did once for the fleet: upgrades, maintenance). */
export interface LogRow {
  id: number;
  session_id: number | null;
  run_id: number | null;
  step: Step;
  node: string;
  component: string | null;
  comment: string | null;
  ok: boolean;
  summary: string;
  detail: string | null;
  by: string;
  at: number;
}

export type NewLogRow = Omit<LogRow, 'id' | 'session_id' | 'at'>;

/** Text a column holds at most, cut with a mark so that a reader knows. */
const cut = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 20)}\n… (cut)` : text);

export class Journal {
  constructor(
    private readonly db: Knex,
    private readonly t: AuditTables,
  ) {}

  openSession(): Promise<SessionRow | undefined> {
    return this.db(this.t.deliverySessions).whereNull('closed_at').orderBy('id', 'desc').first();
  }

  async getSession(id: number): Promise<SessionRow> {
    const row = await this.db(this.t.deliverySessions).where({ id }).first();
    if (!row) throw new OpsError('not_found', `no delivery session ${id}`);
    return row;
  }

  /** Opens a session; one at a time, as every step is logged into the open one. */
  async open(fields: Pick<SessionRow, 'title' | 'description' | 'impact' | 'opened_by'>): Promise<SessionRow> {
    return this.db.transaction(async (trx) => {
      const open = await trx(this.t.deliverySessions).whereNull('closed_at').forUpdate().first();
      if (open)
        throw new OpsError('run_state', `delivery session ${open.id} (${open.title}) is still open: close it first`);
      const [id] = await trx(this.t.deliverySessions).insert({ ...fields, opened_at: Date.now() });
      return trx(this.t.deliverySessions).where({ id }).first();
    });
  }

  async placeInSlack(id: number, channel: string, ts: string): Promise<void> {
    await this.db(this.t.deliverySessions).where({ id }).update({ slack_channel: channel, slack_ts: ts });
  }

  /** Closes the open session with its report; a second close finds none open. */
  async close(
    by: string,
    followup: string,
    report: (session: SessionRow, entries: LogRow[]) => string,
  ): Promise<{ session: SessionRow; entries: LogRow[] }> {
    const session = await this.openSession();
    if (!session) throw new OpsError('run_state', 'no delivery session is open');
    const entries = await this.entries(session.id);
    const closedAt = Date.now();
    const closed = { ...session, closed_by: by, closed_at: closedAt, followup: followup || null };
    const text = report(closed, entries);
    const changed = await this.db(this.t.deliverySessions)
      .where({ id: session.id })
      .whereNull('closed_at')
      .update({ closed_by: by, closed_at: closedAt, followup: closed.followup, report: cut(text, 4_000_000) });
    if (changed === 0) throw new OpsError('run_state', `delivery session ${session.id} was closed meanwhile`);
    return { session: { ...closed, report: text }, entries };
  }

  /** Logs a step's outcome into the open session, if any; the log keeps steps run with no session too. */
  async log(entry: NewLogRow): Promise<void> {
    const session = await this.openSession();
    await this.db(this.t.deliveryLog).insert({
      ...entry,
      summary: cut(entry.summary, 60_000),
      detail: entry.detail === null ? null : cut(entry.detail, 4_000_000),
      session_id: session?.id ?? null,
      at: Date.now(),
    });
  }

  entries(sessionId: number): Promise<LogRow[]> {
    return this.db(this.t.deliveryLog)
      .where({ session_id: sessionId })
      .orderBy('id')
      .then((rows: LogRow[]) => rows.map((r) => ({ ...r, ok: Boolean(r.ok) })));
  }

  recent(limit: number): Promise<LogRow[]> {
    return this.db(this.t.deliveryLog)
      .orderBy('id', 'desc')
      .limit(limit)
      .then((rows: LogRow[]) => rows.map((r) => ({ ...r, ok: Boolean(r.ok) })));
  }
}

const when = (ms: number) => `${new Date(ms).toISOString().replace('T', ' ').slice(0, 16)} UTC`;

/** The session's report as plain text: its fields, then every step in order with its outcome per node. */
export function sessionReport(session: SessionRow, entries: readonly LogRow[]): string {
  const lines = [
    `Delivery session ${session.id}: ${session.title}`,
    `Opened by ${session.opened_by} at ${when(session.opened_at)}${session.closed_at ? `, closed by ${session.closed_by} at ${when(session.closed_at)}` : ''}`,
    `Description: ${session.description || '-'}`,
    `Impact: ${session.impact || '-'}`,
    ...(session.followup ? [`Follow-up: ${session.followup}`] : []),
    '',
    entries.length === 0 ? 'No step was run.' : `${entries.length} step outcome${entries.length === 1 ? '' : 's'}:`,
    ...entries.map(
      (e) =>
        `${when(e.at)} ${e.step} on ${e.node === '*' ? 'the fleet' : e.node}${e.component ? ` (${e.component})` : ''} by ${e.by}${e.run_id ? ` (run ${e.run_id})` : ''}: ${e.ok ? 'ok' : 'FAILED'}: ${e.summary}${e.comment ? ` — ${e.comment}` : ''}`,
    ),
  ];
  return lines.join('\n');
}
