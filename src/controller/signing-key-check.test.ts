import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { test } from 'node:test';
import { McpServerSchema, type McpServer } from '../api/v1alpha1/mcpserver.ts';
import { generateSigningKey } from '../gateway/decisions/signing.ts';
import type { KubeObject } from '../k8s/types.ts';
import { signingKeyProblem } from './signing-key-check.ts';

function server(signingKeySecretRef?: { name: string; key?: string }): McpServer {
  return McpServerSchema.parse({
    apiVersion: 'mcpworks.io/v1alpha1',
    kind: 'McpServer',
    metadata: { name: 'demo', namespace: 'team' },
    spec: {
      auth: { anonymous: { enabled: true } },
      tools: [{ name: 'echo', description: 'echo', runtime: 'python', code: 'x' }],
      audit: signingKeySecretRef === undefined ? {} : { signingKeySecretRef },
    },
  });
}

const secret = (data: Record<string, string>): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: { name: 'audit-key', namespace: 'team' },
  data: Object.fromEntries(
    Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
  ),
});

test('no signing key configured: nothing to check', () => {
  assert.equal(signingKeyProblem(server(), undefined), undefined);
});

test('an Ed25519 key under the default key name is fine', () => {
  const key = generateSigningKey().privateKeyPem;
  assert.equal(
    signingKeyProblem(server({ name: 'audit-key' }), secret({ 'ed25519.key': key })),
    undefined,
  );
});

test('a missing Secret, a missing key and a key of another kind are named', () => {
  const ref = { name: 'audit-key' };
  assert.deepEqual(signingKeyProblem(server(ref), undefined), {
    reason: 'SecretNotFound',
    message:
      'Secret team/audit-key (spec.audit.signingKeySecretRef) not found: gateway pods cannot start',
  });
  assert.equal(
    signingKeyProblem(
      server({ name: 'audit-key', key: 'other.pem' }),
      secret({ 'ed25519.key': 'x' }),
    )?.reason,
    'SecretKeyNotFound',
  );
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
    format: 'pem',
    type: 'pkcs8',
  }) as string;
  const invalid = signingKeyProblem(server(ref), secret({ 'ed25519.key': ec }));
  assert.equal(invalid?.reason, 'InvalidSigningKey');
  assert.match(
    invalid?.message ?? '',
    /key "ed25519\.key" is not an Ed25519 private key .*an ec private key/,
  );
});
