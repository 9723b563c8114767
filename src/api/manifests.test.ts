import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { isMcpworksError } from '../shared/errors.ts';
import { formatPath, loadManifests, MAX_MANIFEST_BYTES, validateObject } from './manifests.ts';

const tool = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  description: `the ${name} tool`,
  runtime: 'python',
  code: 'def main(args):\n  return args\n',
  ...extra,
});

const server = (
  name: string,
  spec: Record<string, unknown> = {},
  metadata: Record<string, unknown> = {},
) => ({
  apiVersion: 'mcpworks.io/v1alpha1',
  kind: 'McpServer',
  metadata: { name, ...metadata },
  spec: { tools: [tool('echo')], auth: { apiKeys: { secretRef: { name: 'keys' } } }, ...spec },
});

const policy = (name: string) => ({
  apiVersion: 'mcpworks.io/v1alpha1',
  kind: 'AgentPolicy',
  metadata: { name },
  spec: {
    servers: { names: ['demo'] },
    rules: [
      {
        effect: 'Allow',
        subjects: [{ kind: 'Agent', name: 'bot' }],
        tools: ['echo'],
        reason: 'demo',
      },
    ],
  },
});

const yamlDocs = (...docs: unknown[]) => docs.map((d) => stringify(d)).join('---\n');

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mcpworks-manifests-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function fixture(name: string, text: string): Promise<string> {
  const sub = await mkdtemp(join(dir, 'case-'));
  await writeFile(join(sub, name), text);
  return sub;
}

async function loadError(paths: string[]): Promise<string> {
  try {
    await loadManifests(paths);
  } catch (error) {
    assert.ok(
      isMcpworksError(error, 'InvalidManifest'),
      `expected InvalidManifest, got ${String(error)}`,
    );
    return error.message;
  }
  assert.fail('expected loadManifests to reject');
}

describe('loadManifests', () => {
  test('groups multi-document files by kind and defaults the namespace', async () => {
    const secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'keys' },
      stringData: { k: 'v' },
    };
    const sub = await fixture(
      'all.yaml',
      `---\n${yamlDocs(server('demo'), policy('p'), secret)}---\n`,
    );
    const loaded = await loadManifests([sub]);
    assert.equal(loaded.servers.length, 1);
    assert.equal(loaded.servers[0]?.metadata.namespace, 'default');
    assert.equal(loaded.policies[0]?.metadata.namespace, 'default');
    assert.equal(loaded.secrets[0]?.data.k, Buffer.from('v').toString('base64'));
  });

  test('applies the schema defaults', async () => {
    const sub = await fixture('s.yaml', stringify(server('demo')));
    const [loaded] = (await loadManifests([sub])).servers;
    assert.equal(loaded?.spec.tools[0]?.timeoutSeconds, 10);
    assert.equal(loaded?.spec.tools[0]?.limits.memoryMiB, 256);
    assert.deepEqual(loaded?.spec.auth.anonymous, { enabled: false });
  });

  test('reads directories in name order and skips kustomization files', async () => {
    const sub = await fixture('b.yaml', stringify(server('second')));
    await writeFile(join(sub, 'a.json'), JSON.stringify(server('first')));
    await writeFile(join(sub, 'kustomization.yaml'), 'resources: [a.json]\n');
    await writeFile(join(sub, 'README.md'), '# not a manifest\n');
    const loaded = await loadManifests([sub]);
    assert.deepEqual(
      loaded.servers.map((s) => s.metadata.name),
      ['first', 'second'],
    );
  });

  test('reads a mounted ConfigMap directory (symlinked files, dot-directories skipped)', async () => {
    const sub = await mkdtemp(join(dir, 'configmap-'));
    await mkdir(join(sub, '..2026_11_24_05_00_00.1'));
    await writeFile(
      join(sub, '..2026_11_24_05_00_00.1', 'server.yaml'),
      stringify(server('mounted')),
    );
    await symlink('..2026_11_24_05_00_00.1', join(sub, '..data'));
    await symlink(join('..data', 'server.yaml'), join(sub, 'server.yaml'));
    const loaded = await loadManifests([sub]);
    assert.deepEqual(
      loaded.servers.map((s) => s.metadata.name),
      ['mounted'],
    );
  });

  test('drops the namespace of a cluster-scoped policy', async () => {
    const cluster = {
      ...policy('c'),
      kind: 'ClusterAgentPolicy',
      metadata: { name: 'c', namespace: 'x' },
    };
    const sub = await fixture('c.yaml', stringify(cluster));
    const [loaded] = (await loadManifests([sub])).clusterPolicies;
    assert.equal(loaded?.metadata.namespace, undefined);
  });

  test('reports every problem with file, object and field path', async () => {
    const bad = server('demo', { tools: [tool('ok'), tool('1bad')] });
    const sub = await fixture('bad.yaml', yamlDocs(bad, { ...policy('p'), spec: { rules: [] } }));
    const message = await loadError([sub]);
    assert.match(
      message,
      /bad\.yaml: McpServer default\/demo: spec\.tools\[1\]\.name: must be lower case: a letter first/,
    );
    assert.match(message, /bad\.yaml: AgentPolicy default\/p: spec\.servers: Required value/);
    assert.match(message, /AgentPolicy default\/p: spec\.rules: Too small/);
  });

  test('rejects unknown kinds', async () => {
    const sub = await fixture(
      'd.yaml',
      stringify({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'x' } }),
    );
    assert.match(await loadError([sub]), /d\.yaml: Deployment x: kind: unsupported/);
  });

  test('rejects the same object defined twice', async () => {
    const sub = await fixture('dup.yaml', yamlDocs(server('demo'), server('demo')));
    assert.match(await loadError([sub]), /duplicate object, already defined in/);
  });

  test('rejects YAML that does not parse', async () => {
    const sub = await fixture('broken.yaml', 'kind: [unclosed\n');
    assert.match(await loadError([sub]), /broken\.yaml: .*not valid YAML/);
  });

  test('rejects a __proto__ key instead of letting it become a prototype', async () => {
    const sub = await fixture(
      'proto.yaml',
      'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  __proto__:\n    namespace: kube-system\n',
    );
    assert.match(
      await loadError([sub]),
      /proto\.yaml: ConfigMap default\/c: metadata: "__proto__" is not a valid field name/,
    );
  });

  test('rejects a file above the size cap', async () => {
    const sub = await fixture('big.yaml', `# ${'x'.repeat(MAX_MANIFEST_BYTES)}\n`);
    assert.match(await loadError([sub]), /big\.yaml: \d+ bytes is more than/);
  });

  test('rejects a path that does not exist', async () => {
    assert.match(await loadError([join(dir, 'missing.yaml')]), /missing\.yaml: ENOENT/);
  });
});

describe('validateObject', () => {
  test('names a duplicate tool by its list index', () => {
    const result = validateObject(server('demo', { tools: [tool('a'), tool('a')] }));
    assert.deepEqual(result.ok ? [] : result.errors, [
      'spec.tools[1]: Duplicate value: {"name":"a"}',
    ]);
  });

  test('rejects a __proto__ key from JSON instead of inheriting its fields', () => {
    const text = JSON.stringify(policy('p')).replace(
      '"metadata":{',
      '"metadata":{"__proto__":{"namespace":"kube-system"},',
    );
    const result = validateObject(JSON.parse(text));
    assert.deepEqual(result.ok ? [] : result.errors, [
      'metadata: "__proto__" is not a valid field name',
    ]);
  });

  test('reports unknown fields as the API server does', () => {
    const result = validateObject(server('demo', { tools: [tool('a', { timeout: 3 })] }));
    assert.deepEqual(result.ok ? [] : result.errors, [
      'spec.tools[0].timeout: unknown field "timeout"',
    ]);
  });

  test('reports an unsupported enum value with the supported ones', () => {
    const result = validateObject(server('demo', { tools: [tool('a', { runtime: 'ruby' })] }));
    assert.deepEqual(result.ok ? [] : result.errors, [
      'spec.tools[0].runtime: Unsupported value: "ruby": supported values: "python", "node", "bash"',
    ]);
  });

  test('rejects a policy condition that does not compile', () => {
    const p = policy('p');
    const rule = { ...p.spec.rules[0], conditions: ['args.size >'] };
    const result = validateObject({ ...p, spec: { ...p.spec, rules: [rule] } });
    assert.equal(result.ok, false);
    assert.match(
      result.ok ? '' : (result.errors[0] ?? ''),
      /^spec\.rules\[0\]\.conditions\[0\]: does not compile/,
    );
  });
});

test('formatPath writes list indexes and odd keys the way Kubernetes does', () => {
  assert.equal(formatPath(['spec', 'tools', 1, 'name']), 'spec.tools[1].name');
  assert.equal(
    formatPath(['metadata', 'labels', 'app.kubernetes.io/name']),
    'metadata.labels["app.kubernetes.io/name"]',
  );
  assert.equal(formatPath([]), '<root>');
});
