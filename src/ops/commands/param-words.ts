import { errorKind } from '../../core/errors.ts';
/** Command parameters as VMoodle's run_command.php takes them (`--attributes`) and as `name=value` words. */
export class AttributeError extends errorKind('usage') {}

/**
 * A URL query string: pairs split on `&`, then at the first `=`, values URL-decoded (`+` is a space, as PHP's
 * urldecode has it). An empty key is an error, as in VMoodle, and so is a key given twice.
 */
export function parseAttributes(query: string): Record<string, string> {
  const params: Record<string, string> = {};
  query.split('&').forEach((pair, index) => {
    const key = pair.split('=', 1)[0] as string;
    if (key === '') {
      throw new AttributeError(
        `--attributes: pair ${index + 1} ('${pair}') has an empty name; expected name=value&name=value`,
      );
    }
    const [[name, value]] = [...new URLSearchParams(pair).entries()] as [[string, string]];
    if (name in params) throw new AttributeError(`--attributes: '${name}' is given twice`);
    params[name] = value;
  });
  return params;
}

/** `name=value` words after the command name; the value is taken as typed. */
export function parseAssignments(words: readonly string[]): Record<string, string> {
  const params: Record<string, string> = {};
  for (const word of words) {
    const eq = word.indexOf('=');
    if (eq <= 0) throw new AttributeError(`'${word}' is not a parameter: write name=value`);
    const name = word.slice(0, eq);
    if (name in params) throw new AttributeError(`parameter '${name}' is given twice`);
    params[name] = word.slice(eq + 1);
  }
  return params;
}

export function mergeParameters(...sources: Array<Record<string, string>>): Record<string, string> {
  const merged: Record<string, string> = {};
  for (const source of sources) {
    for (const [name, value] of Object.entries(source)) {
      if (name in merged)
        throw new AttributeError(`parameter '${name}' is given both in --attributes and as a name=value word`);
      merged[name] = value;
    }
  }
  return merged;
}
