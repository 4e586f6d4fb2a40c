import { userInfo } from 'node:os';
import { createInterface } from 'node:readline';
import type { Backend } from '../verbs/backend.ts';
import type { TerminalIO } from '../core/terminal.ts';
import { approvalPolicy } from '../ops/executor/approval-policy.ts';
import { followRun, waitingText, stepLine } from '../verbs/follow.ts';
import { Rbac, type RbacConfig } from '../verbs/rbac.ts';
import { Chat, type ChatReply } from './chat.ts';
import { canaryText, statusText, TERMINAL_STYLE } from '../verbs/text-views.ts';

/**
 * With an RBAC in the master's settings the console is its operating-system user, with that user's roles, and
 * nobody else: `as` is refused, so nobody approves their own run. Without one it is a one-person demo: its own user
 * may do everything, and `as approver`, `as operator` or `as viewer` tries the loop with those roles on one terminal.
 */
export function consoleRbac(rbac: RbacConfig | undefined): { rbac: Rbac; demo: boolean } {
  if (rbac) return { rbac: new Rbac(rbac), demo: false };
  return {
    rbac: new Rbac({
      roles: { admin: [userInfo().username], approver: ['approver'], operator: ['operator'], viewer: ['viewer'] },
    }),
    demo: true,
  };
}

const STEP = 0.25;

/** Follows a run the reply started, a line every quarter; a canary run comes back to the prompt when it pauses. */
async function follow(io: TerminalIO, backend: Backend, reply: ChatReply): Promise<void> {
  if (reply.view?.kind !== 'run' || !reply.view.follow) return;
  let next = STEP;
  const started = reply.view.run;
  const ended = await followRun(
    await backend.ops(),
    started,
    ({ run, done }) => {
      if (done / run.target_count < next) return;
      io.stdout(`  run ${run.id}: ${done}/${run.target_count} done\n`);
      while (done / run.target_count >= next) next += STEP;
    },
    {
      untilCanary: true,
      onWaiting: (w) => io.stdout(`  run ${started.id}: ${waitingText(w)}\n`),
      onStep: (step) => io.stdout(`  run ${started.id}: ${stepLine(step)}\n`),
    },
  );
  io.stdout(
    `${statusText(ended.run, ended.targets)}${ended.paused ? `\n${canaryText(ended.run, TERMINAL_STYLE)}` : ''}\n`,
  );
}

/**
 * A terminal chat: each line is a `/vmoodle` line (the leading `/vmoodle` may be left out), handled by the same
 * verbs as Slack; `as <user>` changes who is typing. It ends on `quit`, end of input, or SIGINT/SIGTERM.
 */
export async function consoleChat(
  io: TerminalIO,
  backend: Backend,
  input: NodeJS.ReadableStream = process.stdin,
): Promise<void> {
  const security = await backend.security();
  const { rbac, demo } = consoleRbac(security.rbac);
  const chat = new Chat(backend, rbac, approvalPolicy(security.approval), 'console', TERMINAL_STYLE);
  let actor = userInfo().username;
  const rl = createInterface({ input, terminal: false });
  const who = demo
    ? `No RBAC in the master's settings (vmoodle settings import): this is a one-person demo; as <user> switches to approver, operator or viewer. You are ${actor}.`
    : `You are ${actor}, the operating-system user, with the roles of the master's RBAC.`;
  io.stdout(`${who} Type help, a command (e.g. showtargets --match '*.example.org'), or quit.\n${actor}> `);
  const stop = () => rl.close();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    for await (const raw of rl) {
      const line = raw.trim();
      if (line === 'quit' || line === 'exit') break;
      const as = /^as\s+(\S+)$/.exec(line);
      if (as && demo) actor = as[1] as string;
      else if (as)
        io.stdout(
          `${TERMINAL_STYLE.warning} as is refused: with an RBAC the terminal chat acts as the operating-system user\n`,
        );
      else if (line !== '') {
        const reply = await chat.handle(line, { id: actor });
        io.stdout(`${reply.text}\n`);
        await follow(io, backend, reply);
      }
      io.stdout(`${actor}> `);
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    rl.close();
  }
  io.stdout('\n');
}
