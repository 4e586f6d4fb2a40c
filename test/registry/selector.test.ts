import { describe, expect, it } from 'vitest';
import { resolveTargets, SelectionError, type Selector } from '../../src/registry/selector.ts';
import { fleetOf, instance } from '../support/instances.ts';

const fleet = fleetOf([
  instance('physics', 'https://physics.campus.example.org'),
  instance('chemistry', 'https://chemistry.campus.example.org'),
  instance('physics_test', 'https://physics-test.campus.example.org'),
  instance('law', 'https://law.example.net'),
  instance('music', 'https://music.campus.example.org', { enabled: false }),
  instance('arts', 'https://campus.example.org/arts', { name: 'Fine Arts' }),
]);

const names = (selector: Selector) => resolveTargets(fleet, selector).targets.map((h) => h.shortname);
const failure = (selector: Selector) => {
  try {
    resolveTargets(fleet, selector);
  } catch (err) {
    expect(err).toBeInstanceOf(SelectionError);
    return (err as Error).message;
  }
  throw new Error('expected a SelectionError');
};

describe('target selection', () => {
  it('selects by glob over the whole wwwroot, leaving disabled instances out and counting them', () => {
    const selection = resolveTargets(fleet, { tohostsmatch: '*.campus.example.org' });
    expect(selection.targets.map((h) => h.shortname)).toEqual(['physics', 'chemistry', 'physics_test']);
    expect(selection.counts).toMatchObject({ registry: 6, matched: 4, disabledLeftOut: 1, excluded: 0, targets: 3 });
  });

  it('includes disabled instances when asked', () => {
    expect(names({ tohostsmatch: '*.campus.example.org', includeDisabled: true })).toContain('music');
  });

  it('removes excluded hosts and counts them', () => {
    const selection = resolveTargets(fleet, { tohostsmatch: '*.example.org', exclude: '*test*' });
    expect(selection.targets.map((h) => h.shortname)).toEqual(['physics', 'chemistry']);
    expect(selection.counts.excluded).toBe(1);
  });

  it('takes several comma-separated globs', () => {
    expect(names({ tohostsmatch: '*law*,*chemistry*' })).toEqual(['chemistry', 'law']);
  });

  it('names hosts by short name or wwwroot, ignoring case and a trailing slash', () => {
    expect(names({ tohosts: ['PHYSICS', 'https://law.example.net/'] })).toEqual(['physics', 'law']);
    expect(names({ tohosts: ['physics', 'https://physics.campus.example.org'] })).toEqual(['physics']);
  });

  it("takes '*' as every enabled instance, never the master", () => {
    const selection = resolveTargets(fleet, { tohosts: '*' });
    expect(selection.targets.map((h) => h.shortname)).toEqual(['physics', 'chemistry', 'physics_test', 'law', 'arts']);
    expect(selection.targets.some((h) => h.kind === 'master')).toBe(false);
  });

  it('lists every unknown name with the closest existing one', () => {
    const message = failure({ tohosts: ['physics', 'phisycs', 'lawx'] });
    expect(message).toBe(
      "unknown hosts in --tohosts: 'phisycs' (did you mean 'physics'?), 'lawx' (did you mean 'law'?)",
    );
  });

  it('targets the master only when it is named, and then takes another source', () => {
    const selection = resolveTargets(fleet, { tohosts: ['master', 'law'], fromhost: 'physics' });
    expect(selection.targets.map((h) => h.kind)).toEqual(['master', 'instance']);
    expect(selection.source.shortname).toBe('physics');
  });

  it('defaults the source to the master and never targets the source', () => {
    expect(resolveTargets(fleet, { tohosts: ['law'] }).source.kind).toBe('master');
    const selection = resolveTargets(fleet, { tohostsmatch: '*.campus.example.org', fromhost: 'chemistry' });
    expect(selection.targets.map((h) => h.shortname)).toEqual(['physics', 'physics_test']);
    expect(selection.counts.sourceLeftOut).toBe(1);
  });

  it('refuses an unknown source host', () => {
    expect(failure({ tohosts: '*', fromhost: 'chemestry' })).toBe(
      "unknown host in --fromhost: 'chemestry' (did you mean 'chemistry'?)",
    );
  });

  it('says which filter emptied the result', () => {
    expect(failure({ tohostsmatch: '*.example.com' })).toBe(
      "--tohostsmatch '*.example.com' matched no instance (6 in the registry)",
    );
    expect(failure({ tohostsmatch: '*law*', exclude: '*.net' })).toBe(
      "--exclude '*.net' left out all 1 hosts that --tohostsmatch '*law*' selected",
    );
    expect(failure({ tohosts: ['music'] })).toBe(
      'all 1 selected instances are disabled; add --include-disabled to target them',
    );
    expect(failure({ tohosts: ['law'], fromhost: 'law' })).toMatch(
      /the only host selected is the source host https:\/\/law\.example\.net/,
    );
    expect(failure({ tohosts: '*', contains: 'zzz' })).toBe("--contains 'zzz' left out all 5 remaining hosts");
  });

  it('refuses a selector without targets, or with both --tohosts and --tohostsmatch', () => {
    expect(failure({})).toMatch(/^no targets given/);
    expect(failure({ tohosts: ['law'], tohostsmatch: '*' })).toMatch(/not both/);
    expect(failure({ tohosts: ['law', ''] })).toMatch(/empty host name/);
  });

  it("applies the web picker's contains and not-contains filters to name, short name and wwwroot", () => {
    expect(names({ tohosts: '*', contains: 'FINE' })).toEqual(['arts']);
    expect(names({ tohosts: '*', notContains: 'campus' })).toEqual(['law']);
  });

  it('applies /regex/flags, with n negating', () => {
    expect(names({ tohosts: '*', regex: '/^ph/' })).toEqual(['physics', 'physics_test']);
    expect(names({ tohosts: '*', regex: '/^PH/in' })).toEqual(['chemistry', 'law', 'arts']);
    expect(() => resolveTargets(fleet, { tohosts: '*', regex: '^ph' })).toThrow(/must look like \/pattern\/flags/);
    expect(() => resolveTargets(fleet, { tohosts: '*', regex: '/(/' })).toThrow(/--regex '\/\(\/'/);
    expect(() => resolveTargets(fleet, { tohosts: '*', regex: '/x/g' })).toThrow(/unknown flag g/);
  });

  it('checks every pattern before matching anything', () => {
    expect(() => resolveTargets(fleet, { tohostsmatch: '*', exclude: 'a,,b' })).toThrow(/--exclude: an empty pattern/);
  });
});
