// `mcpworks serve` refuses to run when the sandbox cannot start, says why, and never listens.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../harness/paths.ts';

function runServe(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(repoRoot, 'src/cli/main.ts'), 'serve', ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

test('serve exits non-zero before listening when nsjail is missing', async () => {
  const { code, stderr } = await runServe([
    '-f',
    join(repoRoot, 'config/samples'),
    '--port',
    '0',
    '--nsjail',
    '/nonexistent/nsjail',
  ]);
  assert.equal(code, 1);
  assert.match(stderr, /sandbox is unavailable/);
  assert.doesNotMatch(stderr, /MCP endpoint/);
});

test('serve exits non-zero before listening when --ca-bundle names no readable file', async () => {
  const { code, stderr } = await runServe([
    '-f',
    join(repoRoot, 'config/samples'),
    '--port',
    '0',
    '--ca-bundle',
    '/nonexistent/ca-bundle.pem',
  ]);
  assert.equal(code, 1);
  assert.match(stderr, /CA bundle is not readable/);
  assert.doesNotMatch(stderr, /MCP endpoint/);
});

test('serve rejects an invalid manifest with the field named, before starting anything', async () => {
  const { writeFile, mkdtemp } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const dir = await mkdtemp(join(tmpdir(), 'mcpworks-bad-'));
  const file = join(dir, 'bad.yaml');
  await writeFile(
    file,
    'apiVersion: mcpworks.io/v1alpha1\nkind: McpServer\nmetadata: {name: bad}\nspec:\n  auth: {anonymous: {enabled: true}}\n  tools:\n    - {name: "1x", description: d, runtime: python, code: "x"}\n',
  );
  const { code, stderr } = await runServe(['-f', file, '--port', '0']);
  assert.equal(code, 1);
  assert.match(stderr, /spec\.tools\[0\]\.name/);
});

test('serve refuses a non-loopback listen address', async () => {
  const { code, stderr } = await runServe([
    '-f',
    join(repoRoot, 'config/samples'),
    '--host',
    '0.0.0.0',
  ]);
  assert.equal(code, 2);
  assert.match(stderr, /loopback/);
});

test('serve refuses an audit signing key that is not an Ed25519 private key, before listening', async () => {
  const { writeFile, mkdtemp } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { generateKeyPairSync } = await import('node:crypto');
  const dir = await mkdtemp(join(tmpdir(), 'mcpworks-badkey-'));
  const cases = [
    ['garbage.pem', 'not a key\n', /not a PEM private key/],
    [
      'ec.pem',
      generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
        format: 'pem',
        type: 'pkcs8',
      }) as string,
      /an ec private key, not Ed25519/,
    ],
    [
      'public.pem',
      generateKeyPairSync('ed25519').publicKey.export({ format: 'pem', type: 'spki' }) as string,
      /not a PEM private key/,
    ],
  ] as const;
  for (const [name, pem, reason] of cases) {
    await writeFile(join(dir, name), pem);
    const { code, stderr } = await runServe([
      '-f',
      join(repoRoot, 'config/samples'),
      '--port',
      '0',
      '--audit-signing-key',
      join(dir, name),
    ]);
    assert.equal(code, 1, name);
    assert.match(stderr, new RegExp(`--audit-signing-key \\S*${name}: `), name);
    assert.match(stderr, reason, name);
    assert.doesNotMatch(stderr, /MCP endpoint/, name);
  }
  const missing = await runServe([
    '-f',
    join(repoRoot, 'config/samples'),
    '--audit-signing-key',
    join(dir, 'absent.pem'),
  ]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /absent\.pem: cannot read it: ENOENT/);
});
