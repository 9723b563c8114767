// The two images, built from the project's own Dockerfiles by the harness (test/harness/images.ts)
// and checked as a node will run them: the operator program runs as its non-root user, the
// sandbox image's nsjail creates a sandbox from the runtime roots prepared at build time, the
// runtimes are the pinned ones, and neither image keeps npm or the CA bundle of the machine that
// built it.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { readImagePins } from '../harness/image-pins.ts';
import {
  ensureProjectImages,
  imageConfig,
  imageRuntimeVersions,
  runInImage,
  runPrivilegedInImage,
  withImageRootfs,
  type ProjectImages,
} from '../harness/images.ts';
import { mustRun } from '../harness/buildah.ts';

const HOST_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';
const HOST_LOCAL_CAS = '/usr/local/share/ca-certificates';

let images: ProjectImages;

before(async () => {
  images = await ensureProjectImages();
});

/** Every regular file under `dir` (not following links, not into /proc, /sys, /dev). */
function walk(root: string, dir = ''): string[] {
  if (['/proc', '/sys', '/dev'].includes(dir)) return [];
  let entries;
  try {
    entries = readdirSync(join(root, dir), { withFileTypes: true });
  } catch {
    return [];
  }
  return entries.flatMap((e) => {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory()) return walk(root, path);
    return e.isFile() ? [path] : [];
  });
}

/** The base64 bodies of the CA certificates this machine added to its bundle. */
function hostAddedCertificates(): string[] {
  let names: string[];
  try {
    names = readdirSync(HOST_LOCAL_CAS).filter((n) => n.endsWith('.crt'));
  } catch {
    return [];
  }
  return names.map((name) => {
    const pem = readFileSync(join(HOST_LOCAL_CAS, name), 'utf8');
    const body =
      /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/.exec(pem)?.[1] ?? '';
    // One line of the body is enough to recognise the certificate in any bundle.
    return body.split('\n').filter((l) => l.length >= 60)[1] ?? body.trim();
  });
}

/** Files of `ref` that carry this machine's CA bundle or a certificate it added, and build leftovers. */
async function buildLeftovers(ref: string): Promise<string[]> {
  const bundle = readFileSync(HOST_CA_BUNDLE);
  const bundleHash = createHash('sha256').update(bundle).digest('hex');
  const added = hostAddedCertificates();
  return withImageRootfs(ref, async (rootfs) => {
    const found: string[] = [];
    for (const path of walk(rootfs)) {
      const full = join(rootfs, path);
      const size = statSync(full).size;
      if (
        size === bundle.length &&
        createHash('sha256').update(readFileSync(full)).digest('hex') === bundleHash
      ) {
        found.push(`${path} (this machine's CA bundle)`);
      } else if (/\.(crt|pem)$/.test(path) && size < 2_000_000) {
        const text = readFileSync(full, 'utf8');
        if (added.some((line) => line && text.includes(line)))
          found.push(`${path} (a CA this machine added)`);
      }
    }
    for (const path of [
      '/root/.npmrc',
      '/root/.config/pip',
      '/root/.npm',
      '/root/.build-ca-certificates.crt',
    ]) {
      try {
        statSync(join(rootfs, path));
        found.push(`${path} (build settings)`);
      } catch {
        // absent, as it should be
      }
    }
    return found;
  });
}

async function hasNpm(ref: string): Promise<string[]> {
  return withImageRootfs(ref, async (rootfs) =>
    ['/usr/local/lib/node_modules/npm', '/usr/local/bin/npm', '/usr/local/bin/npx'].filter((p) => {
      try {
        statSync(join(rootfs, p));
        return true;
      } catch {
        return false;
      }
    }),
  );
}

test('both images are built from the Dockerfiles under the refs the chart deploys, and cached', async () => {
  assert.equal(images.operator.ref, 'docker.io/mcpworks/mcpworks:0.1.0');
  assert.equal(images.sandbox.ref, 'docker.io/mcpworks/sandbox:0.1.0');
  for (const image of [images.operator, images.sandbox]) {
    // ctr names the imported image after the archive's RepoTags.
    const manifest = JSON.parse(await mustRun('tar', ['-xOf', image.tar, 'manifest.json'])) as {
      RepoTags: string[];
    }[];
    assert.deepEqual(
      manifest.map((m) => m.RepoTags),
      [[image.ref]],
    );
  }
  const again = await ensureProjectImages({ log: () => {} });
  assert.equal(again.operator.built, false, 'unchanged inputs rebuilt the operator image');
  assert.equal(again.sandbox.built, false, 'unchanged inputs rebuilt the sandbox image');
  assert.equal(again.operator.tar, images.operator.tar);
  assert.equal(again.sandbox.tar, images.sandbox.tar);
});

test('the operator image runs `mcpworks --help` and `mcpworks crds` as its non-root user', async () => {
  const { ref } = images.operator;
  const config = await imageConfig(ref);
  assert.equal(config.User, '65532:65532');
  assert.deepEqual(config.Entrypoint, ['mcpworks']);
  const id = await runInImage(ref, ['id', '-u']);
  assert.equal(id.stdout.trim(), '65532');
  const help = await runInImage(ref, ['mcpworks', '--help']);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /controller/);
  const crds = await runInImage(ref, ['mcpworks', 'crds']);
  assert.equal(crds.code, 0, crds.stderr);
  for (const kind of ['McpServer', 'AgentPolicy', 'ClusterAgentPolicy']) {
    assert.match(crds.stdout, new RegExp(`kind: ${kind}\\b`));
  }
});

test('the sandbox image runs as uid 0 and its nsjail runs tools from the prepared runtime roots', async () => {
  const { ref } = images.sandbox;
  const config = await imageConfig(ref);
  assert.equal(config.User, '0:0');
  assert.deepEqual(config.Entrypoint, ['mcpworks']);
  assert.equal((await runInImage(ref, ['id', '-u'])).stdout.trim(), '0');
  const roots = await withImageRootfs(ref, async (rootfs) =>
    readdirSync(join(rootfs, 'opt/mcpworks/runtime-roots')).sort(),
  );
  assert.deepEqual(roots, ['bash', 'node', 'python']);
  const python = `python${readImagePins().pythonVersion?.split('.').slice(0, 2).join('.') ?? '3'}`;
  const jail = (runtime: string, argv: string[]) =>
    runPrivilegedInImage(ref, [
      'nsjail',
      '-Mo',
      '--chroot',
      `/opt/mcpworks/runtime-roots/${runtime}`,
      '--user',
      '65534',
      '--group',
      '65534',
      '-q',
      '--',
      ...argv,
    ]);
  const cases: [string, string[], string][] = [
    ['python', [`/usr/bin/${python}`, '-c', 'print(6 * 7)'], '42'],
    ['node', ['/usr/local/bin/node', '-e', 'console.log(6 * 7)'], '42'],
    ['bash', ['/usr/bin/bash', '-c', 'echo $((6 * 7)) | sha256sum | cut -c1-8'], '084c799c'],
  ];
  for (const [runtime, argv, expected] of cases) {
    const result = await jail(runtime, argv);
    assert.equal(result.code, 0, `${runtime} in nsjail: ${result.stderr}`);
    assert.equal(result.stdout.trim(), expected, runtime);
  }
});

test("the sandbox image's runtimes are the pinned versions", async () => {
  const pins = readImagePins();
  const versions = await imageRuntimeVersions(images.sandbox.ref);
  assert.equal(versions.node, pins.nodeVersion);
  assert.ok(pins.pythonVersion, 'sandbox-image/runtimes.env pins no PYTHON_VERSION');
  assert.equal(versions.python, pins.pythonVersion);
});

test("neither image keeps npm, this machine's CA bundle or the build's settings", async () => {
  // The base has npm (as the official image does), so its absence is the Dockerfiles' doing.
  assert.ok((await hasNpm(images.base.ref)).length > 0, 'the base image has no npm to remove');
  for (const image of [images.operator, images.sandbox]) {
    assert.deepEqual(await hasNpm(image.ref), [], `${image.ref} still has npm`);
    assert.deepEqual(await buildLeftovers(image.ref), [], image.ref);
  }
});
