import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Manifests } from '../../api/manifests.ts';
import { McpServerSchema } from '../../api/v1alpha1/mcpserver.ts';
import { isMcpworksError } from '../../shared/errors.ts';
import { buildSnapshots, createStaticSource } from './static.ts';

function server(
  tool: Record<string, unknown>,
  auth: Record<string, unknown> = { apiKeys: { secretRef: { name: 'keys' } } },
) {
  return McpServerSchema.parse({
    apiVersion: 'mcpworks.io/v1alpha1',
    kind: 'McpServer',
    metadata: { name: 's', namespace: 'ns' },
    spec: { auth, tools: [{ name: 't', description: 'd', runtime: 'python', ...tool }] },
  });
}

function manifests(parts: Partial<Manifests>): Manifests {
  return { servers: [], policies: [], clusterPolicies: [], secrets: [], configMaps: [], ...parts };
}

const configMap = (namespace: string, data: Record<string, string>) =>
  ({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'code', namespace },
    data,
  }) as Manifests['configMaps'][number];

test('codeFrom is resolved from a ConfigMap in the same namespace', () => {
  const m = manifests({
    servers: [server({ codeFrom: { configMapKeyRef: { name: 'code', key: 'main.py' } } })],
    configMaps: [configMap('ns', { 'main.py': 'def main(a): return 1' })],
  });
  const [snapshot] = buildSnapshots(m, 1).snapshots;
  assert.equal(snapshot!.tools[0]!.code, 'def main(a): return 1');
  assert.equal('codeFrom' in snapshot!.tools[0]!, false);
});

test('a ConfigMap in another namespace does not count: the field is named in the error', () => {
  const m = manifests({
    servers: [server({ codeFrom: { configMapKeyRef: { name: 'code', key: 'main.py' } } })],
    configMaps: [configMap('other', { 'main.py': 'x' })],
  });
  assert.throws(
    () => buildSnapshots(m, 1),
    (e: unknown) =>
      isMcpworksError(e, 'InvalidManifest') &&
      /McpServer ns\/s: spec\.tools\[0\]\.codeFrom\.configMapKeyRef: ConfigMap ns\/code not found/.test(
        e.message,
      ),
  );
});

test('a missing key in the ConfigMap is an error naming the key', () => {
  const m = manifests({
    servers: [server({ codeFrom: { configMapKeyRef: { name: 'code', key: 'main.py' } } })],
    configMaps: [configMap('ns', { 'other.py': 'x' })],
  });
  assert.throws(() => buildSnapshots(m, 1), /has no key "main.py"/);
});

test('API-key Secret data is decoded for the authenticator', () => {
  const m = manifests({
    servers: [server({ code: 'x' })],
    secrets: [
      {
        apiVersion: 'v1',
        kind: 'Secret',
        type: 'Opaque',
        metadata: { name: 'keys', namespace: 'ns' },
        data: { k1: Buffer.from('{"a":1}').toString('base64') },
      },
    ],
  });
  assert.deepEqual(buildSnapshots(m, 1).snapshots[0]!.apiKeySecretData, { k1: '{"a":1}' });
});

test('a missing API-key Secret is a warning and rejects every key (fail closed)', () => {
  const built = buildSnapshots(manifests({ servers: [server({ code: 'x' })] }), 1);
  assert.equal(built.snapshots[0]!.apiKeySecretData, undefined);
  assert.match(built.warnings.join('\n'), /Secret ns\/keys not found; every API key is rejected/);
});

test('namespace labels carry the name label every cluster sets', () => {
  const [snapshot] = buildSnapshots(manifests({ servers: [server({ code: 'x' })] }), 1).snapshots;
  assert.deepEqual(snapshot!.namespaceLabels, { 'kubernetes.io/metadata.name': 'ns' });
});

test('the static source publishes replacements to listeners until they unsubscribe', () => {
  const [first] = buildSnapshots(manifests({ servers: [server({ code: 'x' })] }), 1).snapshots;
  const source = createStaticSource(first!);
  const seen: number[] = [];
  const stop = source.onChange((s) => seen.push(s.revision));
  source.replace({ ...first!, revision: 2 });
  stop();
  source.replace({ ...first!, revision: 3 });
  assert.deepEqual(seen, [2]);
  assert.equal(source.current().revision, 3);
});
