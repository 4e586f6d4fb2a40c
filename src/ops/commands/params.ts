import { errorKind } from '../../core/errors.ts';
import { closest } from 'fastest-levenshtein';
import type { CommandDef, ParamSpec, ParamType, Params } from './command.ts';
import { MASK } from '../moodle/sensitive.ts';
import { namedParameters } from '../moodle/sql-split.ts';

export class ParamError extends errorKind('bad_parameter') {}

/**
 * The longest value each type takes, checked before anything is stored. Long text fits a setting, a message or a
 * batch of SQL; a bind value of operator SQL takes the same.
 */
const MAX_LENGTH: Record<ParamType, number> = {
  boolean: 5,
  int: 20,
  enum: 255,
  menum: 2000,
  text: 2000,
  ltext: 65_535,
};

const count = (n: number) => n.toLocaleString('en-US');

const TRUE = ['1', 'true', 'yes', 'on'];
const FALSE = ['0', 'false', 'no', 'off', ''];

function checkType(spec: ParamSpec, value: string, fail: (message: string) => ParamError): string {
  switch (spec.type) {
    case 'boolean': {
      const v = value.toLowerCase();
      if (TRUE.includes(v)) return '1';
      if (FALSE.includes(v)) return '0';
      throw fail(`${spec.name}: '${value}' is not a boolean (use 1 or 0)`);
    }
    case 'int':
      if (!/^-?\d+$/.test(value)) throw fail(`${spec.name}: '${value}' is not a whole number`);
      return value;
    case 'enum':
      if (!spec.choices?.includes(value))
        throw fail(`${spec.name}: '${value}' is not one of ${spec.choices?.join(', ')}`);
      return value;
    case 'menum': {
      const items = value
        .split(',')
        .map((v) => v.trim())
        .filter(Boolean);
      const bad = items.filter((v) => !spec.choices?.includes(v));
      if (bad.length) throw fail(`${spec.name}: ${bad.join(', ')} not among ${spec.choices?.join(', ')}`);
      return items.join(',');
    }
    case 'text':
      if (value.includes('\n')) throw fail(`${spec.name}: a single line is expected`);
      return value;
    case 'ltext':
      return value;
  }
}

/** Parameters a command takes beyond its schema: the `:name` binds its SQL uses. */
function bindNames(command: CommandDef, raw: Readonly<Record<string, string>>): string[] {
  return command.params
    .filter((p) => p.binds && raw[p.name] !== undefined)
    .flatMap((p) => namedParameters(raw[p.name] as string));
}

/**
 * Checks raw `name=value` parameters against a command's schema: unknown names are refused with the closest
 * known one, missing ones named, values typed and validated, defaults filled in.
 */
export function resolveParams(command: CommandDef, raw: Readonly<Record<string, string>>): Params {
  const fail = (message: string) => new ParamError(message, `vmoodle help ${command.name} lists its parameters`);
  const binds = bindNames(command, raw);
  const known = new Set([...command.params.map((p) => p.name), ...binds]);
  const unknown = Object.keys(raw).filter((k) => !known.has(k));
  if (unknown.length > 0) {
    const hints = unknown.map((k) => `'${k}'${known.size ? ` (did you mean '${closest(k, [...known])}'?)` : ''}`);
    throw fail(`${command.name} has no parameter ${hints.join(', ')}`);
  }
  for (const [name, value] of Object.entries(raw)) {
    const max = MAX_LENGTH[command.params.find((p) => p.name === name)?.type ?? 'ltext'];
    if (value.length > max)
      throw fail(`${command.name}: ${name}: at most ${count(max)} characters, got ${count(value.length)}`);
  }
  const params: Record<string, string> = {};
  const missing: string[] = [];
  for (const spec of command.params) {
    const value = raw[spec.name] ?? spec.default;
    if (value === undefined) {
      if (spec.type === 'boolean') params[spec.name] = '0';
      else missing.push(spec.name);
      continue;
    }
    params[spec.name] = checkType(spec, value, fail);
  }
  const unbound = binds.filter((b) => raw[b] === undefined);
  if (missing.length || unbound.length) {
    const parts = [
      missing.length ? `missing parameter${missing.length > 1 ? 's' : ''} ${missing.join(', ')}` : '',
      unbound.length ? `no value for :${unbound.join(', :')}` : '',
    ];
    throw fail(`${command.name}: ${parts.filter(Boolean).join('; ')}`);
  }
  for (const b of binds) params[b] = raw[b] as string;
  for (const spec of command.params) {
    const problem = spec.validate?.(params[spec.name] as string, params);
    if (problem) throw fail(`${command.name}: ${spec.name}: ${problem}`);
  }
  return params;
}

/** The parameters whose values are secret, for these values (the value of a sensitive setting). */
export function secretNames(command: CommandDef, params: Params): Set<string> {
  return new Set([
    ...command.params.filter((p) => p.secret).map((p) => p.name),
    ...(command.sensitiveParams?.(params) ?? []),
  ]);
}

/** The parameters as they may be shown and stored in the audit: secret ones masked. */
export function publicParams(command: CommandDef, params: Params): Record<string, string> {
  const secret = secretNames(command, params);
  return Object.fromEntries(Object.entries(params).map(([k, v]) => [k, secret.has(k) ? MASK : v]));
}

/** Only the secret parameters, kept apart from the run's audit record. */
export function secretParams(command: CommandDef, params: Params): Record<string, string> {
  const secret = secretNames(command, params);
  return Object.fromEntries(Object.entries(params).filter(([k]) => secret.has(k)));
}
