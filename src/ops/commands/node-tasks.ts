import type { NodeReport, StepRequest } from '../delivery/steps.ts';
import type { SendAnswer, SendRequest } from '../files/transfer.ts';
import type { LangFile, LangRequest } from '../files/lang-local.ts';
import type { UpgradeReport } from '../moodle/site-upgrade.ts';

/** The work a run asks of one node's own worker, by name, with what each is given and answers. */
export interface NodeTasks {
  'delivery-step': { payload: StepRequest; answer: NodeReport };
  /** CLI maintenance on for the served sites whose dataroot the node mounts (those it made, by host key), or off again. */
  'delivery-maintenance': { payload: { on: true } | { on: false; hosts: string[] }; answer: { hosts: string[] } };
  'delivery-upgrade': { payload: { host: string }; answer: UpgradeReport };
  'delivery-opcache': { payload: Record<string, never>; answer: { ok: boolean; message: string } };
  /** File contents of a source host's pool, left for a target's node (see files/transfer.ts). */
  'files-send': { payload: SendRequest; answer: SendAnswer };
  /** A source host's local language customisations. */
  'lang-read': { payload: LangRequest & { host: string }; answer: LangFile[] };
}

export type NodeTaskName = keyof NodeTasks;
