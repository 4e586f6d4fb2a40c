// The layers of src/, bottom to top (docs/architecture.md). A module imports only from its own layer or the ones
// below it, type-only imports included; layers listed together are siblings and do not import each other.
const LAYERS = [
  ['core'],
  ['registry'],
  ['ops/moodle'],
  ['ops/files', 'ops/delivery', 'ops/lifecycle'],
  ['ops/commands'],
  ['ops/executor'],
  ['ops/schedules'],
  ['verbs'],
  ['cli', 'bot'],
  ['app'],
];

const folder = (name) => `^src/${name}/`;
const any = (names) => names.map(folder).join('|');

const upward = LAYERS.flatMap((floor, i) => {
  const above = LAYERS.slice(i + 1).flat();
  return floor.flatMap((name) => {
    const barred = [...above, ...floor.filter((n) => n !== name)];
    return barred.length === 0 ? [] : [{
    name: `${name.replace('/', '-')}-imports-up`,
    comment: `${name} may import only from the layers below it`,
    severity: 'error',
    from: { path: folder(name) },
    to: { path: any(barred) },
  }];
  });
});

module.exports = {
  forbidden: [
    ...upward,
    {
      name: 'no-circular',
      comment: 'an import cycle ties layers or modules together: one side must give way (a narrower type, a move)',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'outside-the-layers',
      comment: 'every module lives in a layer; only the entry point sits at the top of src/',
      severity: 'error',
      from: { path: '^src/', pathNot: `^src/bin\\.ts$|${any(LAYERS.flat())}` },
      to: {},
    },
    {
      name: 'entry-point-only-starts-the-app',
      comment: 'bin.ts is the entry point: it starts the composition root and nothing else',
      severity: 'error',
      from: { path: '^src/bin\\.ts$' },
      to: { path: '^src/', pathNot: folder('app') },
    },
  ],
  options: {
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|dist)/' },
  },
};
