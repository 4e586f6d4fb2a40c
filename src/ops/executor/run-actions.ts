import { errorKind, OpsError } from '../../core/errors.ts';
import { errorFields } from '../../core/log.ts';
import { findCommand } from '../commands/index.ts';
import type { CommandDef, Params } from '../commands/command.ts';
import { MASK } from '../moodle/sensitive.ts';
import { serverKey } from '../moodle/target.ts';
import {
  planHash,
  planNewInstances,
  previewTarget,
  runKey,
  sourceHostOf,
  storePlan,
  targetIdentity,
  type Plan,
} from './planner.ts';
import { ParamError, resolveParams, secretNames } from '../commands/params.ts';
import { reportWaiting } from './node-watch.ts';
import { placeTargets } from './placement.ts';
import { endCancelled, flowSuffixes } from './recovery.ts';
import type { RunServices } from './run-services.ts';
import { DONE_OK, FINAL_STATES, WARNING, type RunRow, type RunState, type TargetRow } from './run-model.ts';

export class RunControlError extends errorKind('run_state') {}

/** The run's parameters with its secret ones opened and put back, for the executor only (masked once it ended). */
export function runParams(rt: RunServices, run: RunRow): Params {
  const secrets: Record<string, string> = run.secret_params ? JSON.parse(rt.keyring.open(run.secret_params)) : {};
  rt.secrets.add(...Object.values(secrets));
  return { ...JSON.parse(run.params), ...secrets };
}

/** One target's parameters; a masked secret is never handed to a command as if it were the value. */
export function targetParams(rt: RunServices, run: RunRow, target: TargetRow): Params {
  const params = { ...runParams(rt, run), ...(target.params ? JSON.parse(target.params) : {}) };
  if (!run.secret_params && [...secretNames(findCommand(run.command), params)].some((k) => params[k] === MASK)) {
    throw new RunControlError(
      'the secret parameters of this run were let go of when it ended; retry it and give them again',
    );
  }
  return params;
}

/**
 * Checks that what is about to run is what was shown: the stored plan still hashes to the hash the operator saw,
 * and every frozen target still has the same wwwroot and database in the registry.
 */
async function verifyPlan(
  rt: RunServices,
  run: RunRow,
  targets: TargetRow[],
  expectedHash: string | undefined,
): Promise<void> {
  if (expectedHash !== undefined && expectedHash !== run.plan_hash) {
    throw new OpsError('stale_plan', `run ${run.id} is not the plan that was shown (its parameters or targets differ)`);
  }
  if (planHash(rt, findCommand(run.command), runParams(rt, run), run.key_id, run.source, targets) !== run.plan_hash) {
    throw new OpsError('stale_plan', `run ${run.id} was changed after it was planned`);
  }
  const fleet = await rt.registry.loadFleet();
  const changed: string[] = [];
  for (const t of targets) {
    // The master has no row, and an instance being made has none yet.
    if (t.host_kind !== 'instance') continue;
    const host = fleet.hosts.find((h) => h.id === t.host_id);
    if (!host) {
      changed.push(`${t.shortname} (removed)`);
      continue;
    }
    const { db } = rt.moodleTarget(fleet, host);
    if (
      host.wwwroot !== t.wwwroot ||
      serverKey(db) !== t.db_server ||
      db.database !== t.db_name ||
      db.prefix !== t.db_prefix
    ) {
      changed.push(`${t.shortname} (database or wwwroot changed)`);
    }
  }
  if (changed.length > 0) {
    throw new OpsError(
      'stale_plan',
      `the registry changed since run ${run.id} was planned: ${changed.slice(0, 10).join(', ')}${changed.length > 10 ? ` and ${changed.length - 10} more` : ''}`,
    );
  }
}

/**
 * Starts a planned run: one BullMQ flow, the run as parent and one child per target. The state change is a
 * conditional update, so starting twice starts once; job ids are fixed, so a re-added flow adds nothing.
 */
export async function startRun(
  rt: RunServices,
  runId: number,
  actor: string,
  expectedHash?: string,
  from: RunState = 'planned',
  onClaimed?: () => Promise<void>,
): Promise<{ started: boolean; run: RunRow }> {
  const run = await rt.store.getRun(runId);
  if (run.state === 'awaiting_approval' && from !== 'awaiting_approval')
    throw new RunControlError(`run ${runId} is awaiting approval by a second person`);
  if (run.state !== from) return { started: false, run };
  const targets = await rt.store.getTargets(runId);
  await verifyPlan(rt, run, targets, expectedHash);
  if (!(await rt.store.transition(runId, [from], 'running', { started_at: Date.now() }))) {
    return { started: false, run: await rt.store.getRun(runId) };
  }
  await onClaimed?.();
  await rt.flows.add(rt.runFlow(await rt.store.getRun(runId), targets));
  await rt.store.addEvent(runId, 'start', actor);
  await rt.progress.publish(runId, { type: 'state', state: 'running' });
  await reportWaiting(rt, runId, targets);
  return { started: true, run: await rt.store.getRun(runId) };
}

/** Targets not yet started are not started; started ones finish and are reported. */
export async function cancelRun(rt: RunServices, runId: number, actor: string): Promise<RunRow> {
  const run = await rt.store.getRun(runId);
  if (FINAL_STATES.includes(run.state)) throw new RunControlError(`run ${runId} has already ended (${run.state})`);
  await rt.gate.cancel(runId);
  if (await rt.store.transition(runId, ['planned', 'awaiting_approval'], 'cancelled', { finished_at: Date.now() })) {
    await rt.progress.publish(runId, { type: 'state', state: 'cancelled' });
  } else if (await rt.store.transition(runId, ['running'], 'cancelling')) {
    await rt.progress.publish(runId, { type: 'state', state: 'cancelling' });
    await promoteDelayed(rt, runId);
  }
  await rt.store.addEvent(runId, 'cancel', actor);
  // With no worker alive nobody would end it: the cancel does, so that a cancel always reaches a final state.
  if ((await rt.store.getRun(runId)).state === 'cancelling' && (await rt.queue.getWorkersCount()) === 0)
    await endCancelled(rt, runId);
  return rt.store.getRun(runId);
}

/**
 * A cancelled run's targets still waiting for their time (a delayed command) are queued now, so that they end as
 * cancelled at once instead of when they were due. One already taken by a worker runs its course.
 */
async function promoteDelayed(rt: RunServices, runId: number): Promise<void> {
  const suffixes = await flowSuffixes(rt, runId);
  for (const target of (await rt.store.getTargets(runId)).filter((t) => t.delay_ms > 0 && t.status === 'pending')) {
    try {
      for (const suffix of suffixes) {
        const job = await rt.queueOf(target.node).getJob(`${rt.targetJobId(runId, target.id)}${suffix}`);
        if (job && (await job.isDelayed())) await job.promote();
      }
    } catch (err) {
      rt.log.warn(
        { ...errorFields(err), run: runId, target: target.shortname },
        'a delayed target of a cancelled run could not be queued now; it is cancelled when it is due',
      );
    }
  }
}

/** Lets a canary run go on past its first targets. */
export async function goRun(rt: RunServices, runId: number, actor: string): Promise<void> {
  const run = await rt.store.getRun(runId);
  if (run.canary === 0) throw new RunControlError(`run ${runId} has no canary to wait for`);
  if (!(await rt.store.openCanary(runId))) throw new RunControlError(`run ${runId} already went on past its canary`);
  await rt.store.addEvent(runId, 'go', actor);
}

const succeeded = (t: TargetRow) => DONE_OK.includes(t.status) || WARNING.includes(t.status);

/**
 * The parameters of a run made from an ended one: its secrets were let go of when it ended, so they must be given
 * again; nothing else may be.
 */
function derivedParams(rt: RunServices, command: CommandDef, parent: RunRow, given: Params): Params {
  const recorded = runParams(rt, parent);
  const secret = secretNames(command, recorded);
  const extra = Object.keys(given).filter((k) => !secret.has(k));
  if (extra.length > 0)
    throw new ParamError(
      `only a secret the run wrote can be given again; ${extra.join(', ')} is not one (plan a new run to change it)`,
    );
  const missing = parent.secret_params ? [] : [...secret].filter((k) => !(k in given));
  if (missing.length > 0) {
    throw new ParamError(
      `run ${parent.id} wrote a secret (${missing.join(', ')}), which is not kept after a run ends; give it again with the retry, e.g. ${missing[0]}=…`,
    );
  }
  return resolveParams(command, { ...recorded, ...given });
}

/**
 * A new run made from an ended one, on some of its targets. `paramsFor` gives a target parameters of its own;
 * `expectedOld`, the value each target must still hold (what the first run wrote): a target that no longer holds it
 * is compared against it all the same, so that it ends as a conflict rather than being overwritten.
 */
async function derivedPlan(
  rt: RunServices,
  parent: RunRow,
  kind: 'retry' | 'revert',
  picked: TargetRow[],
  actor: string,
  paramsFor: (t: TargetRow) => Params | undefined,
  given: Params = {},
  expectedOld?: (t: TargetRow) => string | null,
): Promise<Plan> {
  const command = findCommand(parent.command);
  if (command.makes) {
    const lines = picked.map((t) => ({ ...(t.params ? (JSON.parse(t.params) as Params) : {}), ...given }));
    return planNewInstances(
      rt,
      {
        command: command.name,
        lines,
        requestedBy: actor,
        via: parent.via as never,
        maxFailures: String(parent.max_failures),
      },
      undefined,
      { kind, parentId: parent.id },
    );
  }
  const params = derivedParams(rt, command, parent, given);
  const keyId = runKey(rt, command, params);
  const fleet = await rt.registry.loadFleet();
  const sourceHost = sourceHostOf(fleet, parent.source);
  if (!sourceHost) throw new RunControlError(`the source host of run ${parent.id} is no longer in the registry`);
  const source = rt.moodleTarget(fleet, sourceHost);
  const targets = picked.map((t) => {
    const host = fleet.byKindAndId(t.host_kind, t.host_id);
    if (!host) throw new RunControlError(`${t.shortname} is no longer in the registry`);
    return rt.moodleTarget(fleet, host);
  });
  const { placed, leftOut } = placeTargets(rt.config.nodes, command, params, targets);
  if (leftOut.length > 0)
    throw new RunControlError(
      `${leftOut.length} target${leftOut.length === 1 ? '' : 's'} of run ${parent.id} can no longer run: ${leftOut.slice(0, 3).join('; ')}`,
    );
  const rows = await Promise.all(
    placed.map(async (one, position) => {
      const original = picked[position] as TargetRow;
      const own = paramsFor(original);
      const preview = await previewTarget(rt, command, source, one, { ...params, ...own }, keyId, fleet);
      const expected = expectedOld?.(original);
      const changed =
        expected !== undefined && preview.old_known && preview.preview_old !== expected
          ? {
              preview_note:
                `changed since run ${parent.id} wrote ${expected ?? '(unset)'}: a conflict, not overwritten`.slice(
                  0,
                  255,
                ),
              old_hash: rt.keyring.fingerprint(keyId, Boolean(preview.sensitive), expected),
            }
          : {};
      return {
        ...targetIdentity(one.target, position),
        ...preview,
        ...changed,
        params: own ? JSON.stringify(own) : null,
      };
    }),
  );
  return storePlan(rt, {
    command,
    params,
    keyId,
    source: sourceHost,
    rows,
    canary: 0,
    maxFailures: parent.max_failures,
    kind,
    parentId: parent.id,
    request: { selector: JSON.parse(parent.selector), requestedBy: actor, via: parent.via as never },
  });
}

/**
 * A new run, linked to the old one, of its targets that did not succeed (or of one host). Secrets the run wrote
 * are given again in `given`.
 */
export async function retryRun(
  rt: RunServices,
  runId: number,
  actor: string,
  host?: string,
  given: Params = {},
): Promise<Plan> {
  const run = await rt.store.getRun(runId);
  if (!FINAL_STATES.includes(run.state))
    throw new RunControlError(`run ${runId} is still ${run.state}; retry it once it has ended`);
  const targets = await rt.store.getTargets(runId);
  const picked = host
    ? targets.filter(
        (t) =>
          t.shortname.toLowerCase() === host.toLowerCase() ||
          t.wwwroot.toLowerCase() === host.toLowerCase().replace(/\/+$/, ''),
      )
    : targets.filter((t) => !succeeded(t));
  if (picked.length === 0)
    throw new RunControlError(
      host ? `run ${runId} has no target named '${host}'` : `every target of run ${runId} succeeded; nothing to retry`,
    );
  return derivedPlan(rt, run, 'retry', picked, actor, () => undefined, given);
}

/** A new run that puts back the old values a reversible command recorded, on the targets it changed. */
export async function revertRun(rt: RunServices, runId: number, actor: string): Promise<Plan> {
  const run = await rt.store.getRun(runId);
  const command = findCommand(run.command);
  if (!command.reversible || !command.revertParams) throw new RunControlError(`${command.name} cannot be reverted`);
  if (!FINAL_STATES.includes(run.state))
    throw new RunControlError(`run ${runId} is still ${run.state}; revert it once it has ended`);
  const targets = await rt.store.getTargets(runId);
  const changed = targets.filter((t) => t.status === 'applied' || WARNING.includes(t.status));
  if (changed.some((t) => t.sensitive))
    throw new RunControlError(
      `run ${runId} changed a sensitive setting; its old value was never stored, so it cannot be reverted`,
    );
  const known = changed.filter((t) => t.old_known);
  if (known.length === 0)
    throw new RunControlError(`run ${runId} changed no target whose old value is known; nothing to revert`);
  const params = runParams(rt, run);
  return derivedPlan(
    rt,
    run,
    'revert',
    known,
    actor,
    (t) => {
      const back = (command.revertParams as NonNullable<typeof command.revertParams>)(params, t.old_value);
      return Object.fromEntries(Object.entries(back).filter(([k, v]) => params[k] !== v));
    },
    {},
    (t) => t.new_value,
  );
}
