import { userInfo } from 'node:os';
import { createInterface } from 'node:readline';
import type { Backend } from '../backend.ts';
import type { CliIO } from '../cli/output.ts';
import { approvalPolicy } from '../ops/executor/approvals.ts';
import { FINAL_STATES } from '../ops/executor/run-model.ts';
import { Rbac } from './rbac.ts';
import { Router, statusText, type Reply } from './router.ts';

/**
 * With an RBAC file the console is its operating-system user, with that user's roles, and nobody else: `as` is
 * refused, so nobody approves their own run. Without one it is a one-person demo: its own user may do everything,
 * and `as approver`, `as operator` or `as viewer` tries the loop with those roles on one terminal.
 */
export function consoleRbac(app: Backend): { rbac: Rbac; demo: boolean } {
  if (app.config.rbacFile) return { rbac: Rbac.fromFile(app.config.rbacFile), demo: false };
  return { rbac: new Rbac({ roles: { admin: [userInfo().username], approver: ['approver'], operator: ['operator'], viewer: ['viewer'] } }), demo: true };
}

async function follow(io: CliIO, app: Backend, reply: Reply): Promise<void> {
  const run = reply.follow;
  if (!run) return;
  const rt = await app.ops();
  let done = 0;
  let next = 0.25;
  // A canary run pauses after its first targets: the chat comes back then, to say go or cancel.
  const pauses = run.canary > 0 && !run.canary_open && run.state === 'running';
  await rt.progress.follow(
    run.id,
    (e) => {
      if (e.type !== 'target') return;
      done++;
      if (done / run.target_count >= next) {
        io.stdout(`  run ${run.id}: ${done}/${run.target_count} done\n`);
        while (done / run.target_count >= next) next += 0.25;
      }
    },
    (e) => (e.type === 'state' && FINAL_STATES.includes(e.state)) || (pauses && done >= run.canary),
  );
  const now = await rt.store.getRun(run.id);
  const canaryNote = FINAL_STATES.includes(now.state) ? '' : `\nThe canary is done: \`go ${run.id}\` to go on, or \`cancel ${run.id}\`.`;
  io.stdout(`${statusText(now, await rt.store.getTargets(run.id))}${canaryNote}\n`);
}

/**
 * A terminal chat: each line is a `/vmoodle` line (the leading `/vmoodle` may be left out), handled by the same
 * router as Slack; `as <user>` changes who is typing. It ends on `quit`, end of input, or SIGINT/SIGTERM.
 */
export async function consoleChat(io: CliIO, app: Backend, input: NodeJS.ReadableStream = process.stdin): Promise<void> {
  const { rbac, demo } = consoleRbac(app);
  const router = new Router(app, rbac, approvalPolicy(app.config), 'console');
  let actor = userInfo().username;
  const rl = createInterface({ input, terminal: false });
  const who = demo
    ? `No RBAC file (VMOODLE_RBAC): this is a one-person demo; as <user> switches to approver, operator or viewer. You are ${actor}.`
    : `You are ${actor}, the operating-system user, with the roles of the RBAC file.`;
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
      else if (as) io.stdout(':warning: as is refused: with an RBAC file the terminal chat acts as the operating-system user\n');
      else if (line !== '') {
        const reply = await router.handle(line, { id: actor });
        io.stdout(`${reply.text.replaceAll('```', '')}\n`);
        await follow(io, app, reply);
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
