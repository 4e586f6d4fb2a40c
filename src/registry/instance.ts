/** One Moodle instance: a row of VMoodle's `local_vmoodle`, with its VMoodle field names. */
export interface Instance {
  id: number;
  name: string;
  shortname: string;
  description: string;
  vhostname: string;
  vdbtype: string;
  vdbhost: string;
  vdblogin: string;
  /** Never shown or logged; kept for VMoodle compatibility (a secrets source may override it). */
  vdbpass: string;
  vdbname: string;
  vdbprefix: string;
  vdbpersist: boolean;
  vdatapath: string;
  /** -1 MNET off, 0 MNET without a subnet, n > 0 subnet n. */
  mnet: number;
  enabled: boolean;
  timecreated: number;
  lastcron: number;
  lastcrongap: number;
  croncount: number;
  metadata: string;
}

/** The fields an operator sets; the rest are kept by the product (id, cron counters). */
export type InstanceFields = Pick<
  Instance,
  | 'name'
  | 'shortname'
  | 'description'
  | 'vhostname'
  | 'vdbtype'
  | 'vdbhost'
  | 'vdblogin'
  | 'vdbpass'
  | 'vdbname'
  | 'vdbprefix'
  | 'vdbpersist'
  | 'vdatapath'
  | 'mnet'
  | 'enabled'
>;

export const INSTANCE_DEFAULTS: Omit<InstanceFields, 'name' | 'shortname' | 'vhostname' | 'vdbname' | 'vdatapath'> = {
  description: '',
  vdbtype: 'mariadb',
  vdbhost: 'localhost',
  vdblogin: 'root',
  vdbpass: '',
  vdbprefix: 'mdl_',
  vdbpersist: false,
  mnet: -1,
  enabled: true,
};

export type RegistryRow = Record<string, unknown>;

const str = (v: unknown) => (v === null || v === undefined ? '' : String(v));
const num = (v: unknown) => (v === null || v === undefined ? 0 : Number(v));

export function rowToInstance(row: RegistryRow): Instance {
  return {
    id: num(row.id),
    name: str(row.name),
    shortname: str(row.shortname),
    description: str(row.description),
    vhostname: str(row.vhostname),
    vdbtype: str(row.vdbtype),
    vdbhost: str(row.vdbhost),
    vdblogin: str(row.vdblogin),
    vdbpass: str(row.vdbpass),
    vdbname: str(row.vdbname),
    vdbprefix: str(row.vdbprefix),
    vdbpersist: num(row.vdbpersist) !== 0,
    vdatapath: str(row.vdatapath),
    mnet: num(row.mnet),
    enabled: num(row.enabled) !== 0,
    timecreated: num(row.timecreated),
    lastcron: num(row.lastcron),
    lastcrongap: num(row.lastcrongap),
    croncount: num(row.croncount),
    metadata: str(row.metadata),
  };
}

export function fieldsToRow(fields: Partial<InstanceFields>): RegistryRow {
  const row: RegistryRow = { ...fields };
  if (fields.vdbpersist !== undefined) row.vdbpersist = fields.vdbpersist ? 1 : 0;
  if (fields.enabled !== undefined) row.enabled = fields.enabled ? 1 : 0;
  return row;
}

/** What may be shown of an instance anywhere: everything but the database password. */
export function publicView(instance: Instance): Omit<Instance, 'vdbpass'> & { vdbpass: 'set' | 'not set' } {
  return { ...instance, vdbpass: instance.vdbpass ? 'set' : 'not set' };
}

/** VMoodle's vdbhost is `host` or `host:port`. */
export function splitDbHost(vdbhost: string): { host: string; port: number } {
  const m = /^(.*?)(?::(\d+))?$/.exec(vdbhost.trim()) as RegExpExecArray;
  return { host: m[1] === 'localhost' ? '127.0.0.1' : (m[1] as string), port: m[2] ? Number(m[2]) : 3306 };
}

/** A registry `vdbhost` as the server key serverKey gives its target. */
export function dbHostKey(vdbhost: string): string {
  const { host, port } = splitDbHost(vdbhost);
  return `${host}:${port}`;
}

/** The fields that decide where an instance's login is sent and which folder is its own (docs/security.md). */
export const WHERE_FIELDS = ['vdbtype', 'vdbhost', 'vdbname', 'vdblogin', 'vdbprefix', 'vdatapath'] as const;
export type WhereField = (typeof WHERE_FIELDS)[number];
