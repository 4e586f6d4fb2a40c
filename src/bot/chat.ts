import parseArgs from 'string-argv';
import type { Backend } from '../verbs/backend.ts';
import { errorReport, type ErrorReport } from '../core/errors.ts';
import { errorFields } from '../core/log.ts';
import type { ApprovalPolicy } from '../ops/executor/approval-policy.ts';
import { invoke, parseLine } from '../verbs/index.ts';
import type { Rbac } from '../verbs/rbac.ts';
import { Session, type Actor, type VerbDef, type Via, type View } from '../verbs/verb.ts';
import { errorText, viewText, type ChatStyle } from '../verbs/text-views.ts';

/** What a chat shows for one line or button: the verb's view (or the error, or the help asked for) and its text. */
export interface ChatReply {
  text: string;
  view?: View;
  error?: ErrorReport;
}

/**
 * A chat front end over the verbs (the terminal chat and Slack): a `/vmoodle` line is parsed with the verbs' own
 * syntax, every verb is checked against the RBAC file as the actor, and views are rendered in the chat's style.
 */
export class Chat {
  constructor(
    private readonly backend: Backend,
    private readonly rbac: Rbac,
    private readonly policy: ApprovalPolicy,
    private readonly via: Exclude<Via, 'cli'>,
    readonly style: ChatStyle,
  ) {}

  session(actor: Actor): Session {
    return new Session(this.backend, actor, this.via, this.policy, { kind: 'rbac', rbac: this.rbac, user: actor.id });
  }

  /** One typed line; the leading `/vmoodle` may be left out. */
  async handle(line: string, actor: Actor): Promise<ChatReply> {
    try {
      const parsed = parseLine(parseArgs(line.trim().replace(/^\/?vmoodle(\s+|$)/, '')));
      if ('help' in parsed) return { text: parsed.help.trimEnd() };
      return this.reply(await invoke(this.session(actor), parsed.verb, parsed.args));
    } catch (err) {
      return this.failure(err);
    }
  }

  /** A verb with typed arguments, as a button or a modal calls it: nothing is parsed from text again. */
  async call<A>(verb: VerbDef<A>, args: A, actor: Actor): Promise<ChatReply> {
    try {
      return this.reply(await invoke(this.session(actor), verb, args));
    } catch (err) {
      return this.failure(err);
    }
  }

  private reply(view: View): ChatReply {
    return { view, text: viewText(view, this.style) };
  }

  failure(err: unknown): ChatReply {
    const error = errorReport(this.backend.explain(err));
    if (error.code === 'internal') this.backend.log.error({ ...errorFields(err) }, 'a chat request failed');
    return { text: errorText(error, this.style), error };
  }
}
