import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { errorKind } from '../core/errors.ts';

/** A template's name: what `templates show` and `template=` take, and its folder's name. */
const TEMPLATE_NAME = /^[a-z0-9][a-z0-9._-]{0,99}$/i;

export class TemplateError extends errorKind('not_found') {}

export function templateNameProblem(name: string): string | undefined {
  return TEMPLATE_NAME.test(name) && !name.endsWith('.partial')
    ? undefined
    : `'${name}' is not a template name (letters, digits, . _ and -, at most 100)`;
}

/** What a snapshot records of where it came from, beside its database dump and dataroot copy. */
export interface TemplateManifest {
  name: string;
  source: { kind: 'instance' | 'master'; shortname: string; wwwroot: string; dataroot: string };
  /** The table prefix of the dump's tables. */
  prefix: string;
  /** The source's Moodle `version` and `release`, as its config holds them. */
  version: string;
  release: string;
  /** When the snapshot was taken, unix ms. */
  createdAt: number;
  tables: number;
  rows: number;
  /** Bytes of the dump (gzipped) and of the dataroot copy. */
  dumpBytes: number;
  datarootBytes: number;
}

/** Bytes as operators read sizes. */
export const mb = (bytes: number) => `${(bytes / 1_048_576).toFixed(1)} MB`;

/** A template in one line, as every front end lists it. */
export const templateLine = (m: TemplateManifest) =>
  `${m.name}: ${m.source.kind === 'master' ? 'the master' : m.source.shortname} (${m.source.wwwroot}), Moodle ${m.release || m.version}, ${m.tables} tables, ${mb(m.dumpBytes)} dump + ${mb(m.datarootBytes)} dataroot, taken ${new Date(m.createdAt).toISOString().slice(0, 16).replace('T', ' ')} UTC`;

/** Where a template's parts are kept. */
export interface TemplatePaths {
  folder: string;
  manifest: string;
  dump: string;
  dataroot: string;
}

export const templatePaths = (dir: string, name: string): TemplatePaths => {
  const folder = join(dir, name);
  return {
    folder,
    manifest: join(folder, 'manifest.json'),
    dump: join(folder, 'database.sql.gz'),
    dataroot: join(folder, 'dataroot'),
  };
};

/**
 * The templates folder (VMoodle's `vmoodle/` snapshots): one folder a template, made under a `.partial` name and
 * renamed once whole, so that a snapshot cut short is never listed.
 */
export class TemplateStore {
  constructor(readonly dir: string) {}

  paths(name: string): TemplatePaths {
    const problem = templateNameProblem(name);
    if (problem) throw new TemplateError(problem);
    return templatePaths(this.dir, name);
  }

  async list(): Promise<TemplateManifest[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const found = await Promise.all(names.filter((n) => !templateNameProblem(n)).map((n) => this.find(n)));
    return found.filter((m): m is TemplateManifest => m !== undefined).sort((a, b) => b.createdAt - a.createdAt);
  }

  /** A template's manifest, or undefined when there is no such (whole) template. */
  async find(name: string): Promise<TemplateManifest | undefined> {
    try {
      return JSON.parse(await readFile(this.paths(name).manifest, 'utf8')) as TemplateManifest;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async get(name: string): Promise<TemplateManifest> {
    const found = await this.find(name);
    if (!found) throw new TemplateError(`no template '${name}' in ${this.dir} (templates list shows them)`);
    return found;
  }

  async exists(name: string): Promise<boolean> {
    return stat(this.paths(name).folder).then(
      () => true,
      () => false,
    );
  }

  async remove(name: string): Promise<TemplateManifest> {
    const manifest = await this.get(name);
    await rm(this.paths(name).folder, { recursive: true, force: true });
    return manifest;
  }
}
