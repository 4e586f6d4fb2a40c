import { errorKind } from '../core/errors.ts';
import type { Knex } from 'knex';
import type { Config, LogLevel } from '../core/config.ts';
import { openDatabase } from '../core/db/knex.ts';
import { redactUrl } from '../core/db/mysql-url.ts';
import { createLogger, errorFields, SecretValues, type Logger } from '../core/log.ts';
import type { RunServices } from '../ops/executor/run-services.ts';
import type { RedisRole } from '../core/redis.ts';
import type { Fleet } from '../registry/fleet.ts';
import { Registry } from '../registry/registry.ts';
import { serviceUrls, type ServiceUrls } from '../core/services/index.ts';
import { SettingsStore, type SecuritySettings } from '../core/security-settings.ts';
import { Keyring } from '../core/keyring.ts';
import { auditTables, migrateAudit } from '../core/db/schema.ts';

const FLEET_CACHE_MS = 2000;

export class ConnectionError extends errorKind('unavailable') {}

const CONNECTION_CODES: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ETIMEDOUT: 'timed out',
  ENOTFOUND: 'unknown host',
  ER_BAD_DB_ERROR: 'the database does not exist',
  ER_ACCESS_DENIED_ERROR: 'access denied',
  ER_DBACCESS_DENIED_ERROR: 'access denied',
};

/** What one process shares across commands: the configuration and lazily opened connections. */
export class Backend {
  readonly urls: ServiceUrls;
  private knex: Knex | undefined;
  private registryReady: Promise<Registry> | undefined;
  private opsReady: Promise<RunServices> | undefined;
  private auditReady: Promise<void> | undefined;
  private settingsStore: SettingsStore | undefined;
  private fleetCache: { at: number; fleet: Promise<Fleet> } | undefined;
  /** Secret values this process has seen, cut out of every log line. */
  readonly secrets = new SecretValues();
  readonly log: Logger;

  constructor(
    readonly config: Config,
    urls?: ServiceUrls,
    defaultLogLevel: LogLevel = 'error',
  ) {
    this.urls = urls ?? serviceUrls(config);
    this.log = createLogger(config, this.secrets, defaultLogLevel);
  }

  /** A service (a worker, the Slack app) logs its runs at this level unless the configuration sets one. */
  logRunsAt(level: LogLevel): void {
    if (!this.config.log.level) this.log.level = level;
  }

  /**
   * A process that runs targets waits for Redis to come back; a command line or a chat that does not says so
   * within VMOODLE_REDIS_TIMEOUT. Set before the executor's side is opened.
   */
  redisRole: RedisRole = 'front';

  get masterDb(): Knex {
    this.knex ??= openDatabase(this.urls.mysqlUrl);
    return this.knex;
  }

  /** The registry, its table checked (or created) once per process. */
  registry(): Promise<Registry> {
    this.registryReady ??= (async () => {
      const registry = new Registry(this.masterDb, this.config.masterPrefix, this.config.master, [
        { path: this.config.lifecycle.templatesDir, what: 'the templates folder' },
      ]);
      try {
        await registry.ensureTable();
      } catch (err) {
        throw this.explain(err);
      }
      return registry;
    })();
    return this.registryReady;
  }

  /**
   * The registry as loaded at most a couple of seconds ago: previews in a burst share one load. Plans load their
   * own, since what they freeze must be current.
   */
  fleet(): Promise<Fleet> {
    if (!this.fleetCache || Date.now() - this.fleetCache.at > FLEET_CACHE_MS) {
      const load = this.registry().then((r) => r.loadFleet());
      // A failed load is not kept: the next caller tries again, and this one gets the error from `load`.
      load.catch(() => (this.fleetCache = undefined));
      this.fleetCache = { at: Date.now(), fleet: load };
    }
    return this.fleetCache.fleet;
  }

  /** The product's own tables brought to the latest version, once per process. */
  private migrated(): Promise<void> {
    this.auditReady ??= migrateAudit(this.masterDb, this.config.executor.tablePrefix).catch((err: unknown) => {
      this.auditReady = undefined;
      throw this.explain(err);
    });
    return this.auditReady;
  }

  /** The security settings' store in the master database (see core/security-settings.ts). */
  async settings(): Promise<SettingsStore> {
    await this.migrated();
    this.settingsStore ??= new SettingsStore(this.masterDb, auditTables(this.config.executor.tablePrefix).settings);
    return this.settingsStore;
  }

  /** The security settings as an admin last wrote them (read again every few seconds). */
  async security(): Promise<SecuritySettings> {
    try {
      return await (await this.settings()).read();
    } catch (err) {
      throw this.explain(err);
    }
  }

  /** The executor's side: audit tables migrated once per process, queue, pooled access to the fleet. */
  ops(): Promise<RunServices> {
    this.opsReady ??= (async () => {
      const registry = await this.registry();
      // The queue's libraries load with the first verb that needs them, not with every command line.
      const [{ RunServices }, { assertRedisAnswers }, { RunStore }] = await Promise.all([
        import('../ops/executor/run-services.ts'),
        import('../core/redis.ts'),
        import('../ops/executor/store.ts'),
      ]);
      const keyring = new Keyring(this.config.secretKeys);
      const store = new RunStore(this.masterDb, this.config.executor.tablePrefix, keyring);
      let installation: string;
      const settings = await this.settings();
      try {
        installation = await store.installationId();
      } catch (err) {
        throw this.explain(err);
      }
      const runtime = new RunServices({
        config: this.config,
        redisUrl: this.urls.redisUrl,
        mysqlUrl: this.urls.mysqlUrl,
        store,
        registry,
        log: this.log,
        secrets: this.secrets,
        installation,
        redisRole: this.redisRole,
        settings,
        keyring,
      });
      try {
        if (this.redisRole === 'front')
          await assertRedisAnswers(runtime.redis, this.urls.redisUrl, this.config.redisTimeoutMs);
      } catch (err) {
        await runtime.close();
        throw this.explain(err);
      }
      return runtime;
    })();
    return this.opsReady;
  }

  /** Turns a driver's connection failure into one line that names the server (never its password) and what to do. */
  explain(err: unknown): unknown {
    const code = (err as { code?: string }).code;
    const reason = code ? CONNECTION_CODES[code] : undefined;
    if (!reason) return err;
    const hint = this.config.sandbox
      ? code === 'ER_BAD_DB_ERROR'
        ? '; run `npm start` or `vmoodle sandbox create` to set up the sandbox'
        : '; in sandbox mode `npm start` starts a private server'
      : ' (MYSQL_URL)';
    return new ConnectionError(`cannot use the master database at ${redactUrl(this.urls.mysqlUrl)}: ${reason}${hint}`);
  }

  async close(): Promise<void> {
    const ops = this.opsReady;
    this.opsReady = undefined;
    // A runtime that failed to open has closed what it opened, and its error went to whoever asked for it.
    await ops?.then(
      (o) => o.close(),
      (err: unknown) => this.log.debug({ ...errorFields(err) }, 'the executor never opened'),
    );
    await this.knex?.destroy();
    this.knex = undefined;
    this.registryReady = undefined;
    this.auditReady = undefined;
    this.settingsStore = undefined;
  }
}
