import { isAbsolute, normalize } from 'node:path';
import { errorKind } from './errors.ts';

/**
 * A web node: a host that holds Moodle's code with VMoodle installed and mounts some moodledata folders. Work on an
 * instance's files or through Moodle's PHP runs on the node that mounts its dataroot.
 */
export interface NodeConfig {
  name: string;
  /** The Moodle tree with local/vmoodle installed. */
  codeRoot: string;
  /** Path prefixes of the dataroots it mounts, without a trailing slash. */
  dataroots: string[];
  /** The PHP CLI binary, an absolute path (run without a shell). */
  php: string;
  /** Moodle PHP processes at most at once on this node, across all its workers. */
  maxPhp: number;
  /** The system user delivery runs its commands on the code trees as (through `sudo -n -u`); the worker's own when unset. */
  deliveryUser?: string;
  /** The command that resets PHP's opcode cache on this node after new code is served (a PHP-FPM reload), as argv. */
  opcacheReset?: string[];
  /**
   * A folder this node shares with other nodes (mounted wherever each has it): file copies between two nodes that
   * both have one move through it, else in chunks through Redis.
   */
  transferDir?: string;
}

export class NodesError extends errorKind('config') {}

export const NODE_NAME = /^[A-Za-z0-9._-]{1,64}$/;

const KEYS: Record<string, string> = {
  code_root: 'the Moodle tree with local/vmoodle installed (an absolute path)',
  dataroots: 'a list of absolute path prefixes of the moodledata folders it mounts',
  php: 'the PHP CLI binary (an absolute path; default /usr/bin/php)',
  max_php: 'Moodle PHP processes at most at once on the node (1 to 64; default 4)',
  delivery_user:
    "the system user delivery runs its commands on the code trees as, through sudo -n (default: the worker's own)",
  opcache_reset:
    "the command that resets PHP's opcode cache after a delivery, a list whose first word is an absolute path",
  transfer_dir:
    'a folder shared with the other nodes, through which file copies between nodes go (an absolute path; default: through Redis)',
};

const SYSTEM_USER = /^[a-z_][a-z0-9_-]{0,31}$/;

function opcacheCommand(value: unknown, where: string): string[] | undefined {
  if (value === undefined) return undefined;
  if (
    !Array.isArray(value) ||
    value.length === 0 ||
    !value.every((w) => typeof w === 'string' && !/[\0\n\r]/.test(w))
  ) {
    throw new NodesError(`${where}: expected ${KEYS.opcache_reset}`);
  }
  absolutePath(value[0], where);
  return value as string[];
}

function absolutePath(value: unknown, where: string): string {
  if (typeof value !== 'string' || !isAbsolute(value) || /[\0\n\r]/.test(value))
    throw new NodesError(`${where}: expected an absolute path`);
  const path = normalize(value);
  return path.length > 1 ? path.replace(/\/+$/, '') : path;
}

/** Reads the nodes file's mapping `name: {code_root, dataroots, php, max_php}`; whatever is wrong is named. */
export function parseNodes(doc: unknown): NodeConfig[] {
  if (doc === null || doc === undefined) return [];
  if (typeof doc !== 'object' || Array.isArray(doc))
    throw new NodesError('expected a mapping of node names to {code_root, dataroots, php, max_php}');
  const nodes = Object.entries(doc as Record<string, unknown>).map(([name, raw]): NodeConfig => {
    if (!NODE_NAME.test(name))
      throw new NodesError(`node '${name}': a name holds only letters, digits, dots, dashes and underscores`);
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
      throw new NodesError(`node ${name}: expected a mapping of ${Object.keys(KEYS).join(', ')}`);
    const spec = raw as Record<string, unknown>;
    const unknown = Object.keys(spec).filter((k) => !(k in KEYS));
    if (unknown.length > 0)
      throw new NodesError(`node ${name}: unknown keys ${unknown.join(', ')} (known: ${Object.keys(KEYS).join(', ')})`);
    const dataroots = spec.dataroots;
    if (!Array.isArray(dataroots) || dataroots.length === 0)
      throw new NodesError(`node ${name}: dataroots: expected ${KEYS.dataroots}`);
    const maxPhp = spec.max_php ?? 4;
    if (typeof maxPhp !== 'number' || !Number.isInteger(maxPhp) || maxPhp < 1 || maxPhp > 64)
      throw new NodesError(`node ${name}: max_php: expected ${KEYS.max_php}`);
    return {
      name,
      codeRoot: absolutePath(spec.code_root, `node ${name}: code_root`),
      dataroots: dataroots.map((d, i) => absolutePath(d, `node ${name}: dataroots[${i}]`)),
      php: absolutePath(spec.php ?? '/usr/bin/php', `node ${name}: php`),
      maxPhp,
      ...deliverySettings(name, spec),
      ...(spec.transfer_dir !== undefined
        ? { transferDir: absolutePath(spec.transfer_dir, `node ${name}: transfer_dir`) }
        : {}),
    };
  });
  const owner = new Map<string, string>();
  for (const node of nodes) {
    for (const prefix of node.dataroots) {
      const other = owner.get(prefix);
      if (other && other !== node.name)
        throw new NodesError(
          `nodes ${other} and ${node.name} both claim ${prefix}: an instance's node must follow from its dataroot`,
        );
      owner.set(prefix, node.name);
    }
  }
  return nodes;
}

function deliverySettings(
  name: string,
  spec: Record<string, unknown>,
): Pick<NodeConfig, 'deliveryUser' | 'opcacheReset'> {
  const user = spec.delivery_user;
  if (user !== undefined && (typeof user !== 'string' || !SYSTEM_USER.test(user)))
    throw new NodesError(`node ${name}: delivery_user: expected a system user name`);
  const reset = opcacheCommand(spec.opcache_reset, `node ${name}: opcache_reset`);
  return { ...(user !== undefined ? { deliveryUser: user } : {}), ...(reset ? { opcacheReset: reset } : {}) };
}

const under = (path: string, prefix: string) => prefix === '/' || path === prefix || path.startsWith(`${prefix}/`);

/** Where an instance's files are: the node whose longest dataroot prefix holds its dataroot. */
export function nodeOfDataroot(nodes: readonly NodeConfig[], dataroot: string | undefined): NodeConfig | undefined {
  if (!dataroot || !isAbsolute(dataroot)) return undefined;
  const path = normalize(dataroot).replace(/\/+$/, '');
  let best: { node: NodeConfig; length: number } | undefined;
  for (const node of nodes) {
    for (const prefix of node.dataroots) {
      if (under(path, prefix) && (!best || prefix.length > best.length)) best = { node, length: prefix.length };
    }
  }
  return best?.node;
}

/** Why a target has no node, naming what each node mounts, so that the fix is plain. */
export function noNodeReason(nodes: readonly NodeConfig[], dataroot: string | undefined): string {
  const mounts = nodes.map((n) => `${n.name}: ${n.dataroots.join(', ')}`).join('; ');
  return dataroot
    ? `its dataroot ${dataroot} is under no configured node (${mounts})`
    : `its dataroot is not known, so no node can be found for it (${mounts})`;
}

export function findNode(nodes: readonly NodeConfig[], name: string): NodeConfig {
  const node = nodes.find((n) => n.name === name);
  if (!node) {
    throw new NodesError(
      nodes.length === 0
        ? `node '${name}' is not configured: no nodes are (set VMOODLE_NODES to a nodes file)`
        : `node '${name}' is not configured (configured: ${nodes.map((n) => n.name).join(', ')})`,
    );
  }
  return node;
}

/**
 * The node a worker serves besides the shared queue: the one it was started for, else this host's node name
 * (VMOODLE_NODE, or the host name) when that is a configured node.
 */
export function servedNode(nodes: readonly NodeConfig[], hostNode: string, named?: string): string | undefined {
  if (named !== undefined) return findNode(nodes, named).name;
  return nodes.some((n) => n.name === hostNode) ? hostNode : undefined;
}
