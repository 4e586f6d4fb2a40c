import { assertDatabaseName, assertTablePrefix } from '../../core/db/identifiers.ts';
import { defineCommand, type CommandContext, type CommandDef } from './command.ts';
import { instanceHost } from '../../registry/fleet.ts';
import { INSTANCE_DEFAULTS, type Instance, type InstanceFields } from '../../registry/instance.ts';
import type { NewInstance } from '../../registry/registry.ts';
import { mb, templateNameProblem } from '../../registry/templates.ts';
import { normaliseWwwroot, validateInstance, ValidationError } from '../../registry/validation.ts';
import { assertRewritable, createFromTemplate, LifecycleError, stepText } from '../lifecycle/create.ts';
import { datarootProblem, type DatarootGuard } from '../moodle/dataroot.ts';
import { destroyInstance, type KeptDatabase } from '../lifecycle/destroy.ts';
import { parseSiteSettings } from '../lifecycle/site-settings.ts';
import { takeSnapshot } from '../lifecycle/snapshot.ts';
import { readWwwroot } from '../moodle/site-identity.ts';
import { instanceTarget, type MoodleTarget } from '../moodle/target.ts';
import { serverName } from '../../core/security-settings.ts';
import { grantLogin, instanceLoginName, newLoginPassword } from '../moodle/db-logins.ts';
import { ParamError } from './params.ts';
import { syncRegisters } from './register-sync.ts';

/** `{shortname}` in a template name stands for each target's, so that one run can snapshot several. */
const templateName = (pattern: string, target: MoodleTarget, now = new Date()) =>
  (pattern || '{shortname}-{date}')
    .replaceAll('{shortname}', target.host.shortname.replace(/[^A-Za-z0-9._-]/g, '-'))
    .replaceAll('{date}', now.toISOString().replace(/[-:]/g, '').slice(0, 13));

/**
 * The folders a dataroot being made or removed must keep clear of: the master's, every other instance's (disabled
 * ones too) and the templates folder.
 */
async function datarootGuard(
  ctx: CommandContext,
  exceptId?: number,
): Promise<DatarootGuard & { others: KeptDatabase[] }> {
  const members = (await ctx.members()).filter(
    (m) => !(m.target.host.kind === 'instance' && m.target.host.id === exceptId),
  );
  const what = (t: MoodleTarget) => (t.host.kind === 'master' ? 'the master' : `instance ${t.host.shortname}`);
  return {
    root: ctx.lifecycle.datarootRoot,
    keep: [
      ...members.flatMap((m) =>
        m.target.dataroot ? [{ path: m.target.dataroot, what: `the dataroot of ${what(m.target)}` }] : [],
      ),
      { path: ctx.lifecycle.templates.dir, what: 'the templates folder' },
    ],
    others: members.map((m) => ({ target: m.target, what: what(m.target) })),
  };
}

export const snapshot = defineCommand({
  name: 'lifecycle/snapshot',
  category: 'lifecycle',
  summary:
    'Snapshot each target (or the master, --master) into a template: its tables dumped, its dataroot copied without caches, sessions and temp, and a manifest',
  params: [
    {
      name: 'template',
      type: 'text',
      default: '',
      label: 'Template name',
      help: "{shortname} and {date} stand for the target's short name and the time (default {shortname}-{date})",
      validate: (v) =>
        v ? templateNameProblem(v.replaceAll('{shortname}', 'x').replaceAll('{date}', '0')) : undefined,
    },
  ],
  destructive: false,
  reversible: false,
  idempotent: false,
  needsSource: false,
  // It changes no target; the template is new files beside the fleet.
  writes: false,
  runsOn: 'node',
  async preview(ctx, target, p) {
    const name = templateName(p.template, target);
    return {
      new: name,
      note: (await ctx.lifecycle.templates.exists(name))
        ? `a template '${name}' exists already: this target will fail`
        : undefined,
    };
  },
  async apply(ctx, target, p) {
    const manifest = await takeSnapshot(ctx.moodle, target, ctx.lifecycle.templates, templateName(p.template, target), {
      kind: target.host.kind,
      onStep: ctx.step,
    });
    return {
      status: 'applied',
      new: manifest.name,
      message: `${manifest.tables} tables, ${manifest.rows} rows (${mb(manifest.dumpBytes)} gzipped), dataroot ${mb(manifest.datarootBytes)}; Moodle ${manifest.release || manifest.version}`,
    };
  },
});

const MNET_VALUE = /^(-1|\d{1,5}|new)$/i;

const CREATE_PARAMS = [
  {
    name: 'template',
    type: 'text',
    default: '',
    label: 'Template',
    help: 'the template to create from; empty: register (or re-enable) an instance whose database exists already',
  },
  { name: 'shortname', type: 'text', label: 'Short name' },
  { name: 'name', type: 'text', label: 'Name' },
  { name: 'vhostname', type: 'text', label: 'wwwroot', help: 'https://host[/path]' },
  { name: 'vdbname', type: 'text', label: 'Database' },
  { name: 'vdbprefix', type: 'text', default: 'mdl_', label: 'Table prefix' },
  { name: 'vdatapath', type: 'text', label: 'Dataroot', help: 'under VMOODLE_DATAROOT_ROOT' },
  {
    name: 'dbserver',
    type: 'text',
    default: 'master',
    label: 'Database server',
    help: "'master', or an instance whose server the new one shares; it gets a login of its own there (no password is ever typed)",
  },
  {
    name: 'mnet',
    type: 'text',
    default: '-1',
    label: 'MNET',
    help: '-1 off, 0 no subnet, n a subnet, new the next free one',
    validate: (v: string) => (MNET_VALUE.test(v) ? undefined : `mnet: '${v}' must be -1, 0, a subnet number or new`),
  },
  { name: 'description', type: 'text', default: '', label: 'Description' },
  {
    name: 'settings',
    type: 'ltext',
    default: '',
    label: 'Settings',
    help: 'JSON: [{"plugin": null or "auth_cas", "name": "…", "value": "…"}], written into the new site (a nodelist\'s config_ and component| columns)',
    validate: (v: string) => {
      try {
        parseSiteSettings(v);
        return undefined;
      } catch (err) {
        return (err as Error).message;
      }
    },
  },
] as const;

type CreateParams = Record<(typeof CREATE_PARAMS)[number]['name'], string>;

/** The server a new instance's database goes to: the master's, or another instance's. */
async function serverOf(ctx: CommandContext, dbserver: string): Promise<Pick<MoodleTarget['db'], 'host' | 'port'>> {
  if (dbserver === 'master') return ctx.source.db;
  const other = await ctx.lifecycle.registry.get(dbserver);
  return instanceTarget(instanceHost(other), other).db;
}

type NewFields = NewInstance & { mnet: number | 'new' };
type Server = Pick<MoodleTarget['db'], 'host' | 'port' | 'user' | 'password'>;

/** The new instance's registry fields, unchecked (fieldProblems checks them), with the login of its own. */
function newFields(server: Server, p: CreateParams): NewFields {
  return {
    ...INSTANCE_DEFAULTS,
    name: p.name,
    shortname: p.shortname,
    vhostname: normaliseWwwroot(p.vhostname),
    description: p.description,
    vdbhost: `${server.host}:${server.port}`,
    vdblogin: server.user,
    vdbpass: server.password ?? '',
    vdbname: p.vdbname,
    vdbprefix: p.vdbprefix,
    vdatapath: p.vdatapath,
    mnet: p.mnet.toLowerCase() === 'new' ? 'new' : Number(p.mnet),
  };
}

/** The new instance's server, its login of its own, and its registry fields, none of them checked yet. */
async function siteFields(ctx: CommandContext, p: CreateParams) {
  const server = await serverOf(ctx, p.dbserver);
  const login = {
    user: instanceLoginName({ ...server, database: p.vdbname, prefix: p.vdbprefix }),
    password: newLoginPassword(),
  };
  return { server, login, fields: newFields({ ...server, ...login }, p) };
}

/**
 * The new instance: its registry fields with a login of its own (see db-logins.ts), and how it is reached while it
 * is made, with the server's provisioning account, which alone may create its database and login.
 */
async function newSite(
  ctx: CommandContext,
  p: CreateParams,
): Promise<{ target: MoodleTarget; fields: NewFields; login: { user: string; password: string } }> {
  const { server, login, fields } = await siteFields(ctx, p);
  const db = {
    host: server.host,
    port: server.port,
    database: assertDatabaseName(p.vdbname),
    prefix: assertTablePrefix(p.vdbprefix),
  };
  const provisioning = await ctx.lifecycle.provisioning(server);
  if (!provisioning)
    throw new ParamError(
      `dbserver: no provisioning account for ${serverName(server)}, which makes each new instance a login of its own: an admin seals one with vmoodle settings provisioning ${serverName(server)}`,
    );
  const host = {
    kind: 'instance' as const,
    id: 0,
    shortname: p.shortname,
    name: p.name,
    wwwroot: fields.vhostname,
    enabled: true,
  };
  return { target: { host, db: { ...db, ...provisioning }, dataroot: p.vdatapath }, fields, login };
}

/** Every problem with the new instance's fields at once, as the registry would find them, before anything is made. */
function fieldProblems(fields: NewFields, all: readonly Instance[]): void {
  const errors = validateInstance(
    { ...(fields as InstanceFields), mnet: fields.mnet === 'new' ? 1 : fields.mnet },
    all,
  );
  if (errors.length) throw new ValidationError(errors);
}

/** Create without a template: an instance whose database is there already, registered, or re-enabled when it was. */
async function registerExisting(ctx: CommandContext, p: CreateParams) {
  const { target, fields, login } = await newSite(ctx, p);
  const all = await ctx.lifecycle.registry.loadAll();
  const known = all.find((i) => i.shortname.toLowerCase() === p.shortname.toLowerCase());
  if (known) {
    if (normaliseWwwroot(known.vhostname) !== target.host.wwwroot)
      throw new LifecycleError(`${known.shortname} is registered with ${known.vhostname}, not ${target.host.wwwroot}`);
    if (known.enabled)
      return { status: 'already_applied' as const, message: `${known.shortname} is registered and enabled` };
    await ctx.lifecycle.registry.setEnabled([String(known.id)], true);
    return {
      status: 'applied' as const,
      new: 'enabled',
      message: `${known.shortname} was registered, disabled: enabled again`,
    };
  }
  fieldProblems(fields, all);
  const found = await ctx.moodle.withConnection(target, (conn) =>
    readWwwroot(conn, target.db.database, target.db.prefix),
  );
  if (normaliseWwwroot(found) !== target.host.wwwroot)
    throw new LifecycleError(
      `${target.db.database} (prefix ${target.db.prefix}) is the Moodle of ${found}, not ${target.host.wwwroot}: nothing was registered`,
    );
  await ctx.moodle.withConnection(target, (conn) =>
    grantLogin(conn, login.user, login.password, { name: target.db.database }),
  );
  const instance = await ctx.lifecycle.registry.add(fields);
  return {
    status: 'applied' as const,
    new: 'registered',
    message: `registered ${instance.shortname} (id ${instance.id}) on its existing database`,
  };
}

export const create = defineCommand({
  name: 'lifecycle/create',
  category: 'lifecycle',
  summary:
    'Create an instance from a template as one step (database, copy made a site of its own, MNET key, dataroot, registry row), or register one whose database exists',
  params: CREATE_PARAMS,
  destructive: false,
  reversible: false,
  idempotent: false,
  needsSource: false,
  writes: true,
  runsOn: 'node',
  placedBy: (p) => p.vdatapath,
  makes: async (ctx, p) => (await newSite(ctx, p)).target,
  async check(ctx, p) {
    const { fields } = await siteFields(ctx, p);
    if (!p.template) {
      if (p.settings)
        throw new ParamError('settings are written only into a site made from a template, never into an existing one');
      return;
    }
    const problem = await datarootProblem(p.vdatapath, await datarootGuard(ctx));
    if (problem) throw new ParamError(`vdatapath: ${problem}`);
    assertRewritable(await ctx.lifecycle.templates.get(p.template));
    fieldProblems(fields, await ctx.lifecycle.registry.loadAll());
  },
  async preview(_ctx, _target, p) {
    return {
      new: `${normaliseWwwroot(p.vhostname)} (${p.shortname})`,
      note: p.template
        ? `from template ${p.template}: database ${p.vdbname} (prefix ${p.vdbprefix}), dataroot ${p.vdatapath}, MNET ${p.mnet}`
        : `registers the existing database ${p.vdbname} (prefix ${p.vdbprefix})`,
    };
  },
  async apply(ctx, _master, p) {
    if (!p.template) return registerExisting(ctx, p);
    const { target, fields, login } = await newSite(ctx, p);
    const guard = await datarootGuard(ctx);
    const subnet = fields.mnet;
    const created = await createFromTemplate(
      {
        access: ctx.moodle,
        templates: ctx.lifecycle.templates,
        guard,
        keyDays: ctx.mnet.keyDays,
        register: (f) => ctx.lifecycle.registry.add({ ...f, mnet: subnet }),
        onStep: (step) => ctx.step(stepText(step)),
      },
      p.template,
      {
        target,
        fields: { ...fields, mnet: subnet === 'new' ? 1 : subnet },
        login,
        settings: parseSiteSettings(p.settings),
      },
    );
    const blocks = created.unreadableBlocks.length
      ? `; blocks ${created.unreadableBlocks.join(', ')} could not be read and keep the template's address`
      : '';
    return {
      status: 'applied',
      new: created.instance.vhostname,
      message: `created ${created.instance.shortname} (id ${created.instance.id}) from ${created.manifest.name}, Moodle ${created.manifest.release || created.manifest.version}; ${created.blocks} block settings rewritten${created.settings ? `; ${created.settings} settings of its own written` : ''}${blocks}`,
    };
  },
});

export const destroy = defineCommand({
  name: 'lifecycle/destroy',
  category: 'lifecycle',
  summary:
    "Destroy disabled instances: a checked final snapshot, their database, dataroot, peers' MNET rows and registry row (destructive)",
  params: [
    {
      name: 'snapshot',
      type: 'enum',
      choices: ['keep', 'skip'],
      default: 'keep',
      label: 'Final snapshot',
      help: 'skip: no final snapshot is taken (nothing can be restored)',
    },
  ],
  destructive: true,
  reversible: false,
  idempotent: false,
  needsSource: false,
  writes: true,
  runsOn: 'node',
  async preview(ctx, target, p) {
    const instance = await ctx.lifecycle.registry.get(String(target.host.id));
    const problem = instance.vdatapath
      ? await datarootProblem(instance.vdatapath, await datarootGuard(ctx, instance.id))
      : undefined;
    const notes = [
      instance.enabled ? 'ENABLED: will be refused (disable it first)' : '',
      problem ? `its dataroot will be refused: ${problem}` : '',
      p.snapshot === 'skip'
        ? 'NO final snapshot: nothing can be restored'
        : 'a final snapshot is taken and checked first',
    ].filter(Boolean);
    return {
      old: `database ${target.db.database} (prefix ${target.db.prefix}), dataroot ${instance.vdatapath || 'none'}`,
      new: 'destroyed',
      note: notes.join('; '),
    };
  },
  async apply(ctx, target, p) {
    const instance = await ctx.lifecycle.registry.get(String(target.host.id));
    const guard = await datarootGuard(ctx, instance.id);
    const provisioning = await ctx.lifecycle.provisioning(target.db);
    const done = await destroyInstance(
      {
        provisioning: provisioning ? { ...target, db: { ...target.db, ...provisioning } } : undefined,
        access: ctx.moodle,
        templates: ctx.lifecycle.templates,
        guard,
        others: guard.others,
        finalSnapshot: p.snapshot !== 'skip',
        unregister: (i) => ctx.lifecycle.registry.remove(i.id),
        onStep: (step, detail) => ctx.step(detail ? `${step}: ${detail}` : step),
      },
      target,
      instance,
    );
    const message = [
      done.snapshot
        ? `final snapshot ${done.snapshot.name} (checked: ${done.snapshot.tables} tables)`
        : 'no final snapshot',
      done.dropped === 'database'
        ? `database ${target.db.database} dropped`
        : `the ${target.db.prefix} tables of ${target.db.database} dropped (the database is shared)`,
      done.datarootRemoved ? `dataroot ${instance.vdatapath} removed` : 'no dataroot to remove',
      done.loginDropped ? `login ${instance.vdblogin} dropped` : '',
      done.peersCleaned.length ? `removed from ${done.peersCleaned.length} peers` : '',
      done.peersFailed.length ? `NOT removed from ${done.peersFailed.join(', ')}` : '',
    ]
      .filter(Boolean)
      .join('; ');
    return { status: 'applied', old: instance.vhostname, new: 'destroyed', message };
  },
});

export const LIFECYCLE_COMMANDS: readonly CommandDef[] = [snapshot, create, destroy, syncRegisters];
