import { createRequire } from 'node:module';
import type { Engine } from 'php-parser';
import { TargetError } from './target.ts';

// Loaded at first use: the catalogue, which every command line loads, only needs them when a command runs.
const load = createRequire(import.meta.url);
let engine: typeof Engine | undefined;
let serializer: ((value: unknown) => string) | undefined;
type Unserialize = (text: string, scope?: Record<string, new () => object>) => unknown;
let unserializer: Unserialize | undefined;

/**
 * A value as PHP's json_encode() writes it with no flags: `/` escaped as `\/`, and every character past ASCII as a
 * `\uXXXX` escape (UTF-16, lower-case hex), so that a row the product writes reads like one Moodle wrote.
 */
export function phpJsonEncode(value: unknown): string {
  return JSON.stringify(value)
    .replaceAll('/', '\\/')
    .replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A value as PHP's serialize() writes it (an object becomes an array with string keys, in order). */
export const phpSerialize = (value: unknown): string => {
  serializer ??= (load('php-serialize') as { serialize: (value: unknown) => string }).serialize;
  return serializer(value);
};

/**
 * A value PHP's serialize() wrote (arrays come back as objects keyed by their PHP keys); anything else throws. Objects
 * of the classes in `scope` come back as those classes, so that serializing them again names the same class.
 */
export const phpUnserialize = (text: string, scope: Record<string, new () => object> = {}): unknown => {
  unserializer ??= (load('php-serialize') as { unserialize: Unserialize }).unserialize;
  return unserializer(text, scope);
};

/** A node of php-parser's syntax tree, as far as the product reads one. */
export interface PhpNode {
  kind: string;
  value?: unknown;
  items?: Array<{ kind: string; key: PhpNode | null; value: PhpNode }>;
  type?: string;
  /** An assignment's operator: `=`, `.=`, … */
  operator?: string;
  what?: PhpNode;
  name?: string | PhpNode;
  offset?: PhpNode;
  left?: PhpNode;
  right?: PhpNode;
  expression?: PhpNode;
  children?: PhpNode[];
  /** Where it is in the file, when parsed with positions. */
  loc?: { start: { line: number } };
}

/** A PHP number literal as written: `0x`, `0o`, `0b`, a leading 0 for octal (`02777`), `_` between digits. */
function phpNumber(raw: string): number {
  const text = raw.replace(/_/g, '');
  if (/^0[0-7]+$/.test(text)) return Number.parseInt(text.slice(1), 8);
  return Number(/^0O/.test(text) ? `0o${text.slice(2)}` : text);
}

/** The value of a var_export() literal: arrays, strings, numbers, booleans and null. Anything else is refused. */
export function phpLiteral(node: PhpNode): unknown {
  switch (node.kind) {
    case 'string':
      return node.value;
    case 'number':
      return phpNumber(String(node.value));
    case 'boolean':
      return node.value;
    case 'nullkeyword':
      return null;
    case 'unary':
      if (node.type === '-' && node.what) return -(phpLiteral(node.what) as number);
      break;
    case 'array': {
      const out: Record<string, unknown> = {};
      for (const item of node.items ?? [])
        out[String(item.key ? phpLiteral(item.key) : Object.keys(out).length)] = phpLiteral(item.value);
      return out;
    }
  }
  throw new TargetError(`a ${node.kind} where a literal was expected`);
}

/** Parses PHP source (a configuration file) into its syntax tree, never running it; a syntax error throws. */
export function parsePhp(code: string, name: string, withPositions = false): PhpNode {
  engine ??= (load('php-parser') as { Engine: typeof Engine }).Engine;
  return new engine({ parser: { php8: true, suppressErrors: false }, ast: { withPositions } }).parseCode(
    code,
    name,
  ) as unknown as PhpNode;
}

/** `$CFG->name`, or undefined for any other node. */
export function cfgProperty(node: PhpNode | undefined): string | undefined {
  if (node?.kind !== 'propertylookup' || node.what?.kind !== 'variable' || node.what.name !== 'CFG') return undefined;
  return node.offset?.kind === 'identifier' ? (node.offset.name as string) : undefined;
}

/** Every node of a tree, depth first. */
export function* phpNodes(node: unknown): Generator<PhpNode> {
  if (!node || typeof node !== 'object') return;
  if (Array.isArray(node)) {
    for (const child of node) yield* phpNodes(child);
    return;
  }
  if (typeof (node as PhpNode).kind === 'string') yield node as PhpNode;
  for (const value of Object.values(node)) if (value && typeof value === 'object') yield* phpNodes(value);
}
