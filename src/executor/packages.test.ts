import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { ErrorCode, isMcpworksError } from '../shared/errors.ts';
import { PACKAGES_DIR, packageFiles, packagesInside } from './packages.ts';
import { planRuntimeRoot } from './runtime-root.ts';

const repo = (path: string) => fileURLToPath(new URL(`../../${path}`, import.meta.url));

describe('packageFiles', () => {
  const dir = mkdtempSync(join(tmpdir(), 'packages-unit-'));
  mkdirSync(join(dir, 'python', 'idna'), { recursive: true });
  writeFileSync(join(dir, 'python', 'idna', '__init__.py'), '');
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('no packages directory: nothing for any runtime', () => {
    for (const runtime of ['python', 'node', 'bash'] as const)
      assert.deepEqual(packageFiles(undefined, runtime), []);
  });

  test('each runtime gets its own subdirectory at the fixed inside path, bash none', () => {
    assert.deepEqual(packageFiles(dir, 'python'), [
      { source: join(dir, 'python'), target: '/opt/mcpworks/packages/python' },
    ]);
    assert.deepEqual(packageFiles(dir, 'node'), [], 'no node/ subdirectory');
    assert.deepEqual(packageFiles(dir, 'bash'), []);
  });

  test('the root plan holds the packages as files of the root', () => {
    const plan = planRuntimeRoot({
      files: packageFiles(dir, 'python'),
      symlinks: [],
      generated: {},
      devices: [],
    });
    assert.equal(plan.get('/opt/mcpworks/packages/python/idna/__init__.py')?.kind, 'link');
    assert.equal(plan.get('/opt/mcpworks/packages')?.kind, 'dir');
  });

  test('a directory that does not exist, or a subdirectory that is a file, is refused', () => {
    const refused = (pattern: RegExp) => (error: unknown) =>
      isMcpworksError(error) &&
      error.code === ErrorCode.SandboxUnavailable &&
      pattern.test(error.message);
    assert.throws(() => packageFiles(join(dir, 'absent'), 'python'), refused(/does not exist/));
    const odd = mkdtempSync(join(tmpdir(), 'packages-unit-'));
    try {
      chmodSync(odd, 0o755);
      writeFileSync(join(odd, 'node'), '');
      assert.throws(() => packageFiles(odd, 'node'), refused(/node is not a directory/));
    } finally {
      rmSync(odd, { recursive: true, force: true });
    }
  });
});

describe('the bootstraps and the image agree on the packages location', () => {
  test('python and node look where the roots put them', () => {
    assert.equal(PACKAGES_DIR, '/opt/mcpworks/packages');
    const python = readFileSync(repo('src/executor/bootstrap/python.py'), 'utf8');
    const node = readFileSync(repo('src/executor/bootstrap/node.cjs'), 'utf8');
    assert.match(python, new RegExp(`^_PACKAGES = "${packagesInside('python')}"$`, 'm'));
    assert.match(node, new RegExp(`^const PACKAGES = '${packagesInside('node')}';$`, 'm'));
  });

  test("the example Dockerfile installs there, FROM the chart's executor image", () => {
    const dockerfile = readFileSync(repo('sandbox-image/packages/Dockerfile'), 'utf8');
    const values = parseYaml(readFileSync(repo('charts/mcpworks/values.yaml'), 'utf8')) as {
      workloadImages: { executor: string };
    };
    assert.match(
      dockerfile,
      new RegExp(`^ARG SANDBOX_IMAGE=${values.workloadImages.executor}$`, 'm'),
    );
    for (const runtime of ['python', 'node'] as const)
      assert.match(dockerfile, new RegExp(` ${packagesInside(runtime)}$`, 'm'));
    assert.match(dockerfile, /--prepare-runtime-roots \/opt\/mcpworks\/runtime-roots$/m);
  });
});

describe("the example's pins", () => {
  test('every python requirement is pinned by version and sha256', () => {
    const text = readFileSync(repo('sandbox-image/packages/requirements.txt'), 'utf8');
    const requirements = text
      .replace(/\s*\\\n\s*/g, ' ')
      .split('\n')
      .map((line) => line.replace(/#.*$/, '').trim())
      .filter(Boolean);
    assert.ok(requirements.length > 0);
    for (const line of requirements)
      assert.match(line, /^[A-Za-z0-9._-]+==[0-9][^\s]*( --hash=sha256:[0-9a-f]{64})+$/, line);
  });

  test('every npm package is locked with an integrity hash, from no named registry', () => {
    const lock = JSON.parse(
      readFileSync(repo('sandbox-image/packages/package-lock.json'), 'utf8'),
    ) as {
      lockfileVersion: number;
      packages: Record<string, { version?: string; integrity?: string; resolved?: string }>;
    };
    assert.equal(lock.lockfileVersion, 3);
    const installed = Object.entries(lock.packages).filter(([path]) => path !== '');
    assert.ok(installed.length > 0);
    for (const [path, entry] of installed) {
      assert.match(entry.integrity ?? '', /^sha512-/, path);
      // npm fetches from whatever registry the build is configured with (a mirror too)
      assert.equal(entry.resolved, undefined, path);
    }
  });
});
