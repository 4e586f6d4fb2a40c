import { serialize } from 'php-serialize';

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
export const phpSerialize = (value: unknown): string => serialize(value);
