import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { describeError } from '../../core/db/db-errors.ts';
import type { MoodleTarget } from '../moodle/target.ts';
import { nodeOfDataroot, noNodeReason, type NodeConfig } from '../../core/nodes.ts';
import type { RedisKeys } from '../../core/redis-keys.ts';
import { hostKey } from '../moodle/site-upgrade.ts';
import { ContentError, CONTENT_HASH, pooledSize, readContent, storeContent, type PoolModes } from './filedir.ts';

/** How much of a content one Redis value holds. */
const CHUNK_BYTES = 1024 * 1024;

/** How many bytes of content one request to the source's node moves at most: what Redis holds at once for a copy. */
const BATCH_BYTES = 32 * 1024 * 1024;

/** How long chunks nobody collected stay in Redis (a receiver that died). */
const CHUNK_TTL_SECONDS = 3600;

/** Contents a target asks of its source's node, and how they are to travel. */
export interface SendRequest {
  /** The source host, as `kind:id`. */
  host: string;
  hashes: string[];
  /** Names this batch's chunks or its folder in the transfer folder. */
  transfer: string;
  via: 'folder' | 'redis';
}

export interface SendAnswer {
  sent: Array<{ hash: string; size: number; chunks: number }>;
  /** Contents the source could not send: missing from its pool, or damaged there. */
  failed: Array<{ hash: string; message: string }>;
}

/** What a target's pool is, for contents to be stored in. */
export interface TargetPool extends PoolModes {
  filedir: string;
}

/** What came of fetching contents: how they travelled, which were stored, and why the others were not. */
export interface FetchReport {
  via: 'this node' | 'the transfer folder' | 'Redis';
  stored: Set<string>;
  /** How many of the stored ones were moved, not already in the target's pool. */
  moved: number;
  failed: Map<string, string>;
}

/** Moves file contents from the source's pool to a target's; see ContentMover. */
export interface ContentTransfer {
  fetch(
    source: MoodleTarget,
    target: MoodleTarget,
    into: TargetPool,
    wanted: ReadonlyArray<{ hash: string; size: number }>,
  ): Promise<FetchReport>;
}

/**
 * Where a source's files are read for a target: by the target's own worker when one node holds both (or on a single
 * machine without nodes), else by the worker of the source's node.
 */
export function sourceSide(
  nodes: readonly NodeConfig[],
  source: MoodleTarget,
  target: MoodleTarget,
  what: string,
): { local: true } | { local: false; from: NodeConfig; here: NodeConfig | undefined } {
  if (nodes.length === 0) {
    if (!source.dataroot)
      throw new ContentError(`the source host's dataroot is not known, so its ${what} cannot be read`);
    return { local: true };
  }
  const from = nodeOfDataroot(nodes, source.dataroot);
  if (!from)
    throw new ContentError(`the source host's ${what} cannot be read: ${noNodeReason(nodes, source.dataroot)}`);
  const here = nodeOfDataroot(nodes, target.dataroot);
  return from.name === here?.name ? { local: true } : { local: false, from, here };
}

/** A content's bytes in Redis-sized chunks. */
async function* rechunk(chunks: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  let held: Buffer[] = [];
  let size = 0;
  for await (const chunk of chunks) {
    held.push(chunk);
    size += chunk.length;
    while (size >= CHUNK_BYTES) {
      const all = Buffer.concat(held);
      yield all.subarray(0, CHUNK_BYTES);
      held = [all.subarray(CHUNK_BYTES)];
      size = all.length - CHUNK_BYTES;
    }
  }
  if (size > 0 || held.length === 0) yield Buffer.concat(held);
}

const missingMessage = (err: unknown, hash: string) =>
  (err as NodeJS.ErrnoException).code === 'ENOENT'
    ? `the source's file pool has no content ${hash}`
    : describeError(err);

/**
 * On the node holding the source's dataroot: reads each content from its pool (checking it against its hash) and
 * leaves it where the target's node can take it, in the transfer folder both mount or in chunks in Redis.
 */
export async function sendContents(
  redis: Redis,
  keys: RedisKeys,
  node: NodeConfig,
  sourceFiledir: string,
  req: SendRequest,
): Promise<SendAnswer> {
  const answer: SendAnswer = { sent: [], failed: [] };
  if (!/^[a-z0-9-]{1,64}$/.test(req.transfer))
    throw new ContentError('a transfer name holds only lower-case letters, digits and dashes');
  if (req.via === 'folder' && !node.transferDir) throw new ContentError(`node ${node.name} has no transfer_dir`);
  const folder = req.via === 'folder' ? join(node.transferDir as string, req.transfer) : undefined;
  if (folder !== undefined) {
    // The batch's folder is new (its name is random) and its files too: nothing planted there is written through.
    await mkdir(node.transferDir as string, { recursive: true, mode: 0o700 });
    await mkdir(folder, { mode: 0o700 });
  }
  for (const hash of new Set(req.hashes)) {
    if (!CONTENT_HASH.test(hash)) {
      answer.failed.push({ hash, message: 'not a content hash' });
      continue;
    }
    let size = 0;
    let chunks = 0;
    try {
      if (folder !== undefined) {
        const file = await open(join(folder, hash), 'wx', 0o600);
        try {
          for await (const chunk of readContent(sourceFiledir, hash)) {
            await file.write(chunk);
            size += chunk.length;
          }
        } finally {
          await file.close();
        }
      } else {
        for await (const chunk of rechunk(readContent(sourceFiledir, hash))) {
          await redis.set(keys.transferChunk(req.transfer, hash, chunks++), chunk, 'EX', CHUNK_TTL_SECONDS);
          size += chunk.length;
        }
      }
      answer.sent.push({ hash, size, chunks });
    } catch (err) {
      if (folder !== undefined) await rm(join(folder, hash), { force: true });
      else await dropChunks(redis, keys, req.transfer, hash, chunks);
      answer.failed.push({ hash, message: missingMessage(err, hash) });
    }
  }
  return answer;
}

async function dropChunks(
  redis: Redis,
  keys: RedisKeys,
  transfer: string,
  hash: string,
  chunks: number,
): Promise<void> {
  if (chunks > 0) await redis.del(...Array.from({ length: chunks }, (_, i) => keys.transferChunk(transfer, hash, i)));
}

async function* redisChunks(
  redis: Redis,
  keys: RedisKeys,
  transfer: string,
  hash: string,
  chunks: number,
): AsyncGenerator<Buffer> {
  for (let i = 0; i < chunks; i++) {
    const chunk = await redis.getBuffer(keys.transferChunk(transfer, hash, i));
    if (!chunk) throw new ContentError(`chunk ${i + 1} of ${chunks} of ${hash} is no longer in Redis`);
    yield chunk;
  }
}

/** Batches of contents of at most BATCH_BYTES each (a bigger content goes alone). */
function batches<T extends { size: number }>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const item of items) {
    if (current.length > 0 && bytes + item.size > BATCH_BYTES) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(item);
    bytes += item.size;
  }
  if (current.length > 0) out.push(current);
  return out;
}

/**
 * The target side of a copy, in the worker on the target's node: contents already in the target's pool are left
 * as they are; the others are read from the source's pool directly when this node holds it too, else asked of the
 * source's node batch by batch, each stored only once its bytes match its hash.
 */
export class ContentMover implements ContentTransfer {
  constructor(
    private readonly deps: {
      nodes: readonly NodeConfig[];
      redis: Redis;
      keys: RedisKeys;
      runId: number | undefined;
      sourcePool(source: MoodleTarget): Promise<string>;
      send(node: string, req: SendRequest): Promise<SendAnswer>;
    },
  ) {}

  async fetch(
    source: MoodleTarget,
    target: MoodleTarget,
    into: TargetPool,
    wanted: ReadonlyArray<{ hash: string; size: number }>,
  ): Promise<FetchReport> {
    const side = sourceSide(this.deps.nodes, source, target, 'files');
    const report: FetchReport = { via: 'this node', stored: new Set(), moved: 0, failed: new Map() };
    const missing: Array<{ hash: string; size: number }> = [];
    for (const w of wanted) {
      if ((await pooledSize(into.filedir, w.hash)) === w.size) report.stored.add(w.hash);
      else missing.push(w);
    }
    if (missing.length === 0) return report;
    if (side.local) {
      const pool = await this.deps.sourcePool(source);
      for (const { hash } of missing) {
        try {
          await storeContent(into.filedir, hash, readContent(pool, hash), into);
          report.stored.add(hash);
          report.moved++;
        } catch (err) {
          report.failed.set(hash, missingMessage(err, hash));
        }
      }
      return report;
    }
    const { from, here } = side;
    const viaFolder = from.transferDir !== undefined && here?.transferDir !== undefined;
    report.via = viaFolder ? 'the transfer folder' : 'Redis';
    for (const batch of batches(missing)) {
      const transfer = `r${this.deps.runId ?? 0}-${randomBytes(6).toString('hex')}`;
      const answer = await this.deps.send(from.name, {
        host: hostKey(source),
        hashes: batch.map((b) => b.hash),
        transfer,
        via: viaFolder ? 'folder' : 'redis',
      });
      for (const f of answer.failed) report.failed.set(f.hash, f.message);
      const folder = viaFolder ? join(here?.transferDir as string, transfer) : undefined;
      try {
        for (const sent of answer.sent) {
          const chunks =
            folder !== undefined
              ? fileChunks(join(folder, sent.hash), from.name)
              : redisChunks(this.deps.redis, this.deps.keys, transfer, sent.hash, sent.chunks);
          try {
            await storeContent(into.filedir, sent.hash, chunks, into);
            report.stored.add(sent.hash);
            report.moved++;
          } catch (err) {
            report.failed.set(sent.hash, describeError(err));
          }
        }
      } finally {
        if (folder !== undefined) await rm(folder, { recursive: true, force: true });
        for (const sent of answer.sent)
          await dropChunks(this.deps.redis, this.deps.keys, transfer, sent.hash, sent.chunks);
      }
    }
    return report;
  }
}

/** A content another node left in the transfer folder; not finding it means the two nodes do not mount the same one. */
async function* fileChunks(path: string, from: string): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of createReadStream(path)) yield chunk as Buffer;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      throw new ContentError(
        `node ${from} left the content in its transfer_dir, but this node does not see ${path}: do both mount the same folder?`,
      );
    throw err;
  }
}
