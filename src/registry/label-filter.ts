import { errorKind } from '../core/errors.ts';
/**
 * The filters of VMoodle's web target picker: contains, does not contain, and `/regex/flags` where an extra
 * `n` flag negates. They test an instance's name, short name and wwwroot.
 */
export interface LabelFilter {
  readonly description: string;
  test(labels: readonly string[]): boolean;
}

export class LabelFilterError extends errorKind('bad_selection') {}

export function containsFilter(text: string): LabelFilter {
  if (!text) throw new LabelFilterError('--contains needs some text');
  const needle = text.toLowerCase();
  return {
    description: `--contains '${text}'`,
    test: (labels) => labels.some((l) => l.toLowerCase().includes(needle)),
  };
}

export function notContainsFilter(text: string): LabelFilter {
  if (!text) throw new LabelFilterError('--not-contains needs some text');
  const needle = text.toLowerCase();
  return {
    description: `--not-contains '${text}'`,
    test: (labels) => !labels.some((l) => l.toLowerCase().includes(needle)),
  };
}

export function regexFilter(spec: string): LabelFilter {
  const m = /^\/(.*)\/([a-z]*)$/s.exec(spec);
  if (!m)
    throw new LabelFilterError(`--regex '${spec}' must look like /pattern/flags (flags: i, s, u, and n to negate)`);
  const [, pattern, flags] = m as unknown as [string, string, string];
  const bad = [...flags].filter((f) => !'isun'.includes(f));
  if (bad.length > 0)
    throw new LabelFilterError(`--regex '${spec}': unknown flag ${bad.join('')} (allowed: i, s, u, n)`);
  const negate = flags.includes('n');
  let re: RegExp;
  try {
    re = new RegExp(pattern, flags.replace('n', ''));
  } catch (err) {
    throw new LabelFilterError(`--regex '${spec}': ${(err as Error).message}`);
  }
  return { description: `--regex '${spec}'`, test: (labels) => labels.some((l) => re.test(l)) !== negate };
}
