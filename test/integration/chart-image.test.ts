// The operator image, checked without a container engine: the Dockerfile's choices hold (pinned
// base, non-root user the chart also sets, only production dependencies needed at run time), and
// the compiled program it ships starts as `mcpworks` the way its ENTRYPOINT runs it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { builtinModules } from 'node:module';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { repoRoot } from '../harness/paths.ts';
import { helmTemplate, parseObjects } from './chart-support.ts';

const dockerfile = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8');
const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
};

const work = mkdtempSync(join(tmpdir(), 'mcpworks-image-'));
after(() => rmSync(work, { recursive: true, force: true }));

/**
 * The package names run-time code loads: every module reachable from src/cli/main.ts through
 * static and dynamic imports (test helpers under src/ that nothing at run time imports are out).
 */
function runtimePackages(): Map<string, string> {
  const packages = new Map<string, string>();
  const seen = new Set<string>();
  const queue = [join(repoRoot, 'src', 'cli', 'main.ts')];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    const specs = [
      ...text.matchAll(/^\s*(?:import|export)\s(?:[^'"]*?\sfrom\s)?['"]([^'"]+)['"]/gm),
      ...text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g),
    ].map((m) => m[1]!);
    for (const spec of specs) {
      if (spec.startsWith('.')) queue.push(join(dirname(file), spec));
      else if (!spec.startsWith('node:')) {
        const name = spec.startsWith('@')
          ? spec.split('/').slice(0, 2).join('/')
          : spec.split('/')[0]!;
        if (!packages.has(name)) packages.set(name, file.slice(repoRoot.length + 1));
      }
    }
  }
  return packages;
}

test('the base image is pinned to an exact version', () => {
  const base = /^ARG NODE_IMAGE=(\S+)$/m.exec(dockerfile)?.[1];
  assert.ok(base, 'no ARG NODE_IMAGE');
  assert.match(base, /^node:\d+\.\d+\.\d+-[a-z]+-slim$/);
});

test('the image runs as the non-root user the chart sets, with entrypoint mcpworks', async () => {
  assert.match(dockerfile, /^USER 65532:65532$/m);
  assert.match(dockerfile, /^ENTRYPOINT \["mcpworks"\]$/m);
  const deployment = parseObjects(await helmTemplate({ namespace: 'x' })).find(
    (o) => o.kind === 'Deployment',
  ) as unknown as { spec: { template: { spec: { securityContext: Record<string, unknown> } } } };
  const sc = deployment.spec.template.spec.securityContext;
  assert.equal(sc.runAsUser, 65532);
  assert.equal(sc.runAsGroup, 65532);
  assert.equal(sc.runAsNonRoot, true);
});

test('run-time code imports only production dependencies (the image omits dev ones)', () => {
  const allowed = new Set([...Object.keys(pkg.dependencies), ...builtinModules]);
  const packages = runtimePackages();
  assert.ok(packages.has('pino'), `the import walk found too little: ${[...packages.keys()]}`);
  const offenders = [...packages]
    .filter(([name]) => !allowed.has(name))
    .map(([name, file]) => `${file}: ${name}`);
  assert.deepEqual(offenders, []);
});

for (const file of ['Dockerfile', 'sandbox-image/Dockerfile']) {
  test(`every COPY source of ${file} exists and is in the build context (.dockerignore)`, () => {
    const text = readFileSync(join(repoRoot, file), 'utf8');
    const ignore = readFileSync(join(repoRoot, '.dockerignore'), 'utf8');
    const included = new Set([...ignore.matchAll(/^!(\S+?)\/?$/gm)].map((m) => m[1]!));
    const sources = [...text.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) =>
      m[1]!.split(/\s+/),
    );
    assert.ok(sources.length > 0, `${file} copies nothing from the context`);
    for (const source of sources) {
      assert.ok(included.has(source), `${file}: ${source} is excluded from the build context`);
      assert.ok(existsSync(join(repoRoot, source)), `${file}: ${source} does not exist`);
    }
  });
}

test('the compiled program starts as `mcpworks` the way the image runs it', () => {
  const dist = join(work, 'app', 'dist');
  const tsc = spawnSync(
    process.execPath,
    [
      join(repoRoot, 'node_modules/typescript/bin/tsc'),
      '-p',
      'tsconfig.build.json',
      '--outDir',
      dist,
    ],
    { cwd: repoRoot, encoding: 'utf8', timeout: 180_000 },
  );
  assert.equal(tsc.status, 0, tsc.stdout + tsc.stderr);
  // As in the Dockerfile: dist/cli/main.js executable, symlinked as `mcpworks`.
  symlinkSync(join(repoRoot, 'node_modules'), join(work, 'app', 'node_modules'));
  chmodSync(join(dist, 'cli', 'main.js'), 0o755);
  const bin = join(work, 'bin');
  spawnSync('mkdir', [bin]);
  symlinkSync(join(dist, 'cli', 'main.js'), join(bin, 'mcpworks'));
  const env = { ...process.env, PATH: `${bin}:${process.env['PATH']}` };
  for (const args of [['--help'], ['controller', '--help'], ['gateway', '--help']]) {
    const r = spawnSync('mcpworks', args, { env, encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, `mcpworks ${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stdout, /^usage: mcpworks/);
  }
});
