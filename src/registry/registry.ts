import { errorKind } from '../core/errors.ts';
import type { Knex } from 'knex';
import { resolve } from 'node:path';
import type { MasterHost } from '../core/config.ts';
import { assertTablePrefix, escapeLike } from '../core/db/identifiers.ts';
import { Fleet, HostLookupError } from './fleet.ts';
import {
  fieldsToRow,
  INSTANCE_DEFAULTS,
  rowToInstance,
  type Instance,
  type InstanceFields,
  type RegistryRow,
} from './instance.ts';
import { ensureRegistryTable, REGISTRY_TABLE } from './table.ts';
import { normaliseWwwroot, validateInstance, ValidationError } from './validation.ts';
import { confinementProblem, type KeptFolder } from '../core/paths.ts';

export class RegistryError extends errorKind('registry') {}

export interface ListQuery {
  /** Part of a name, short name or wwwroot (VMoodle's namefilter). */
  filter?: string;
  state?: 'enabled' | 'disabled' | 'all';
  page?: number;
  perPage?: number;
}

export interface ListPage {
  items: Instance[];
  total: number;
  page: number;
  pages: number;
  perPage: number;
}

/** New instances take `mnet: 'new'` as VMoodle's NEW: the next free subnet number. */
export type NewInstance = Partial<Omit<InstanceFields, 'mnet'>> &
  Pick<InstanceFields, 'name' | 'shortname' | 'vhostname' | 'vdbname' | 'vdatapath'> & { mnet?: number | 'new' };

export type InstanceChanges = Partial<Omit<InstanceFields, 'shortname' | 'vhostname' | 'enabled' | 'mnet'>> & {
  mnet?: number | 'new';
};

/** VMoodle's list shows 35 rows a page. */
export const DEFAULT_PAGE_SIZE = 35;

/** VMoodle's NEW subnet: one more than the highest in use. */
const nextSubnet = (all: readonly Instance[]) => Math.max(0, ...all.map((i) => i.mnet)) + 1;

/** The fleet's registry: VMoodle's `{prefix}local_vmoodle` table in the master database. */
export class Registry {
  readonly table: string;

  constructor(
    private readonly db: Knex,
    prefix: string,
    private readonly master: MasterHost,
    /** Folders no instance's dataroot may be, hold or lie in, besides the master's and the other instances' (the templates). */
    private readonly keptFolders: readonly KeptFolder[] = [],
  ) {
    this.table = assertTablePrefix(prefix) + REGISTRY_TABLE;
  }

  ensureTable(): Promise<'existing' | 'created'> {
    return ensureRegistryTable(this.db, this.table.slice(0, -REGISTRY_TABLE.length));
  }

  async loadAll(db: Knex | Knex.Transaction = this.db, forUpdate = false): Promise<Instance[]> {
    const query = db.select('*').from(this.table).orderBy('id');
    const rows = await (forUpdate ? query.forUpdate() : query);
    return rows.map(rowToInstance);
  }

  /** The enabled rows as the table holds them (NULLs kept), for copies of the registry. */
  async enabledRows(): Promise<RegistryRow[]> {
    return this.db.select('*').from(this.table).where({ enabled: 1 }).orderBy('id');
  }

  async loadFleet(): Promise<Fleet> {
    return new Fleet(await this.loadAll(), this.master);
  }

  /**
   * A host's cron ran, as VMoodle counts it: `lastcron` is when it started, `lastcrongap` the time since the one
   * before (0 for the first), `croncount` one more.
   */
  async recordCron(id: number, startedSeconds: number): Promise<void> {
    await this.db(this.table)
      .where({ id })
      .update({
        lastcrongap: this.db.raw('IF(lastcron > 0, ? - lastcron, 0)', [startedSeconds]),
        lastcron: startedSeconds,
        croncount: this.db.raw('croncount + 1'),
      });
  }

  async list(query: ListQuery = {}): Promise<ListPage> {
    const perPage = query.perPage ?? DEFAULT_PAGE_SIZE;
    const page = Math.max(1, query.page ?? 1);
    const base = this.db.from(this.table);
    if (query.filter) {
      const like = `%${escapeLike(query.filter)}%`;
      base.where((q) =>
        q.where('name', 'like', like).orWhere('shortname', 'like', like).orWhere('vhostname', 'like', like),
      );
    }
    if (query.state === 'enabled') base.where('enabled', 1);
    if (query.state === 'disabled') base.where('enabled', 0);
    const [{ total }] = (await base.clone().count({ total: '*' })) as Array<{ total: number | string }> as [
      { total: number },
    ];
    const rows = await base
      .clone()
      .select('*')
      .orderBy([{ column: 'name' }, { column: 'enabled' }, { column: 'id' }])
      .limit(perPage)
      .offset((page - 1) * perPage);
    const count = Number(total);
    return {
      items: rows.map(rowToInstance),
      total: count,
      page,
      perPage,
      pages: Math.max(1, Math.ceil(count / perPage)),
    };
  }

  /** An instance by id, short name or wwwroot. */
  async get(name: string): Promise<Instance> {
    return this.find(await this.loadAll(), name);
  }

  private find(all: readonly Instance[], name: string): Instance {
    if (/^\d+$/.test(name)) {
      const byId = all.find((i) => i.id === Number(name));
      if (byId) return byId;
    }
    const fleet = new Fleet(all, { ...this.master, shortname: '', wwwroot: undefined }, true);
    let host;
    try {
      host = fleet.find(name);
    } catch (err) {
      if (err instanceof HostLookupError) throw new RegistryError(err.message);
      throw err;
    }
    if (!host) {
      const near = fleet.closestName(name);
      throw new RegistryError(`no instance named '${name}'${near ? ` (did you mean '${near}'?)` : ''}`);
    }
    return all.find((i) => i.id === host.id) as Instance;
  }

  async add(input: NewInstance): Promise<Instance> {
    return this.locked(async (trx, all) => {
      const mnet = input.mnet === 'new' ? nextSubnet(all) : (input.mnet ?? INSTANCE_DEFAULTS.mnet);
      const fields: InstanceFields = {
        ...INSTANCE_DEFAULTS,
        ...input,
        mnet,
        vhostname: normaliseWwwroot(input.vhostname),
      };
      const errors = validateInstance(fields, all);
      if (errors.length > 0) throw new ValidationError(errors);
      await this.checkDataroot(fields, all);
      const [id] = await trx
        .insert({ ...fieldsToRow(fields), timecreated: Math.floor(Date.now() / 1000) })
        .into(this.table);
      return rowToInstance((await trx.select('*').from(this.table).where({ id }))[0]);
    });
  }

  async edit(name: string, changes: InstanceChanges): Promise<Instance> {
    const forbidden = Object.keys(changes).filter((k) => ['shortname', 'vhostname', 'enabled', 'id'].includes(k));
    if (forbidden.length > 0) {
      throw new RegistryError(
        `${forbidden.join(', ')} cannot be edited: short name and wwwroot are the instance's identity, and enable/disable have their own verbs`,
      );
    }
    return this.locked(async (trx, all) => {
      const current = this.find(all, name);
      const resolved = { ...changes, mnet: changes.mnet === 'new' ? nextSubnet(all) : (changes.mnet ?? current.mnet) };
      const fields: InstanceFields = { ...current, ...resolved };
      const errors = validateInstance(
        fields,
        all.filter((i) => i.id !== current.id),
      );
      if (errors.length > 0) throw new ValidationError(errors);
      if (changes.vdatapath !== undefined)
        await this.checkDataroot(
          fields,
          all.filter((i) => i.id !== current.id),
        );
      await trx(this.table).where({ id: current.id }).update(fieldsToRow(resolved));
      return rowToInstance((await trx.select('*').from(this.table).where({ id: current.id }))[0]);
    });
  }

  /**
   * A dataroot, where it really leads, is neither the master's, another instance's, nor a folder the product keeps,
   * and holds none of them: a snapshot or a destroy of the row would otherwise copy or remove what is not its own.
   */
  private async checkDataroot(fields: InstanceFields, others: readonly Instance[]): Promise<void> {
    const keep = [
      ...(this.master.dataroot ? [{ path: this.master.dataroot, what: "the master's dataroot" }] : []),
      // A disabled row may keep the folder of the instance that replaced it (VMoodle allows it); nesting never.
      ...others
        .filter(
          (o) =>
            o.vdatapath.startsWith('/') &&
            !(resolve(o.vdatapath) === resolve(fields.vdatapath) && !(o.enabled && fields.enabled)),
        )
        .map((o) => ({ path: o.vdatapath, what: `the dataroot of instance ${o.shortname}` })),
      ...this.keptFolders,
    ];
    const problem = await confinementProblem(fields.vdatapath, { keep });
    if (problem) throw new ValidationError([{ field: 'vdatapath', message: problem }]);
  }

  /** Enables or disables instances; returns the ones whose state changed. */
  async setEnabled(names: readonly string[], enabled: boolean): Promise<Instance[]> {
    return this.locked(async (trx, all) => {
      const chosen = [...new Map(names.map((n) => this.find(all, n)).map((i) => [i.id, i])).values()];
      const changing = chosen.filter((i) => i.enabled !== enabled);
      if (enabled) {
        const problems = changing.flatMap((instance) => {
          const others = all.filter((o) => o.id !== instance.id && (o.enabled || changing.includes(o)));
          return validateInstance({ ...instance, enabled: true }, others)
            .filter((e) => e.field === 'vdatapath')
            .map((e) => `${instance.shortname}: ${e.message}`);
        });
        if (problems.length > 0) throw new RegistryError(`cannot enable: ${problems.join('; ')}`);
      }
      if (changing.length > 0) {
        await trx(this.table)
          .whereIn(
            'id',
            changing.map((i) => i.id),
          )
          .update({ enabled: enabled ? 1 : 0 });
      }
      return changing.map((i) => ({ ...i, enabled }));
    });
  }

  /** Deletes an instance's row (lifecycle destroy, once its database and dataroot are gone). */
  async remove(id: number): Promise<void> {
    await this.locked(async (trx, all) => {
      if (!all.some((i) => i.id === id)) throw new RegistryError(`no instance with id ${id}`);
      await trx(this.table).where({ id }).delete();
    });
  }

  /**
   * The table has no unique index (VMoodle defines none), so uniqueness is kept by serialising writers on a
   * named lock held for the transaction.
   */
  private async locked<T>(work: (trx: Knex.Transaction, all: Instance[]) => Promise<T>): Promise<T> {
    return this.db.transaction(async (trx) => {
      const lockName = `vmoodle-ops:${this.table}`;
      const [[{ ok }]] = await trx.raw('SELECT GET_LOCK(CONCAT(DATABASE(), ?), 10) AS ok', [lockName]);
      if (Number(ok) !== 1) throw new RegistryError('the registry is being changed by someone else; try again');
      try {
        // A locking read: it waits for a writer that let go of the named lock but has not committed yet, and sees
        // its rows, where a plain read would see the snapshot from before them.
        return await work(trx, await this.loadAll(trx, true));
      } finally {
        await trx.raw('SELECT RELEASE_LOCK(CONCAT(DATABASE(), ?))', [lockName]);
      }
    });
  }
}
