import type { Command as LineParser } from 'commander';
import type { Backend } from './backend.ts';
import { OpsError } from '../core/errors.ts';
import type { ApprovalPolicy } from '../ops/executor/approval-policy.ts';
import type { Plan } from '../ops/executor/planner.ts';
import type { RunEvent, RunRow, TargetRow } from '../ops/executor/run-model.ts';
import type { RunServices } from '../ops/executor/run-services.ts';
import type { CommandDef } from '../ops/commands/command.ts';
import type { Instance } from '../registry/instance.ts';
import type { ListPage } from '../registry/registry.ts';
import type { Selection } from '../registry/selector.ts';
import type { TemplateManifest } from '../registry/templates.ts';
import type { LineProblem } from '../registry/nodelist.ts';
import type { NodeReport } from '../ops/delivery/steps.ts';
import type { LogRow, SessionRow } from '../ops/delivery/journal.ts';
import type { Guarded, Rbac, Role } from './rbac.ts';

/** Who is acting, and where. The id comes from the signed Slack request, the terminal's user, or the command line's. */
/** A host as the cron status shows it: its registry counters and its last cron's outcome. */
export interface CronHost {
  instance: Instance;
  outcome: string | undefined;
  /** When that cron started, unix ms. */
  at: number | undefined;
}

export interface Actor {
  id: string;
  channel?: string;
}

export type Via = 'cli' | 'console' | 'slack';

/**
 * What a verb returns for its front end to render: data, never text with markup. A plain sentence (`summary`) is
 * the same on every front end.
 */
export type View =
  | { kind: 'plan'; plan: Plan; approval?: { expected: string; ttlMinutes: number } }
  | { kind: 'run'; run: RunRow; summary: string; follow: boolean }
  | { kind: 'status'; run: RunRow; targets: TargetRow[]; events: RunEvent[] }
  | { kind: 'runs'; runs: RunRow[] }
  | { kind: 'selection'; selection: Selection; flags: string }
  | { kind: 'instances'; page: ListPage }
  | { kind: 'cron'; hosts: CronHost[]; total: number; schedule: string | undefined; strategy: string }
  | { kind: 'templates'; templates: TemplateManifest[] }
  /** A file checked line by line (a nodelist's lint): how many lines, and each problem. */
  | { kind: 'lint'; file: string; lines: number; problems: LineProblem[] }
  /** Registry rows changed: what --json prints, and the sentence that says it. */
  | { kind: 'registry'; data: unknown; summary: string }
  | { kind: 'template'; template: TemplateManifest; deleted: boolean }
  /** Each web node's delivery state as it last reported it (none: its worker never did), the open session, the latest journal. */
  | {
      kind: 'delivery';
      nodes: Array<{ node: string; report: NodeReport | undefined }>;
      session: SessionRow | undefined;
      recent: LogRow[];
    }
  /** A delivery session opened, shown, or closed with its report. */
  | {
      kind: 'delivery-session';
      event: 'opened' | 'shown' | 'closed';
      session: SessionRow;
      entries: LogRow[];
      report: string | undefined;
    }
  | { kind: 'help'; verbs: readonly VerbDef[]; commands: readonly CommandDef[]; command?: CommandDef; verb?: VerbDef };

/**
 * How access is checked. Chat front ends check every verb against the RBAC file. The command line is the
 * break-glass path, audited under the operating-system user; only approving, which needs a second person the
 * product can tell apart, is checked there too.
 */
export type Access =
  | { kind: 'rbac'; rbac: Rbac; user: string }
  | { kind: 'break-glass'; rbac: Rbac | undefined; user: string };

/** One caller of verbs: the backend, who acts, through which front end, under which access rules. */
export class Session {
  constructor(
    readonly backend: Backend,
    readonly actor: Actor,
    readonly via: Via,
    readonly policy: ApprovalPolicy,
    readonly access: Access,
    /** Where database passwords may be read from: the command line's environment; a chat has none. */
    readonly passwordSource?: Readonly<Record<string, string | undefined>>,
  ) {}

  ops(): Promise<RunServices> {
    return this.backend.ops();
  }

  /** Why the actor may not use the verb (on this command category), or undefined. */
  refusal(verb: Guarded, category?: string): string | undefined {
    const { access } = this;
    if (access.kind === 'break-glass' && verb.role !== 'approver') return undefined;
    if (!access.rbac)
      return `${verb.label} on the command line needs the master's RBAC (vmoodle settings import) to name ${access.user} an approver`;
    return access.rbac.refusal(access.user, verb, category, this.actor.channel);
  }

  /** Whether another id is the actor under another name (see Rbac.person). */
  isSamePerson(other: string): boolean {
    return this.access.rbac?.samePerson(this.actor.id, other) ?? this.actor.id === other;
  }

  authorize(verb: Guarded, category?: string): void {
    const why = this.refusal(verb, category);
    if (why) throw new OpsError('access_denied', why);
  }
}

/**
 * One control verb: its name on the command line and in chat, its syntax (one commander definition for both), the
 * role it needs, and what it does. Front ends parse with `syntax`, convert with `args`, and render the View.
 */
export interface VerbDef<A = unknown> extends Guarded {
  /** Where the command line has it: ['runs', 'cancel'] is `vmoodle runs cancel`, ['run'] is `vmoodle run`. */
  path: readonly string[];
  /** Short forms, the chat's words: `status` for `runs show`, `cancel` for `runs cancel`. */
  aliases: readonly string[];
  role: Role;
  summary: string;
  /** Examples as typed after `vmoodle` or `/vmoodle`. */
  examples: readonly string[];
  /** It makes a plan that the command line then confirms, starts and follows (run, retry, revert). */
  plans?: boolean;
  syntax(cmd: LineParser): LineParser;
  /** Typed arguments from the parser's operands and options; throws a usage error for what the parser cannot see. */
  args(operands: readonly unknown[], opts: Readonly<Record<string, unknown>>): A;
  run(session: Session, args: A): Promise<View>;
}

/** Declares a verb; a refusal names it by its chat word: a one-word path, else its first short form. */
export function defineVerb<A>(def: Omit<VerbDef<A>, 'label'>): VerbDef<A> {
  return { ...def, label: def.path.length === 1 ? (def.path[0] as string) : (def.aliases[0] ?? def.path.join(' ')) };
}
