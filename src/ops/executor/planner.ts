import { commandContext } from './command-contexts.ts';
import { KEYRING_SETTING, KeyringError } from '../../core/keyring.ts';
import type { Fleet, Host } from '../../registry/fleet.ts';
import { leftOutLine, resolveTargets, SelectionError, type Selector } from '../../registry/selector.ts';
import { findCommand } from '../commands/index.ts';
import { byValueProbe } from '../commands/sql.ts';
import { isDestructive, type CommandDef, type Params, type TargetPreview } from '../commands/command.ts';
import { errorFields } from '../../core/log.ts';
import { maskIf } from '../moodle/sensitive.ts';
import { serverKey, type MoodleTarget } from '../moodle/target.ts';
import { ParamError, publicParams, resolveParams, secretNames, secretParams } from '../commands/params.ts';
import { describeError } from '../../core/db/db-errors.ts';
import { PlanError, placeTargets, placementNote, type PlacedTarget } from './placement.ts';
import type { RunServices } from './run-services.ts';
import { mapLimit } from '../../core/map-limit.ts';
import type { NewTarget, RunRow, TargetRow } from './run-model.ts';

export interface PlanRequest {
  command: string;
  params: Readonly<Record<string, string>>;
  selector: Selector;
  requestedBy: string;
  via: 'cli' | 'console' | 'slack' | 'schedule';
  /** Run this many targets first, then wait for a go. */
  canary?: number;
  /** Failures allowed before no new target starts: a count, or a percentage of the targets ("10%"). */
  maxFailures?: string;
  /** VMoodle's "retrieve by value": a returning SQL; only targets where it returns a non-empty row stay. */
  byValue?: string;
}

export interface Plan {
  run: RunRow;
  targets: TargetRow[];
  command: CommandDef;
  /** Rows the selector would have picked but that break a registry rule, one line each. */
  leftOut?: string[];
}

const PREVIEW_CONCURRENCY = 16;

export function parseMaxFailures(spec: string | undefined, targets: number): number {
  const raw = spec ?? '10%';
  const m = /^(\d{1,9})(%?)$/.exec(raw.trim());
  const n = Number(m?.[1]);
  if (!m || (m[2] ? n > 100 : n > targets))
    throw new PlanError(`--max-failures '${raw}' must be a count from 0 to ${targets} or a percentage from 0% to 100%`);
  // A percentage brake of a small run would round down to 0, stopping it at its first failure: it is at least 1.
  return m[2] ? (n === 0 ? 0 : Math.max(1, Math.floor((targets * n) / 100))) : n;
}

/**
 * The identity of a plan: command, every parameter, the source and each frozen target with its database, as an
 * HMAC under the run's key. Someone who can write the master database but holds no key cannot make a plan that
 * matches its hash; a secret parameter enters it as an HMAC too, so the hash, shown and carried in buttons,
 * reveals nothing.
 */
export function planHash(
  rt: RunServices,
  command: CommandDef,
  params: Params,
  keyId: string | null,
  source: string,
  targets: ReadonlyArray<
    Pick<TargetRow, 'host_kind' | 'host_id' | 'wwwroot' | 'db_server' | 'db_name' | 'db_prefix' | 'params'>
  >,
): string {
  const secret = secretNames(command, params);
  const canonical = JSON.stringify({
    command: command.name,
    params: Object.entries(params)
      .map(([k, v]) => [k, secret.has(k) ? `hmac:${rt.keyring.mac(keyId, v)}` : v])
      .sort(([a], [b]) => (a as string).localeCompare(b as string)),
    source,
    targets: targets.map((t) => [t.host_kind, t.host_id, t.wwwroot, t.db_server, t.db_name, t.db_prefix, t.params]),
  });
  return rt.keyring.mac(keyId, canonical);
}

export const sourceKey = (host: Host) => `${host.kind}:${host.id}:${host.wwwroot}`;

/** The source host a run recorded, as the registry has it now. */
export function sourceHostOf(fleet: Fleet, key: string): Host | undefined {
  const [kind, id] = key.split(':');
  return fleet.byKindAndId(kind as string, Number(id));
}

/**
 * Keeps the targets where the --by-value statement returns a value. A target where it fails is left out and named
 * with why, like a registry row that breaks a rule; none left is an error.
 */
async function keepByValue(
  rt: RunServices,
  targets: MoodleTarget[],
  statement: string,
): Promise<{ kept: MoodleTarget[]; leftOut: string[] }> {
  const probe = byValueProbe(statement);
  const outcome = await mapLimit(targets, PREVIEW_CONCURRENCY, async (target) => {
    try {
      return { keep: await probe(commandContext(rt, target), target) };
    } catch (err) {
      rt.log.warn({ ...errorFields(err), target: target.host.shortname }, '--by-value could not be read on a target');
      return {
        keep: false,
        problem: `left out ${target.host.shortname} (${target.host.wwwroot}): --by-value could not be read: ${describeError(err)}`,
      };
    }
  });
  const kept = targets.filter((_, i) => outcome[i]?.keep);
  if (kept.length === 0)
    throw new SelectionError(
      `--by-value left out all ${targets.length} targets: the query returned nothing on any of them`,
    );
  return { kept, leftOut: outcome.flatMap((o) => (o.problem ? [o.problem] : [])) };
}

/** A delayed command's wait for one target: its delay and a random share of its spread, to the second. */
function targetDelay(command: CommandDef, params: Params): number {
  const delay = command.delay?.(params);
  return delay ? Math.round((delay.minutes + Math.random() * delay.spread) * 60) * 1000 : 0;
}

/** A wait as people read it: "1 h 12 min". */
export function waitText(ms: number): string {
  const minutes = Math.round(ms / 60_000);
  return minutes >= 60
    ? `${Math.floor(minutes / 60)} h${minutes % 60 ? ` ${minutes % 60} min` : ''}`
    : `${minutes} min`;
}

/** What the plan records of one target: its database, the preview read now (the CAS reference), when it runs. */
export async function previewTarget(
  rt: RunServices,
  command: CommandDef,
  source: MoodleTarget,
  { target, node }: PlacedTarget,
  params: Params,
  keyId: string | null,
  fleet?: Fleet,
): Promise<
  Pick<
    NewTarget,
    'node' | 'preview_old' | 'preview_new' | 'preview_note' | 'sensitive' | 'old_hash' | 'old_known' | 'delay_ms'
  >
> {
  let preview: TargetPreview = {};
  let readable = true;
  if (command.preview) {
    try {
      preview = await command.preview(commandContext(rt, source, command, false, fleet), target, params);
    } catch (err) {
      readable = false;
      preview = { note: `not readable now: ${describeError(err)}`.slice(0, 255) };
    }
  }
  const sensitive = preview.sensitive === true;
  const oldKnown = readable && preview.old !== undefined;
  const delayMs = targetDelay(command, params);
  const note = [
    preview.note,
    placementNote(command, params, node),
    delayMs ? `runs ${waitText(delayMs)} after the start` : '',
  ]
    .filter(Boolean)
    .join(' · ');
  return {
    node,
    delay_ms: delayMs,
    preview_old: maskIf(sensitive, preview.old),
    preview_new: maskIf(sensitive, preview.new),
    preview_note: note ? note.slice(0, 255) : null,
    sensitive,
    old_hash: oldKnown ? rt.keyring.fingerprint(keyId, sensitive, preview.old ?? null) : null,
    old_known: oldKnown,
  };
}

export function targetIdentity(
  target: MoodleTarget,
  position: number,
): Pick<
  NewTarget,
  'position' | 'host_kind' | 'host_id' | 'shortname' | 'wwwroot' | 'db_server' | 'db_name' | 'db_prefix'
> {
  return {
    position,
    host_kind: target.host.kind,
    host_id: target.host.id,
    shortname: target.host.shortname,
    wwwroot: target.host.wwwroot,
    db_server: serverKey(target.db),
    db_name: target.db.database,
    db_prefix: target.db.prefix,
  };
}

/** The key a new run is signed with and seals its secrets with; without one nothing is planned or read. */
export function runKey(rt: RunServices, command: CommandDef, params: Params): string {
  const key = rt.keyring.currentId;
  if (key) return key;
  const secret = [...secretNames(command, params)];
  if (secret.length > 0)
    throw new ParamError(
      `${command.name}: ${secret.join(', ')} holds a secret; set ${KEYRING_SETTING} so it can be kept encrypted while the run waits`,
    );
  throw new KeyringError(
    `plans are signed under a secret key so that nobody without it can forge one: set ${KEYRING_SETTING}`,
  );
}

/**
 * Makes a plan: resolves the selector once, freezes the target list, reads a preview of each target, and stores it
 * all as a run in state `planned`. Nothing runs until the plan is started by its id and hash.
 */
export async function createPlan(rt: RunServices, request: PlanRequest, fleet?: Fleet): Promise<Plan> {
  const command = findCommand(request.command);
  const params = resolveParams(command, request.params);
  const keyId = runKey(rt, command, params);
  const loaded = fleet ?? (await rt.registry.loadFleet());
  if (command.makes) return planNewInstances(rt, { ...request, lines: [request.params] }, loaded);
  const selection = resolveTargets(loaded, request.selector);
  const source = rt.moodleTarget(loaded, selection.source);
  let targets = selection.targets.map((host) => rt.moodleTarget(loaded, host));
  await command.check?.(commandContext(rt, source, command, false, loaded), params);
  const byValue = request.byValue ? await keepByValue(rt, targets, request.byValue) : undefined;
  if (byValue) targets = byValue.kept;
  const placement = placeTargets(rt.config.nodes, command, params, targets);
  if (placement.placed.length === 0)
    throw new SelectionError(
      `no node holds any of the ${targets.length} targets: ${placement.leftOut.slice(0, 3).join('; ')}`,
    );
  const placed = placement.placed;
  const canary = request.canary ?? 0;
  if (!Number.isInteger(canary) || canary < 0 || canary > placed.length)
    throw new PlanError(`--canary takes a whole number from 0 to ${placed.length} (the number of targets)`);
  const maxFailures = parseMaxFailures(request.maxFailures, placed.length);

  const rows: NewTarget[] = await mapLimit(placed, PREVIEW_CONCURRENCY, async (one, position) => ({
    ...targetIdentity(one.target, position),
    ...(await previewTarget(rt, command, source, one, params, keyId, loaded)),
    params: null,
  }));
  const plan = await storePlan(rt, {
    command,
    params,
    keyId,
    source: selection.source,
    rows,
    request,
    canary,
    maxFailures,
    kind: 'run',
    parentId: null,
  });
  return {
    ...plan,
    leftOut: [...selection.leftOut.map(leftOutLine), ...(byValue?.leftOut ?? []), ...placement.leftOut],
  };
}

/**
 * A plan of a command that makes instances: one target a set of parameters (a line of a nodelist), each checked,
 * placed by its own dataroot and previewed, identified by the database it will have, so that two are made at once
 * only on different databases.
 */
export async function planNewInstances(
  rt: RunServices,
  request: Omit<PlanRequest, 'params' | 'selector'> & { lines: ReadonlyArray<Readonly<Record<string, string>>> },
  fleet?: Fleet,
  derived: Pick<StoredPlanInput, 'kind' | 'parentId'> = { kind: 'run', parentId: null },
): Promise<Plan> {
  const command = findCommand(request.command);
  const makes = command.makes;
  if (!makes) throw new PlanError(`${command.name} does not make instances`);
  if (request.lines.length === 0) throw new PlanError('no instance to make');
  const loaded = fleet ?? (await rt.registry.loadFleet());
  const selection = resolveTargets(loaded, { master: true });
  const master = rt.moodleTarget(loaded, selection.source);
  const ctx = commandContext(rt, master, command, false, loaded);
  const lines = request.lines.map((line) => resolveParams(command, line));
  const keyId = runKey(rt, command, lines[0] as Params);
  const rows: NewTarget[] = await mapLimit(lines, PREVIEW_CONCURRENCY, async (params, position) => {
    await command.check?.(ctx, params);
    const made = await makes(ctx, params);
    const placement = placeTargets(rt.config.nodes, command, params, [master]);
    const placed = placement.placed[0];
    if (!placed)
      throw new SelectionError(`${made.host.shortname}: ${placement.leftOut[0] ?? 'no node holds its dataroot'}`);
    return {
      position,
      host_kind: 'new',
      host_id: position + 1,
      shortname: made.host.shortname,
      wwwroot: made.host.wwwroot,
      db_server: serverKey(made.db),
      db_name: made.db.database,
      db_prefix: made.db.prefix,
      ...(await previewTarget(rt, command, master, placed, params, keyId, loaded)),
      params: JSON.stringify(publicParams(command, params)),
    };
  });
  const canary = request.canary ?? 0;
  if (!Number.isInteger(canary) || canary < 0 || canary > rows.length)
    throw new PlanError(`--canary takes a whole number from 0 to ${rows.length} (the number of instances)`);
  return storePlan(rt, {
    command,
    params: {},
    keyId,
    source: selection.source,
    rows,
    request: { ...request, selector: { master: true } },
    canary,
    maxFailures: parseMaxFailures(request.maxFailures, rows.length),
    ...derived,
  });
}

export interface StoredPlanInput {
  command: CommandDef;
  params: Params;
  /** The key its secrets are sealed under (see runKey). */
  keyId: string | null;
  source: Host;
  rows: NewTarget[];
  request: Pick<PlanRequest, 'selector' | 'requestedBy' | 'via'>;
  canary: number;
  maxFailures: number;
  kind: RunRow['kind'];
  parentId: number | null;
}

export async function storePlan(rt: RunServices, input: StoredPlanInput): Promise<Plan> {
  const { command, params, keyId } = input;
  const secrets = secretParams(command, params);
  rt.secrets.add(...Object.values(secrets));
  const runId = await rt.store.createRun(
    {
      parent_id: input.parentId,
      kind: input.kind,
      command: command.name,
      params: JSON.stringify(publicParams(command, params)),
      secret_params: Object.keys(secrets).length > 0 ? rt.keyring.seal(JSON.stringify(secrets)) : '',
      key_id: keyId,
      selector: JSON.stringify(input.request.selector),
      source: sourceKey(input.source),
      plan_hash: planHash(rt, command, params, keyId, sourceKey(input.source), input.rows),
      state: 'planned',
      requested_by: input.request.requestedBy,
      via: input.request.via,
      canary: input.canary,
      max_failures: input.maxFailures,
      target_count: input.rows.length,
      destructive: isDestructive(command, params),
    },
    input.rows,
  );
  await rt.store.addEvent(runId, 'plan', input.request.requestedBy, `${input.rows.length} targets`);
  return { run: await rt.store.getRun(runId), targets: await rt.store.getTargets(runId), command };
}
