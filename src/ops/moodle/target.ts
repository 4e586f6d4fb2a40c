import { errorKind } from '../../core/errors.ts';
import type { Config } from '../../core/config.ts';
import { assertDatabaseName, assertTablePrefix } from '../../core/db/identifiers.ts';
import { parseMysqlUrl } from '../../core/db/mysql-url.ts';
import type { Host } from '../../registry/fleet.ts';
import { splitDbHost, type Instance } from '../../registry/instance.ts';

/** Where one Moodle's database lives. The password stays here, in memory; it is never written to jobs or logs. */
export interface MoodleDb {
  host: string;
  port: number;
  user: string;
  password: string | undefined;
  database: string;
  prefix: string;
}

/** A Moodle a command can act on: an instance or the master, with what is needed to reach it. */
export interface MoodleTarget {
  host: Host;
  db: MoodleDb;
  /** The moodledata folder, when known. */
  dataroot: string | undefined;
}

export class TargetError extends errorKind('target') {}

export function instanceTarget(host: Host, instance: Instance): MoodleTarget {
  if (instance.vdbtype === 'postgres')
    throw new TargetError(`${instance.shortname}: PostgreSQL instances are not supported`);
  return {
    host,
    db: {
      ...splitDbHost(instance.vdbhost),
      user: instance.vdblogin,
      password: instance.vdbpass || undefined,
      database: assertDatabaseName(instance.vdbname),
      prefix: assertTablePrefix(instance.vdbprefix),
    },
    dataroot: instance.vdatapath || undefined,
  };
}

export function masterTarget(host: Host, config: Config, mysqlUrl: string): MoodleTarget {
  const url = parseMysqlUrl(mysqlUrl, { requireDatabase: true });
  return {
    host,
    db: {
      host: url.host,
      port: url.port,
      user: url.user,
      password: url.password,
      database: assertDatabaseName(url.database as string),
      prefix: assertTablePrefix(config.masterPrefix),
    },
    dataroot: config.master.dataroot,
  };
}

/**
 * The DB server a target's connections go to: connection caps, instance locks and the audit name it. Pools are
 * per server and credentials (see MoodleAccess).
 */
export const serverKey = (db: Pick<MoodleDb, 'host' | 'port'>) => `${db.host}:${db.port}`;
