import type { MasterHost } from '../../src/core/config.ts';
import { Fleet } from '../../src/registry/fleet.ts';
import { INSTANCE_DEFAULTS, type Instance } from '../../src/registry/instance.ts';

export const MASTER: MasterHost = { shortname: 'master', wwwroot: 'https://master.example.org', dataroot: undefined };

let nextId = 1;

/** A registry row as VMoodle would hold it, for tests of selection logic. */
export function instance(shortname: string, vhostname: string, extra: Partial<Instance> = {}): Instance {
  const id = nextId++;
  return {
    ...INSTANCE_DEFAULTS,
    id,
    name: shortname[0]!.toUpperCase() + shortname.slice(1),
    shortname,
    vhostname,
    vdbname: `moodle_${shortname}`,
    vdatapath: `/var/moodledata/${shortname}`,
    timecreated: 0,
    lastcron: 0,
    lastcrongap: 0,
    croncount: 0,
    metadata: '',
    ...extra,
  };
}

export const fleetOf = (instances: Instance[]) => new Fleet(instances, MASTER);
