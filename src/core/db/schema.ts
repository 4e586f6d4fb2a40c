import type { Knex } from 'knex';
import { assertTablePrefix } from './identifiers.ts';

/** The product's own tables in the master database; their prefix is never Moodle's, so Moodle's schema check ignores them. */
export interface AuditTables {
  runs: string;
  targets: string;
  events: string;
  migrations: string;
  installation: string;
  slackMessages: string;
  deliverySessions: string;
  deliveryLog: string;
  settings: string;
  targetWrites: string;
}

export function auditTables(prefix: string): AuditTables {
  assertTablePrefix(prefix);
  return {
    runs: `${prefix}runs`,
    targets: `${prefix}run_targets`,
    events: `${prefix}run_events`,
    migrations: `${prefix}migrations`,
    installation: `${prefix}installation`,
    slackMessages: `${prefix}slack_messages`,
    deliverySessions: `${prefix}delivery_sessions`,
    deliveryLog: `${prefix}delivery_log`,
    settings: `${prefix}settings`,
    targetWrites: `${prefix}target_writes`,
  };
}

async function longValues(db: Knex, t: AuditTables, type: 'text' | 'mediumtext'): Promise<void> {
  await db.schema.alterTable(t.runs, (table) => {
    for (const column of ['params', 'secret_params', 'selector']) table.text(column, type).notNullable().alter();
  });
  await db.schema.alterTable(t.targets, (table) => {
    for (const column of [
      'preview_old',
      'preview_new',
      'params',
      'old_value',
      'new_value',
      'message',
      'returned_value',
    ])
      table.text(column, type).nullable().alter();
  });
}

type Migration = {
  name: string;
  up(db: Knex, t: AuditTables): Promise<void>;
  down(db: Knex, t: AuditTables): Promise<void>;
};

/** Versioned, in order; a released migration is never edited, a change is a new one. */
const MIGRATIONS: Migration[] = [
  {
    name: '0001_runs',
    async up(db, t) {
      await db.schema.createTable(t.runs, (table) => {
        table.bigIncrements('id');
        table.bigInteger('parent_id').nullable().index();
        table.string('kind', 16).notNullable();
        table.string('command', 64).notNullable();
        table.text('params').notNullable();
        table.text('secret_params').notNullable();
        table.text('selector').notNullable();
        table.text('source').notNullable();
        table.string('plan_hash', 64).notNullable();
        table.string('state', 24).notNullable().index();
        table.string('requested_by', 255).notNullable();
        table.string('via', 16).notNullable();
        table.integer('canary').notNullable().defaultTo(0);
        table.boolean('canary_open').notNullable().defaultTo(false);
        table.integer('max_failures').notNullable();
        table.integer('target_count').notNullable();
        table.boolean('destructive').notNullable();
        table.bigInteger('created_at').notNullable();
        table.bigInteger('started_at').nullable();
        table.bigInteger('finished_at').nullable();
        table.text('summary').nullable();
      });
      await db.schema.createTable(t.targets, (table) => {
        table.bigIncrements('id');
        table.bigInteger('run_id').notNullable();
        table.integer('position').notNullable();
        table.string('host_kind', 10).notNullable();
        table.bigInteger('host_id').notNullable();
        table.string('shortname', 80).notNullable();
        table.string('wwwroot', 255).notNullable();
        table.string('db_server', 200).notNullable();
        table.string('db_name', 64).notNullable();
        table.string('db_prefix', 20).notNullable();
        table.text('preview_old').nullable();
        table.text('preview_new').nullable();
        table.string('preview_note', 255).nullable();
        table.text('params').nullable();
        table.boolean('sensitive').notNullable().defaultTo(false);
        table.string('old_hash', 64).nullable();
        table.boolean('old_known').notNullable().defaultTo(false);
        table.string('status', 32).notNullable();
        table.text('old_value').nullable();
        table.text('new_value').nullable();
        table.text('message').nullable();
        table.text('returned_value').nullable();
        table.integer('attempts').notNullable().defaultTo(0);
        table.integer('duration_ms').nullable();
        table.bigInteger('started_at').nullable();
        table.bigInteger('finished_at').nullable();
        table.unique(['run_id', 'host_kind', 'host_id']);
        table.index(['run_id', 'status']);
      });
      await db.schema.createTable(t.events, (table) => {
        table.bigIncrements('id');
        table.bigInteger('run_id').notNullable().index();
        table.string('kind', 24).notNullable();
        table.string('actor', 255).notNullable();
        table.bigInteger('at').notNullable();
        table.text('detail').nullable();
      });
    },
    async down(db, t) {
      for (const table of [t.events, t.targets, t.runs]) await db.schema.dropTableIfExists(table);
    },
  },
  {
    // Long text parameters (up to 64 KiB of characters, four bytes each) and the values a run reads and records
    // outgrow TEXT; the secret parameters are kept encrypted, which makes them longer still.
    name: '0002_long_values',
    up: (db, t) => longValues(db, t, 'mediumtext'),
    down: (db, t) => longValues(db, t, 'text'),
  },
  {
    // Secret parameters are sealed, and hashes over secrets are HMACs, under the key this names.
    name: '0003_key_id',
    async up(db, t) {
      await db.schema.alterTable(t.runs, (table) => table.string('key_id', 16).nullable());
    },
    async down(db, t) {
      await db.schema.alterTable(t.runs, (table) => table.dropColumn('key_id'));
    },
  },
  {
    // One random id per master database: the queue prefix derives from it, and workers take only its jobs.
    name: '0004_installation',
    async up(db, t) {
      await db.schema.createTable(t.installation, (table) => {
        table.tinyint('one').primary();
        table.string('id', 32).notNullable();
        table.bigInteger('created_at').notNullable();
      });
    },
    async down(db, t) {
      await db.schema.dropTableIfExists(t.installation);
    },
  },
  {
    // Work on files or through Moodle's PHP runs on the node that mounts the target's dataroot; the plan names it.
    name: '0005_target_node',
    async up(db, t) {
      await db.schema.alterTable(t.targets, (table) => {
        table.string('node', 64).nullable();
        table.index(['status', 'node']);
      });
    },
    async down(db, t) {
      await db.schema.alterTable(t.targets, (table) => {
        table.dropIndex(['status', 'node']);
        table.dropColumn('node');
      });
    },
  },
  {
    // Where Slack shows a run (its approval request, its parent message and thread), so a restarted bot goes on there.
    name: '0006_slack_messages',
    async up(db, t) {
      await db.schema.createTable(t.slackMessages, (table) => {
        table.integer('run_id').unsigned().primary();
        table.string('channel', 32).notNullable();
        table.string('approval_ts', 32).nullable();
        table.bigInteger('approval_closed_at').nullable();
        table.string('parent_ts', 32).nullable();
        table.bigInteger('reported_at').nullable();
        table.bigInteger('created_at').notNullable();
        table.index(['reported_at', 'parent_ts']);
      });
    },
    async down(db, t) {
      await db.schema.dropTableIfExists(t.slackMessages);
    },
  },
  {
    // A target of a delayed command (VMoodle's adhoc delay and spread) runs this long after its run starts.
    name: '0007_target_delay',
    async up(db, t) {
      await db.schema.alterTable(t.targets, (table) => table.integer('delay_ms').notNullable().defaultTo(0));
    },
    async down(db, t) {
      await db.schema.alterTable(t.targets, (table) => table.dropColumn('delay_ms'));
    },
  },
  {
    // tool_delivery's journal: sessions (title, description, impact, report) and every delivery step's outcome per node.
    name: '0008_delivery_journal',
    async up(db, t) {
      await db.schema.createTable(t.deliverySessions, (table) => {
        table.bigIncrements('id');
        table.string('title', 255).notNullable();
        table.text('description').notNullable();
        table.text('impact').notNullable();
        table.string('opened_by', 255).notNullable();
        table.bigInteger('opened_at').notNullable();
        table.string('closed_by', 255).nullable();
        table.bigInteger('closed_at').nullable().index();
        table.text('followup').nullable();
        table.text('report', 'mediumtext').nullable();
        table.string('slack_channel', 32).nullable();
        table.string('slack_ts', 32).nullable();
      });
      await db.schema.createTable(t.deliveryLog, (table) => {
        table.bigIncrements('id');
        table.bigInteger('session_id').nullable().index();
        table.bigInteger('run_id').nullable();
        table.string('step', 16).notNullable();
        table.string('node', 64).notNullable();
        table.string('component', 255).nullable();
        table.text('comment').nullable();
        table.boolean('ok').notNullable();
        table.text('summary').notNullable();
        table.text('detail', 'mediumtext').nullable();
        table.string('by', 255).notNullable();
        table.bigInteger('at').notNullable();
      });
    },
    async down(db, t) {
      await db.schema.dropTableIfExists(t.deliveryLog);
      await db.schema.dropTableIfExists(t.deliverySessions);
    },
  },
  {
    // The security settings (src/core/security-settings.ts): written by admins, read by every process.
    name: '0009_settings',
    async up(db, t) {
      await db.schema.createTable(t.settings, (table) => {
        table.string('name', 64).primary();
        table.text('value', 'mediumtext').notNullable();
        table.string('updated_by', 255).notNullable();
        table.bigInteger('updated_at').notNullable();
      });
    },
    async down(db, t) {
      await db.schema.dropTableIfExists(t.settings);
    },
  },
  {
    // What a target's site held just before a run wrote it, recorded before the write (store.recordWriteIntent): the
    // truth a later attempt reports when the first one's result was lost.
    name: '0010_target_writes',
    async up(db, t) {
      await db.schema.createTable(t.targetWrites, (table) => {
        table.integer('target_id').unsigned().primary();
        table.text('old_value', 'mediumtext').nullable();
        table.bigInteger('recorded_at').notNullable();
      });
    },
    async down(db, t) {
      await db.schema.dropTableIfExists(t.targetWrites);
    },
  },
];

/** Brings the audit tables to the latest version; safe to call from every process at start. */
export async function migrateAudit(db: Knex, prefix: string): Promise<void> {
  const t = auditTables(prefix);
  await db.migrate.latest({
    tableName: t.migrations,
    migrationSource: {
      getMigrations: async () => MIGRATIONS,
      getMigrationName: (m: Migration) => m.name,
      getMigration: async (m: Migration) => ({ up: (k: Knex) => m.up(k, t), down: (k: Knex) => m.down(k, t) }),
    },
  });
}
