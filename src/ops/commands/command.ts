import type { MoodleDb, MoodleTarget } from '../moodle/target.ts';
import type { Role } from '../../core/security-settings.ts';
import type { PhpScripts } from '../moodle/php.ts';
import type { FleetView, MoodleSite } from '../moodle/site.ts';
import type { CacheOutcome } from '../moodle/cache.ts';
import type { CronSettings, MnetSettings } from '../../core/config.ts';
import type { CronRun } from '../moodle/host-cron.ts';
import type { Registry } from '../../registry/registry.ts';
import type { TemplateStore } from '../../registry/templates.ts';
import type { NodeConfig } from '../../core/nodes.ts';
import type { NodeTaskName, NodeTasks } from './node-tasks.ts';
import type { ContentTransfer } from '../files/transfer.ts';
import type { NodeReport } from '../delivery/steps.ts';
import type { Journal } from '../delivery/journal.ts';

/** Parameter types, as VMoodle's Command_Parameter has them. */
export type ParamType = 'boolean' | 'enum' | 'menum' | 'text' | 'ltext' | 'int';

export interface ParamSpec {
  name: string;
  type: ParamType;
  label: string;
  help?: string;
  /** Required unless it has a default. */
  default?: string;
  choices?: readonly string[];
  /** Never shown, logged, or stored with the run's parameters. */
  secret?: boolean;
  /** Its `:name` words are bind parameters, given as more `name=value` parameters. */
  binds?: boolean;
  /** A problem with the value, given all values; undefined when fine. */
  validate?(value: string, all: Readonly<Record<string, string>>): string | undefined;
}

export type Params = Readonly<Record<string, string>>;

/**
 * A command's parameters as its declarations type them: each declared name is a string (resolveParams fills in
 * defaults and refuses what is missing before a command sees them); other names (a SQL's `:name` binds) may be absent.
 */
export type ParamValues<S extends readonly ParamSpec[]> = { readonly [K in S[number]['name']]: string } & Readonly<
  Record<string, string | undefined>
>;

/** What a target looks like before the command runs, read when the plan is made. */
export interface TargetPreview {
  old?: string | null;
  new?: string | null;
  /** The old and new values are secrets: shown masked, and only a hash of the old one is kept. */
  sensitive?: boolean;
  note?: string;
}

export type ApplyStatus = 'applied' | 'already_applied' | 'conflict';

export interface ApplyOutcome extends CacheOutcome {
  status: ApplyStatus;
  old?: string | null;
  new?: string | null;
  message?: string;
  /** A value returned by the target (a returning SQL's first row). */
  value?: string;
  /** The code tree forces the setting written, so the value written has no effect. */
  forced?: boolean;
}

/** What a preview and a result say of a setting the code tree forces. */
export const FORCED_MESSAGE = 'forced by config: the database value has no effect';

/** A site's work (moodle/site.ts) as a command sees it, with the run's source, the fleet and the product's settings. */
export interface CommandContext extends MoodleSite, FleetView {
  /** The source host of copy commands (the master unless --fromhost says otherwise). */
  source: MoodleTarget;
  /** The hosts of the registry (the master too) with these wwwroots, where there are any (MNET peers). */
  peers(wwwroots: readonly string[]): Promise<Map<string, MoodleTarget>>;
  /** The product's MNET settings. */
  mnet: MnetSettings;
  /** The fleet's cron settings, and what follows a host's cron (its counters, log, outcome and alert). */
  cron: CronSettings;
  recordCron(target: MoodleTarget, run: CronRun): Promise<void>;
  /** Templates, the allowed dataroot folder and the registry, for snapshots and instance creation and destruction. */
  lifecycle: LifecycleContext;
  /** The run this work belongs to; undefined while a plan is made. */
  run: { id: number; requestedBy: string } | undefined;
  /**
   * Has a node's own worker do a task and waits for its answer, for as long as the target's deadline allows,
   * telling those following the run while no worker of the node is alive.
   */
  onNode<K extends NodeTaskName>(
    node: string,
    task: K,
    payload: NodeTasks[K]['payload'],
  ): Promise<NodeTasks[K]['answer']>;
  /** Brings file contents from the source host's pool into a target's, from whichever node holds them. */
  contents: ContentTransfer;
  /** The web nodes and the journal, for delivery's work on the code trees. */
  delivery: DeliveryServices;
}

export interface DeliveryServices {
  /** The configured web nodes. */
  nodes: readonly NodeConfig[];
  /** What the node said of its state after its last step, or when its worker started. */
  lastReport(node: string): Promise<NodeReport | undefined>;
  journal: Journal;
}

export interface LifecycleContext {
  templates: TemplateStore;
  datarootRoot: string | undefined;
  registry: Registry;
  /** The account that makes and drops instance logins on a server (see db-logins.ts), when one is known. */
  provisioning(server: Pick<MoodleDb, 'host' | 'port'>): Promise<Pick<MoodleDb, 'user' | 'password'> | undefined>;
}

/**
 * Where a target's work runs: on any worker (database work), on the node that mounts the target's dataroot and
 * holds the code (files, caches), or through Moodle's own PHP on that node. With no nodes configured, `node` work
 * runs on any worker, as on a single machine that holds everything, and `php` work cannot run.
 */
export type Placement = 'any' | 'node' | 'php';

/** How long one target of a command may take: the configured target timeout, or the command's own when longer. */
export const targetDeadlineMs = (command: Pick<CommandDef, 'timeoutSeconds'>, targetTimeoutSeconds: number) =>
  Math.max(targetTimeoutSeconds, command.timeoutSeconds ?? 0) * 1000;

/** What the plan recorded for one target, handed back to apply for compare-and-set. */
export interface PlannedTarget {
  preview: TargetPreview;
  /** Whether a value read now is the one the plan read (always true when the plan could not read it). */
  matchesPlan(current: string | null): boolean;
  /**
   * Records, durably in the master, the value the site holds just before the command writes it; called inside the
   * site's transaction, so that when the master cannot take it the write is not made. A later attempt that finds
   * the run's value already there reports this one as the old value.
   */
  beforeWrite(old: string | null): Promise<void>;
}

/** One command: everything the CLI, the chat, the planner and the executor need to know of it. */
export interface CommandDef<P extends Readonly<Record<string, string | undefined>> = Params> {
  name: string;
  category: string;
  /** The RBAC category its runs are checked against, when not its own (copytable changes data as SQL does). */
  rbacCategory?: string;
  /** The least role that may plan it, whatever the RBAC's categories say (an edit of where logins go: admin). */
  role?: Role;
  summary: string;
  params: readonly ParamSpec[];
  /** Deletes or replaces data; needs typed confirmation and, in chat, a second person. */
  destructive: boolean | ((params: P) => boolean);
  /** Its recorded old values can be put back by a revert run. */
  reversible: boolean;
  /**
   * Safe to run again on a target where a worker died mid-apply (compare-and-set sees it done). When false, such
   * a target is reported "interrupted — verify" instead of being run twice.
   */
  idempotent: boolean | ((params: P) => boolean);
  needsSource: boolean;
  /** Changes targets at all (a read-only command never needs an approval for its size). */
  writes: boolean;
  /**
   * A read compared across its targets (plugin × host, capability × host): each target's result value is a JSON
   * object of item → value, and the front ends show where hosts differ and the whole matrix. Says what an item is.
   */
  compares?: string;
  /**
   * A delayed command (VMoodle's adhoc delay): each target runs `minutes` after the run starts, plus a share of
   * `spread` minutes chosen at random when the plan is made, so that a fleet's heavy work is spread out.
   */
  delay?(params: P): { minutes: number; spread: number };
  /** How long one target may take, in seconds, when longer than the executor's target timeout (a delivery step). */
  timeoutSeconds?: number;
  /** Where its work runs; any worker when unsaid. */
  runsOn?: Placement | ((params: P) => Placement);
  /**
   * The dataroot whose node runs the work, when not the target's own: an instance being created is placed by the
   * folder it will have.
   */
  placedBy?(params: P): string;
  /**
   * Makes instances: its targets are the instances to be made, one a set of parameters, each locked by its own
   * database and worked on from the master's side (the target `apply` gets is the master). Says how the new
   * instance will be reached.
   */
  makes?(ctx: CommandContext, params: P): Promise<MoodleTarget>;
  /** The VMoodle CLI wrappers it runs through `ctx.php`, with the options each may be given: nothing else runs. */
  phpScripts?: PhpScripts;
  /** Parameters whose values are secret for these parameters (the value of a sensitive setting). */
  sensitiveParams?(params: P): string[];
  /** Checks the parameters against the source host once, when the plan is made; throws what is wrong. */
  check?(ctx: CommandContext, params: P): Promise<void>;
  preview?(ctx: CommandContext, target: MoodleTarget, params: P): Promise<TargetPreview>;
  apply(ctx: CommandContext, target: MoodleTarget, params: P, planned: PlannedTarget): Promise<ApplyOutcome>;
  /** The parameters that put back what apply changed on one target, from its recorded old value. */
  revertParams?(params: P, old: string | null): Params;
}

/**
 * Declares a command with its parameters typed from their declarations: `p.key` is a string in its body, with no
 * cast. The catalogue holds it as a plain CommandDef, whose parameters resolveParams has checked.
 */
export function defineCommand<const S extends readonly ParamSpec[]>(
  def: Omit<CommandDef<ParamValues<S>>, 'params'> & { params: S },
): CommandDef {
  return def as unknown as CommandDef;
}

export const isIdempotent = (command: CommandDef, params: Params) =>
  typeof command.idempotent === 'function' ? command.idempotent(params) : command.idempotent;

export const isDestructive = (command: CommandDef, params: Params) =>
  typeof command.destructive === 'function' ? command.destructive(params) : command.destructive;

/** The dataroot that decides which node runs a command's work on a target. */
export const placingDataroot = (command: CommandDef, params: Params, target: MoodleTarget): string | undefined =>
  command.placedBy ? command.placedBy(params) : target.dataroot;

export const placementOf = (command: CommandDef, params: Params): Placement =>
  (typeof command.runsOn === 'function' ? command.runsOn(params) : command.runsOn) ?? 'any';

/** The category RBAC checks a run of this command against. */
export const accessCategory = (command: CommandDef) => command.rbacCategory ?? command.category;
