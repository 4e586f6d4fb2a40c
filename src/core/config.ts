import { errorKind, OpsError } from './errors.ts';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { parse as parseYaml } from 'yaml';
import { parseMysqlUrl, redactUrl } from './db/mysql-url.ts';
import { assertTablePrefix } from './db/identifiers.ts';
import { parseKeyring, type SecretKey } from './keyring.ts';
import { parseNodes, type NodeConfig } from './nodes.ts';

export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export const DEFAULT_MYSQL_SERVER = 'mysql://root@127.0.0.1:3306';
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
export const SANDBOX_MASTER_DB = 'vmops_sandbox';
export const SANDBOX_MASTER_WWWROOT = 'https://master.sandbox.example.org';

export interface MasterHost {
  /** The name `--fromhost` and `--tohosts` know the master by; it has no registry row. */
  shortname: string;
  wwwroot: string | undefined;
  dataroot: string | undefined;
}

/** How the executor runs: its Redis and table prefixes, and its limits. */
export interface ExecutorSettings {
  /**
   * BullMQ and executor keys in Redis start with this (use a {hashtag} on Redis Cluster); unset, each master gets
   * one of its own from its installation id.
   */
  queuePrefix: string | undefined;
  /** The product's own tables in the master database. */
  tablePrefix: string;
  /** Targets one worker process runs at once. */
  concurrency: number;
  /** Connections at most to one DB server, across all workers. */
  perServer: number;
  /** Seconds one target may take. */
  targetTimeout: number;
  /** Tries of a target that fails for a transient reason. */
  attempts: number;
  /** A worker's job lock, ms; a worker that dies loses its jobs to another after this. */
  lockDuration: number;
  /** How often workers look for jobs whose worker died, ms. */
  stalledInterval: number;
  /** How often each worker looks for running runs whose queued work was lost (Redis emptied), in ms. */
  watchdogInterval: number;
  /** Ended jobs of runs kept in Redis for debugging, the newest this many; their results are in the master. */
  keptJobs: number;
}

export interface Config {
  /** No master database configured: local servers may be started and a demo fleet created. */
  sandbox: boolean;
  mysqlUrl: string;
  masterPrefix: string;
  redisUrl: string;
  dataDir: string;
  node: string;
  master: MasterHost;
  moodleDump: string | undefined;
  executor: ExecutorSettings;
  /** The web nodes that hold Moodle's code and mount dataroots; none means this machine holds everything. */
  nodes: NodeConfig[];
  /** Keys that keep secret parameters encrypted while their run waits; the first seals, all open. */
  secretKeys: SecretKey[];
  /** Slack credentials: HTTP mode needs the bot token and signing secret; Socket Mode the bot and app tokens. */
  slack: {
    botToken: string | undefined;
    signingSecret: string | undefined;
    appToken: string | undefined;
    port: number;
    apiUrl: string;
  };
  /** The listener of /metrics, /healthz and /readyz in the bot and each worker: off unless a port is set. */
  metrics: { port: number | undefined; host: string };
  /** JSON lines at this level and above; unset, the long-running verbs log at info and the others only errors. */
  log: { level: LogLevel | undefined; file: string | undefined };
  /** How long the command line and the chats wait for Redis before saying it cannot be reached, ms. */
  redisTimeoutMs: number;
  /** MNET keys: their lifetime where a site sets none, and when they are renewed on their own. */
  mnet: MnetSettings;
  /** The fleet's cron (VMoodle's vcron). */
  cron: CronSettings;
  /** The Slack channel alerts go to (a cron that fails, a key renewed on its own); none: alerts are only logged. */
  opsChannel: string | undefined;
  /** Where snapshots are kept, and the only folder under which an instance's dataroot may be made or removed. */
  lifecycle: LifecycleSettings;
}

export interface LifecycleSettings {
  /** The templates folder: one folder per snapshot, on storage every node that creates or snapshots can reach. */
  templatesDir: string;
  /** Dataroots are created and removed only below this folder; unset, lifecycle create and destroy refuse to touch files. */
  datarootRoot: string | undefined;
}

export interface CronSettings {
  /** A cron expression for the ticks (UTC), or undefined when the fleet's cron is off. */
  schedule: string | undefined;
  /** round robin: the next hosts after the last one run; lowest gap: those whose last cron is oldest past the period. */
  strategy: 'roundrobin' | 'lowestgap';
  /** Hosts started by one tick at the most. */
  perTick: number;
  /** Lowest gap: a host whose last cron is older than this many minutes is due. */
  periodMinutes: number;
  /** How a host's cron is run: VMoodle's CLI wrapper on its node, or its web cron page. */
  trigger: 'php' | 'http';
  /** Seconds a host's cron may take before it is stopped and reported. */
  timeoutSeconds: number;
  /** Whether the web cron's TLS certificate is checked. */
  verifyTls: boolean;
  /** Where each host's cron output is appended, one file a host. */
  logDir: string;
  /** A host's log is rotated past this size, keeping CRON_LOGS_KEPT older ones. */
  logMaxBytes: number;
}

export interface MnetSettings {
  /** Days a new key lasts where the site has no `mnetkeylifetime` of its own (Moodle's default is 28). */
  keyDays: number;
  /** A key that expires within this many hours is "expiring", and auto-renewal renews it. */
  renewGapHours: number;
  /** Auto-renewal: off, or the minutes of the UTC day in which it may renew (`02:00-05:00`). */
  autorenew: { from: number; to: number } | undefined;
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Slack's own Web API address. */
export const SLACK_API_URL = 'https://slack.com/api/';

export class ConfigError extends errorKind('config') {}

type Source = Record<string, string | undefined>;

interface Setting<T> {
  env: string;
  file: string;
  expects: string;
  parse(value: string): T;
}

function setting<T>(env: string, file: string, expects: string, parse: (value: string) => T): Setting<T> {
  return { env, file, expects, parse };
}

const text = (value: string) => value;

/** Every setting the product reads: its variable, its key in the config file, and what it expects. */
export const SETTINGS = {
  configFile: setting('VMOODLE_CONFIG', '', 'the path of a YAML configuration file', text),
  mysqlUrl: setting('MYSQL_URL', 'mysql_url', 'mysql://user:password@host:port/database (the master database)', (v) => {
    parseMysqlUrl(v, { requireDatabase: true });
    return v;
  }),
  masterPrefix: setting('VMOODLE_PREFIX', 'prefix', "the master's Moodle table prefix, e.g. mdl_", (v) => {
    assertTablePrefix(v);
    return v;
  }),
  redisUrl: setting('REDIS_URL', 'redis_url', 'redis://[user:password@]host:port[/db]', (v) => {
    const url = tryUrl(v);
    if (!url || (url.protocol !== 'redis:' && url.protocol !== 'rediss:') || !url.hostname) throw new Error();
    return v;
  }),
  dataDir: setting(
    'VMOODLE_DATA_DIR',
    'data_dir',
    'a folder path for local state (private servers, sandbox dataroots)',
    (v) => resolve(v),
  ),
  node: setting('VMOODLE_NODE', 'node', 'a node name of letters, digits, dots, dashes and underscores', (v) => {
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(v)) throw new Error();
    return v;
  }),
  masterShortname: setting('VMOODLE_MASTER_SHORTNAME', 'master.shortname', 'a short name without spaces', (v) => {
    if (!/^\S{1,80}$/.test(v)) throw new Error();
    return v;
  }),
  masterWwwroot: setting(
    'VMOODLE_MASTER_WWWROOT',
    'master.wwwroot',
    "the master's http(s):// address without a trailing slash",
    (v) => {
      const url = tryUrl(v);
      if (!url || !/^https?:$/.test(url.protocol) || v.endsWith('/')) throw new Error();
      return v;
    },
  ),
  masterDataroot: setting(
    'VMOODLE_MASTER_DATAROOT',
    'master.dataroot',
    "the master's moodledata folder (an absolute path)",
    (v) => {
      if (!v.startsWith('/')) throw new Error();
      return v;
    },
  ),
  moodleDump: setting(
    'VMOODLE_MOODLE_DUMP',
    'moodle_dump',
    'the path of a Moodle database dump (.sql or .sql.gz)',
    (v) => {
      const path = resolve(v);
      if (!existsSync(path)) throw new Error();
      return path;
    },
  ),
  slackBotToken: setting('SLACK_BOT_TOKEN', 'slack.bot_token', 'a bot token (xoxb-…)', (v) => {
    if (!v.startsWith('xoxb-')) throw new Error();
    return v;
  }),
  slackSigningSecret: setting('SLACK_SIGNING_SECRET', 'slack.signing_secret', "the app's signing secret", (v) => {
    if (!/^[0-9a-f]{16,}$/i.test(v)) throw new Error();
    return v;
  }),
  slackAppToken: setting('SLACK_APP_TOKEN', 'slack.app_token', 'an app-level token (xapp-…) for Socket Mode', (v) => {
    if (!v.startsWith('xapp-')) throw new Error();
    return v;
  }),
  slackApiUrl: setting(
    'SLACK_API_URL',
    'slack.api_url',
    "the Slack Web API's address, ending in /api/ (a staging proxy or a recording server)",
    (v) => {
      const url = tryUrl(v);
      if (!url || !/^https?:$/.test(url.protocol) || !v.endsWith('/')) throw new Error();
      return v;
    },
  ),
  logLevel: setting('LOG_LEVEL', 'log.level', `one of ${LOG_LEVELS.join(', ')}`, (v) => {
    if (!(LOG_LEVELS as readonly string[]).includes(v)) throw new Error();
    return v as LogLevel;
  }),
  redisTimeout: setting(
    'VMOODLE_REDIS_TIMEOUT',
    'redis_timeout',
    'seconds, a whole number from 1 to 300',
    wholeNumber(1, 300),
  ),
  logFile: setting(
    'VMOODLE_LOG_FILE',
    'log.file',
    'the path of a file the log is appended to (default: standard error)',
    (v) => resolve(v),
  ),
  slackPort: setting('SLACK_PORT', 'slack.port', 'a TCP port from 1 to 65535', wholeNumber(1, 65_535)),
  metricsPort: setting(
    'VMOODLE_METRICS_PORT',
    'metrics.port',
    "a TCP port from 1 to 65535 for /metrics, /healthz and /readyz (off unless set; never Slack's port)",
    wholeNumber(1, 65_535),
  ),
  metricsHost: setting(
    'VMOODLE_METRICS_HOST',
    'metrics.host',
    'the address the metrics listener binds to: an IP address or a host name (default 127.0.0.1)',
    (v) => {
      if (isIP(v) === 0 && !/^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/.test(v)) throw new Error();
      return v;
    },
  ),
  nodes: setting('VMOODLE_NODES', 'nodes_file', 'the path of the nodes YAML file (see README)', (v) =>
    parseNodes(readYamlFile(resolve(v), 'VMOODLE_NODES')),
  ),
  secretKeys: setting(
    'VMOODLE_SECRET_KEYS',
    'secrets.keys',
    'id:key pairs, comma separated, each key 32 random bytes in base64 (openssl rand -base64 32)',
    parseKeyring,
  ),
  queuePrefix: setting(
    'VMOODLE_QUEUE_PREFIX',
    'executor.queue_prefix',
    'a Redis key prefix of letters, digits, {}, _ and -',
    (v) => {
      if (!/^[A-Za-z0-9{}_-]{1,40}$/.test(v)) throw new Error();
      return v;
    },
  ),
  tablePrefix: setting(
    'VMOODLE_TABLE_PREFIX',
    'executor.table_prefix',
    "the product's own table prefix, e.g. vmops_",
    (v) => {
      assertTablePrefix(v);
      return v;
    },
  ),
  concurrency: setting(
    'VMOODLE_WORKER_CONCURRENCY',
    'executor.concurrency',
    'a whole number from 1 to 500',
    wholeNumber(1, 500),
  ),
  perServer: setting(
    'VMOODLE_DB_SERVER_CAP',
    'executor.per_server',
    'a whole number from 1 to 1000',
    wholeNumber(1, 1000),
  ),
  targetTimeout: setting(
    'VMOODLE_TARGET_TIMEOUT',
    'executor.target_timeout',
    'seconds, a whole number from 1 to 86400',
    wholeNumber(1, 86_400),
  ),
  attempts: setting('VMOODLE_ATTEMPTS', 'executor.attempts', 'a whole number from 1 to 20', wholeNumber(1, 20)),
  lockDuration: setting(
    'VMOODLE_LOCK_DURATION',
    'executor.lock_duration',
    'milliseconds, from 1000 to 600000',
    wholeNumber(1000, 600_000),
  ),
  mnetKeyDays: setting(
    'VMOODLE_MNET_KEY_DAYS',
    'mnet.key_days',
    'days, a whole number from 1 to 3650',
    wholeNumber(1, 3650),
  ),
  mnetRenewGap: setting(
    'VMOODLE_MNET_RENEW_GAP',
    'mnet.renew_gap_hours',
    'hours, a whole number from 1 to 8760',
    wholeNumber(1, 8760),
  ),
  mnetAutorenew: setting(
    'VMOODLE_MNET_AUTORENEW',
    'mnet.autorenew',
    "'off', or the UTC time window keys may be renewed in, HH:MM-HH:MM (e.g. 02:00-05:00)",
    (v) => {
      if (v === 'off') return undefined;
      const m = /^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$/.exec(v);
      if (!m) throw new Error();
      return { from: Number(m[1]) * 60 + Number(m[2]), to: Number(m[3]) * 60 + Number(m[4]) };
    },
  ),
  cron: setting(
    'VMOODLE_CRON',
    'cron.schedule',
    "'off', 'on' (every minute) or a cron expression of five fields, in UTC",
    (v) => {
      if (v === 'off') return 'off';
      const expression = v === 'on' ? '* * * * *' : v;
      if (expression.trim().split(/\s+/).length !== 5) throw new Error();
      // Loaded only when a schedule is set: every command line reads the configuration.
      (createRequire(import.meta.url)('cron-parser') as typeof import('cron-parser')).CronExpressionParser.parse(
        expression,
        { tz: 'UTC' },
      );
      return expression;
    },
  ),
  cronStrategy: setting('VMOODLE_CRON_STRATEGY', 'cron.strategy', "'roundrobin' or 'lowestgap'", (v) => {
    if (v !== 'roundrobin' && v !== 'lowestgap') throw new Error();
    return v;
  }),
  cronPerTick: setting(
    'VMOODLE_CRON_PER_TICK',
    'cron.per_tick',
    'hosts a tick, a whole number from 1 to 10000',
    wholeNumber(1, 10_000),
  ),
  cronPeriod: setting(
    'VMOODLE_CRON_PERIOD',
    'cron.period_minutes',
    'minutes, a whole number from 1 to 10080',
    wholeNumber(1, 10_080),
  ),
  cronTrigger: setting(
    'VMOODLE_CRON_TRIGGER',
    'cron.trigger',
    "'php' (VMoodle's CLI wrapper on the node) or 'http' (the site's admin/cron.php)",
    (v) => {
      if (v !== 'php' && v !== 'http') throw new Error();
      return v;
    },
  ),
  cronTimeout: setting(
    'VMOODLE_CRON_TIMEOUT',
    'cron.timeout',
    'seconds, a whole number from 1 to 86400',
    wholeNumber(1, 86_400),
  ),
  cronVerifyTls: setting('VMOODLE_CRON_VERIFY_TLS', 'cron.verify_tls', "'on' or 'off'", (v) => {
    if (v !== 'on' && v !== 'off') throw new Error();
    return v === 'on';
  }),
  cronLogDir: setting('VMOODLE_CRON_LOG_DIR', 'cron.log_dir', "a folder path for the hosts' cron logs", (v) =>
    resolve(v),
  ),
  cronLogBytes: setting(
    'VMOODLE_CRON_LOG_BYTES',
    'cron.log_max_bytes',
    'bytes, a whole number from 1024 to 1073741824',
    wholeNumber(1024, 1_073_741_824),
  ),
  opsChannel: setting('VMOODLE_OPS_CHANNEL', 'slack.ops_channel', 'a Slack channel id (C…, G…)', (v) => {
    if (!/^[CG][A-Z0-9]{2,}$/.test(v)) throw new Error();
    return v;
  }),
  templatesDir: setting(
    'VMOODLE_TEMPLATES_DIR',
    'lifecycle.templates_dir',
    'a folder path for templates (snapshots of instances)',
    (v) => resolve(v),
  ),
  datarootRoot: setting(
    'VMOODLE_DATAROOT_ROOT',
    'lifecycle.dataroot_root',
    'the absolute folder instance dataroots are made and removed under (not /)',
    (v) => {
      const path = resolve(v);
      if (!v.startsWith('/') || path === '/') throw new Error();
      return path;
    },
  ),
  stalledInterval: setting(
    'VMOODLE_STALLED_INTERVAL',
    'executor.stalled_interval',
    'milliseconds, from 500 to 600000',
    wholeNumber(500, 600_000),
  ),
  keptJobs: setting(
    'VMOODLE_KEPT_JOBS',
    'executor.kept_jobs',
    'a whole number from 0 to 100000: ended jobs of runs kept in Redis for debugging (their results are in the master)',
    wholeNumber(0, 100_000),
  ),
  watchdogInterval: setting(
    'VMOODLE_WATCHDOG_INTERVAL',
    'executor.watchdog_interval',
    'milliseconds, from 500 to 600000: how often each worker looks for runs whose queued work was lost',
    wholeNumber(500, 600_000),
  ),
} as const;

function wholeNumber(min: number, max: number) {
  return (v: string) => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < min || n > max) throw new Error();
    return n;
  };
}

function tryUrl(value: string): URL | undefined {
  try {
    return new URL(value);
  } catch {
    // biome-ignore lint/plugin: not a URL: the caller says what it expected
    return undefined;
  }
}

/** A YAML file named by a variable; a file that cannot be read or parsed is one line naming both. */
export function readYamlFile(
  path: string,
  variable: string,
  fail: new (message: string) => Error = ConfigError,
): unknown {
  try {
    return parseYaml(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new fail(`${variable}: cannot read ${path}: ${(err as Error).message.split('\n')[0]}`);
  }
}

function readConfigFile(path: string): Source {
  const doc = readYamlFile(path, 'VMOODLE_CONFIG');
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc))
    throw new ConfigError(`VMOODLE_CONFIG: ${path} must hold a YAML mapping`);
  const flat: Source = {};
  const walk = (node: Record<string, unknown>, path: string) => {
    for (const [key, value] of Object.entries(node)) {
      const name = path ? `${path}.${key}` : key;
      if (value !== null && typeof value === 'object' && !Array.isArray(value))
        walk(value as Record<string, unknown>, name);
      else if (value !== null && value !== undefined) flat[name] = String(value);
    }
  };
  walk(doc as Record<string, unknown>, '');
  const known = new Set(Object.values(SETTINGS).map((s) => s.file));
  const unknown = Object.keys(flat).filter((k) => !known.has(k));
  if (unknown.length > 0) {
    throw new ConfigError(
      `VMOODLE_CONFIG: ${path} has unknown keys: ${unknown.join(', ')} (known: ${[...known].filter(Boolean).join(', ')})`,
    );
  }
  return flat;
}

/**
 * Reads the configuration from the environment, then from the optional YAML file named by VMOODLE_CONFIG
 * (the environment wins). A bad value throws a ConfigError naming the variable and what it expects.
 */
export function loadConfig(env: Source = process.env): Config {
  const file = env[SETTINGS.configFile.env] ? readConfigFile(resolve(env[SETTINGS.configFile.env]!)) : {};
  function get<T>(s: Setting<T>): T | undefined {
    const fromEnv = env[s.env];
    const raw = fromEnv !== undefined && fromEnv !== '' ? fromEnv : file[s.file];
    if (raw === undefined || raw === '') return undefined;
    try {
      return s.parse(raw);
    } catch (err) {
      const where = fromEnv ? s.env : `${s.file} in VMOODLE_CONFIG (${s.env})`;
      const secret = [
        SETTINGS.slackBotToken,
        SETTINGS.slackSigningSecret,
        SETTINGS.slackAppToken,
        SETTINGS.secretKeys,
      ] as Setting<unknown>[];
      const shown =
        s === SETTINGS.mysqlUrl || s === SETTINGS.redisUrl
          ? describeMysqlUrlSafe(raw)
          : secret.includes(s as Setting<unknown>)
            ? 'a value (not shown)'
            : `'${raw}'`;
      // Plain parse failures carry no message; the checks that know more (identifiers, keys, nodes) say it.
      const detail = err instanceof OpsError ? `: ${err.message}` : '';
      throw new ConfigError(`${where}: expected ${s.expects}, got ${shown}${detail}`);
    }
  }

  const mysqlUrl = get(SETTINGS.mysqlUrl);
  const sandbox = mysqlUrl === undefined;
  const slackPort = get(SETTINGS.slackPort) ?? 3000;
  const metricsPort = get(SETTINGS.metricsPort);
  // Slack's requests come from the internet; what the fleet tool is doing is for the monitoring only.
  if (metricsPort === slackPort)
    throw new ConfigError(
      `VMOODLE_METRICS_PORT: ${metricsPort} is the port that receives Slack's requests (SLACK_PORT); give the metrics a port of their own`,
    );
  const defaultDump = resolve(PROJECT_ROOT, '..', 'shared', 'fixtures', 'moodle-4.5.6-tpl.sql.gz');
  const dataDir = get(SETTINGS.dataDir) ?? resolve(PROJECT_ROOT, 'data');
  return {
    sandbox,
    mysqlUrl: mysqlUrl ?? `${DEFAULT_MYSQL_SERVER}/${SANDBOX_MASTER_DB}`,
    masterPrefix: get(SETTINGS.masterPrefix) ?? 'mdl_',
    redisUrl: get(SETTINGS.redisUrl) ?? DEFAULT_REDIS_URL,
    dataDir,
    node:
      get(SETTINGS.node) ??
      hostname()
        .replace(/[^A-Za-z0-9._-]/g, '-')
        .slice(0, 64),
    master: {
      shortname: get(SETTINGS.masterShortname) ?? 'master',
      wwwroot: get(SETTINGS.masterWwwroot) ?? (sandbox ? SANDBOX_MASTER_WWWROOT : undefined),
      dataroot: get(SETTINGS.masterDataroot),
    },
    moodleDump: get(SETTINGS.moodleDump) ?? (existsSync(defaultDump) ? defaultDump : undefined),
    executor: {
      queuePrefix: get(SETTINGS.queuePrefix),
      tablePrefix: get(SETTINGS.tablePrefix) ?? 'vmops_',
      concurrency: get(SETTINGS.concurrency) ?? 32,
      perServer: get(SETTINGS.perServer) ?? 20,
      targetTimeout: get(SETTINGS.targetTimeout) ?? 120,
      attempts: get(SETTINGS.attempts) ?? 3,
      lockDuration: get(SETTINGS.lockDuration) ?? 30_000,
      stalledInterval: get(SETTINGS.stalledInterval) ?? 30_000,
      watchdogInterval: get(SETTINGS.watchdogInterval) ?? 30_000,
      keptJobs: get(SETTINGS.keptJobs) ?? 1000,
    },
    nodes: get(SETTINGS.nodes) ?? [],
    slack: {
      botToken: get(SETTINGS.slackBotToken),
      signingSecret: get(SETTINGS.slackSigningSecret),
      appToken: get(SETTINGS.slackAppToken),
      port: slackPort,
      apiUrl: get(SETTINGS.slackApiUrl) ?? SLACK_API_URL,
    },
    metrics: { port: metricsPort, host: get(SETTINGS.metricsHost) ?? '127.0.0.1' },
    log: { level: get(SETTINGS.logLevel), file: get(SETTINGS.logFile) },
    redisTimeoutMs: (get(SETTINGS.redisTimeout) ?? 10) * 1000,
    secretKeys: get(SETTINGS.secretKeys) ?? (sandbox ? sandboxKeys(dataDir) : []),
    cron: {
      schedule: ((c) => (c === 'off' ? undefined : c))(get(SETTINGS.cron) ?? 'off'),
      strategy: get(SETTINGS.cronStrategy) ?? 'roundrobin',
      perTick: get(SETTINGS.cronPerTick) ?? 16,
      periodMinutes: get(SETTINGS.cronPeriod) ?? 15,
      trigger: get(SETTINGS.cronTrigger) ?? 'php',
      timeoutSeconds: get(SETTINGS.cronTimeout) ?? 300,
      verifyTls: get(SETTINGS.cronVerifyTls) ?? true,
      logDir: get(SETTINGS.cronLogDir) ?? resolve(dataDir, 'cron'),
      logMaxBytes: get(SETTINGS.cronLogBytes) ?? 1_048_576,
    },
    opsChannel: get(SETTINGS.opsChannel),
    lifecycle: {
      templatesDir: get(SETTINGS.templatesDir) ?? resolve(dataDir, 'templates'),
      datarootRoot: get(SETTINGS.datarootRoot),
    },
    mnet: {
      keyDays: get(SETTINGS.mnetKeyDays) ?? 28,
      renewGapHours: get(SETTINGS.mnetRenewGap) ?? 72,
      autorenew: get(SETTINGS.mnetAutorenew),
    },
  };
}

/**
 * The sandbox's own key, kept in its data folder (mode 0600): plans are signed under a key, and a demo should not
 * ask for one. A configured master always names its keys (VMOODLE_SECRET_KEYS).
 */
function sandboxKeys(dataDir: string): SecretKey[] {
  const file = resolve(dataDir, 'secret-keys');
  if (!existsSync(file)) {
    mkdirSync(dataDir, { recursive: true });
    try {
      writeFileSync(file, `sandbox:${randomBytes(32).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
    } catch (err) {
      // Another process of the sandbox made it first: its key is the one.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  return parseKeyring(readFileSync(file, 'utf8').trim());
}

/** A URL as it may be shown: never with its password. */
function describeMysqlUrlSafe(raw: string): string {
  const url = tryUrl(raw);
  if (!url) return 'a value that is not a URL';
  return `'${redactUrl(raw)}'`;
}
