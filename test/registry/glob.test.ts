import { describe, expect, it } from 'vitest';
import { compileGlob, compileGlobList, GlobError } from '../../src/registry/glob.ts';

const matches = (pattern: string, value: string) => compileGlob(pattern, '--tohostsmatch').test(value);

describe('host globs', () => {
  it('match the whole wwwroot, not a part of it', () => {
    expect(matches('*.example.org', 'https://a.example.org')).toBe(true);
    expect(matches('*.example.org', 'https://a.example.org.evil.net')).toBe(false);
    expect(matches('example', 'https://example.org')).toBe(false);
    expect(matches('https://a.example.org', 'https://a.example.org')).toBe(true);
  });

  it('ignore case', () => {
    expect(matches('*.EXAMPLE.org', 'https://Physics.example.ORG')).toBe(true);
  });

  it('take * as any run of characters, the empty run included', () => {
    expect(matches('https://*example.org', 'https://example.org')).toBe(true);
    expect(matches('https://*.org', 'https://a.b.c.org')).toBe(true);
    expect(matches('*', 'https://anything.example.net/sub')).toBe(true);
  });

  it('take ? as exactly one character', () => {
    expect(matches('https://moodle?.example.org', 'https://moodle1.example.org')).toBe(true);
    expect(matches('https://moodle?.example.org', 'https://moodle.example.org')).toBe(false);
    expect(matches('https://moodle?.example.org', 'https://moodle12.example.org')).toBe(false);
  });

  it('take . literally', () => {
    expect(matches('*a.b*', 'https://a.b.example.org')).toBe(true);
    expect(matches('a.b', 'axb')).toBe(false);
    expect(matches('*a.b*', 'https://axb.example.org')).toBe(false);
  });

  it('take / literally, where VMoodle broke on it', () => {
    expect(matches('https://campus.example.org/*', 'https://campus.example.org/law')).toBe(true);
    expect(matches('https://campus.example.org/*', 'https://campus.example.org')).toBe(false);
  });

  it('take regular-expression characters literally', () => {
    expect(matches('https://a+b.example.org', 'https://a+b.example.org')).toBe(true);
    expect(matches('https://a+b.example.org', 'https://aab.example.org')).toBe(false);
    expect(matches('*(x)|y$', 'https://(x)|y$')).toBe(true);
    expect(matches('*(x)|y$', 'https://x')).toBe(false);
    expect(matches('^https*', 'https://x')).toBe(false);
  });

  it('split a list at commas and trim each pattern', () => {
    const globs = compileGlobList('*.example.org, *.example.net', '--exclude');
    expect(globs.map((g) => g.source)).toEqual(['*.example.org', '*.example.net']);
    expect(globs.some((g) => g.test('https://x.example.net'))).toBe(true);
  });

  it('refuse malformed patterns with a message naming the flag and the pattern', () => {
    expect(() => compileGlobList('*.example.org,,*.net', '--exclude')).toThrow(/--exclude: an empty pattern/);
    expect(() => compileGlob('', '--tohostsmatch')).toThrow(GlobError);
    expect(() => compileGlob('*.exa mple.org', '--tohostsmatch')).toThrow(/'\*\.exa mple\.org' contains a space/);
    expect(() => compileGlob('https://moodle[12].example.org', '--tohostsmatch')).toThrow(
      /\[ \] or \{ \}, which are not supported/,
    );
    expect(() => compileGlob('*.{org,net}', '--tohostsmatch')).toThrow(GlobError);
  });
});
