// How the harness builds the images, without building them: the refs it names, the cache key of
// the inputs, the apt sources it takes from the machine, and the docs that show the same builds.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { DEFAULT_WORKLOAD_OPTIONS } from '../../src/controller/desired-workloads.ts';
import {
  bundledNpmVersion,
  debianSourcesFor,
  parseDeb822Sources,
  parseOneLineSources,
} from '../harness/image-base.ts';
import {
  chartDefaultRefs,
  hostRelaxesReleaseChecks,
  imageInputsKey,
  imageSpecs,
  qualifiedRef,
  type ImageSpec,
} from '../harness/images.ts';
import { repoRoot } from '../harness/paths.ts';

test('an image name without a registry host is resolved as Docker Hub names it', () => {
  assert.equal(qualifiedRef('mcpworks/mcpworks:0.1.0'), 'docker.io/mcpworks/mcpworks:0.1.0');
  assert.equal(qualifiedRef('busybox:1'), 'docker.io/library/busybox:1');
  assert.equal(qualifiedRef('registry.example.com/p/x:1'), 'registry.example.com/p/x:1');
  assert.equal(qualifiedRef('localhost:5000/x:1'), 'localhost:5000/x:1');
  assert.equal(qualifiedRef('localhost/x:1'), 'localhost/x:1');
});

test('the harness builds the images the chart and the operator deploy by default', () => {
  const refs = chartDefaultRefs();
  assert.deepEqual(refs, {
    operator: DEFAULT_WORKLOAD_OPTIONS.gatewayImage,
    sandbox: DEFAULT_WORKLOAD_OPTIONS.executorImage,
  });
  const specs = imageSpecs();
  assert.equal(specs.operator.ref, qualifiedRef(refs.operator));
  assert.equal(specs.sandbox.ref, qualifiedRef(refs.sandbox));
  const values = readFileSync(join(repoRoot, 'charts/mcpworks/values.yaml'), 'utf8');
  assert.match(values, /pullPolicy: (IfNotPresent|Never)\b/, 'imported images must not be pulled');
});

test('the inputs key changes with the code, the Dockerfile and the base, not with test files', () => {
  const root = mkdtempSync(join(tmpdir(), 'mcpworks-image-key-'));
  try {
    mkdirSync(join(root, 'src'));
    writeFileSync(join(root, 'Dockerfile'), 'FROM x\n');
    writeFileSync(join(root, 'package.json'), '{}');
    writeFileSync(join(root, 'src/a.ts'), 'export const a = 1;\n');
    writeFileSync(join(root, 'src/a.test.ts'), 'test\n');
    const spec: ImageSpec = {
      name: 'operator',
      dockerfile: 'Dockerfile',
      ref: 'x',
      inputs: ['package.json', 'src'],
    };
    const key = () => imageInputsKey(spec, 'base-1', root);
    const first = key();
    assert.equal(key(), first, 'the key is not stable');
    writeFileSync(join(root, 'src/a.test.ts'), 'changed test\n');
    assert.equal(key(), first, 'a test file changed the key (.dockerignore leaves tests out)');
    writeFileSync(join(root, 'src/a.ts'), 'export const a = 2;\n');
    const second = key();
    assert.notEqual(second, first, 'a source change kept the key');
    writeFileSync(join(root, 'src/b.ts'), '');
    assert.notEqual(key(), second, 'a new source file kept the key');
    writeFileSync(join(root, 'Dockerfile'), 'FROM y\n');
    assert.notEqual(imageInputsKey(spec, 'base-1', root), second);
    assert.notEqual(imageInputsKey(spec, 'base-2', root), imageInputsKey(spec, 'base-1', root));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("debootstrap's mirror and the base's sources come from the machine's Debian entries", () => {
  const sources = [
    ...parseDeb822Sources(
      [
        'Types: deb',
        '# a comment',
        'URIs: http://mirror.example/debian',
        'Suites: bookworm bookworm-updates',
        'Components: main',
        'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg',
        '',
        'Types: deb',
        'URIs: http://mirror.example/debian-security',
        'Suites: bookworm-security',
        'Components: main',
        '',
        'Types: deb',
        'URIs: https://vendor.example/apt',
        'Suites: nodistro',
        'Components: main',
        'Signed-By: /usr/share/keyrings/vendor.gpg',
      ].join('\n'),
    ),
    ...parseOneLineSources(
      'deb [signed-by=/usr/share/keyrings/x.gpg] https://other.example/apt stable main\n',
    ),
  ];
  assert.equal(sources.length, 4);
  const { mirror, entries } = debianSourcesFor(sources, 'bookworm');
  assert.equal(mirror, 'http://mirror.example/debian');
  assert.deepEqual(
    entries.map((e) => e.suites),
    [['bookworm', 'bookworm-updates'], ['bookworm-security']],
  );
  assert.throws(
    () => debianSourcesFor(sources, 'trixie'),
    /no apt source on this machine serves Debian trixie/,
  );
});

test("apt's relaxed Release checks are followed only when the machine's apt relaxes them", () => {
  assert.equal(hostRelaxesReleaseChecks('Acquire::Check-Valid-Until "false";\n'), true);
  assert.equal(hostRelaxesReleaseChecks('Acquire::Languages "none";\n'), false);
});

test('the npm of the stand-in base is the one the Node release bundles', () => {
  const changelog = [
    '<a id="24.21.0"></a>',
    '## Version 24.21.0',
    '* deps: update undici',
    '<a id="24.20.0"></a>',
    '* **deps**: upgrade npm to 11.19.0 (npm team)',
    '* **deps**: upgrade npm to 11.18.0 (npm team)',
  ].join('\n');
  assert.equal(bundledNpmVersion(changelog, '24.21.0'), '11.19.0');
  assert.throws(() => bundledNpmVersion('nothing', '24.21.0'), /names no npm version/);
});

test('the documented builds name the Dockerfiles and refs the harness builds', () => {
  const specs = Object.values(imageSpecs());
  const install = readFileSync(join(repoRoot, 'docs/install.md'), 'utf8');
  const gettingStarted = readFileSync(join(repoRoot, 'docs/getting-started.md'), 'utf8');
  for (const spec of specs) {
    const short = spec.ref.replace(/^docker\.io\//, '');
    const file = spec.dockerfile === 'Dockerfile' ? '' : `-f ${spec.dockerfile} `;
    const dockerBuild = `docker build ${file}-t ${short} .`;
    assert.ok(install.includes(dockerBuild), `docs/install.md lacks \`${dockerBuild}\``);
    const buildahBud = `buildah bud --isolation chroot --network host -f ${spec.dockerfile} -t ${spec.ref} .`;
    assert.ok(install.includes(buildahBud), `docs/install.md lacks \`${buildahBud}\``);
    assert.ok(install.includes(`docker-archive:`) && install.includes(`:${spec.ref}\n`), spec.ref);
    for (const loader of ['kind load docker-image', 'k3d image import', 'docker save -o']) {
      const line = install.split('\n').find((l) => l.includes(loader));
      assert.ok(line?.includes(short), `docs/install.md: \`${loader}\` does not load ${short}`);
    }
  }
  assert.match(install, /ctr -n k8s\.io images import/);
  const operator = specs.find((s) => s.name === 'operator')!;
  const sandbox = specs.find((s) => s.name === 'sandbox')!;
  for (const line of [
    `docker build -t ${operator.ref.replace(/^docker\.io\//, '')} .`,
    `docker build -f ${sandbox.dockerfile} -t ${sandbox.ref.replace(/^docker\.io\//, '')} .`,
  ]) {
    assert.ok(gettingStarted.includes(line), `docs/getting-started.md lacks \`${line}\``);
  }
});
