import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import type { CommandIo } from '../io.ts';
import { run } from './crds.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

function capture(cwd = repoRoot) {
  const out = { stdout: '', stderr: '' };
  const io: CommandIo = {
    stdout: (text) => void (out.stdout += text),
    stderr: (text) => void (out.stderr += text),
    env: {},
    cwd,
  };
  return { io, out };
}

test('prints the three CRDs as one multi-document YAML stream', async () => {
  const { io, out } = capture();
  assert.equal(await run([], io), 0);
  const docs = parseAllDocuments(out.stdout).map(
    (d) => d.toJS() as { kind: string; metadata: { name: string } },
  );
  assert.deepEqual(
    docs.map((d) => `${d.kind} ${d.metadata.name}`),
    [
      'CustomResourceDefinition mcpservers.mcpworks.io',
      'CustomResourceDefinition agentpolicies.mcpworks.io',
      'CustomResourceDefinition clusteragentpolicies.mcpworks.io',
    ],
  );
});

test('--check passes on the committed files', async () => {
  const { io, out } = capture();
  assert.equal(await run(['--check'], io), 0, out.stderr);
});

test('--write then --check on a fresh directory', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mcpworks-crds-'));
  try {
    const before = capture(dir);
    assert.equal(await run(['--check'], before.io), 1);
    assert.match(before.out.stderr, /out of date/);
    assert.equal(await run(['--write'], capture(dir).io), 0);
    assert.equal(await run(['--check', '--dir', dir], capture().io), 0);
    const kustomization = await readFile(join(dir, 'config/crd/kustomization.yaml'), 'utf8');
    assert.match(kustomization, /bases\/mcpworks\.io_mcpservers\.yaml/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('rejects an unknown argument with usage', async () => {
  const { io, out } = capture();
  assert.equal(await run(['--frobnicate'], io), 2);
  assert.match(out.stderr, /usage: mcpworks crds/);
});
