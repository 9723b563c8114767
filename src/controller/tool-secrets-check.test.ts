import assert from 'node:assert/strict';
import { test } from 'node:test';
import { McpServerSchema, type McpServer } from '../api/v1alpha1/mcpserver.ts';
import type { KubeObject } from '../k8s/types.ts';
import { toolSecretProblems } from './tool-secrets-check.ts';

function server(): McpServer {
  const tool = (name: string, vars: [string, string, string][]) => ({
    name,
    description: name,
    runtime: 'python',
    code: 'x',
    secretEnv: vars.map(([v, secret, key]) => ({ name: v, secretKeyRef: { name: secret, key } })),
  });
  return McpServerSchema.parse({
    apiVersion: 'mcpworks.io/v1alpha1',
    kind: 'McpServer',
    metadata: { name: 'demo', namespace: 'team' },
    spec: {
      auth: { anonymous: { enabled: true } },
      tools: [
        tool('create_issue', [
          ['GITHUB_TOKEN', 'github', 'token'],
          ['DB_PASSWORD', 'db', 'password'],
        ]),
        tool('sync', [['TOKEN', 'github', 'token']]),
        tool('plain', []),
      ],
    },
  });
}

const VALUE = 's3cr3t-value';
const secret = (name: string, keys: string[]): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: { name, namespace: 'team' },
  data: Object.fromEntries(keys.map((k) => [k, Buffer.from(VALUE).toString('base64')])),
});

test('all Secrets and keys present: no problem', () => {
  const secrets = new Map([
    ['github', secret('github', ['token'])],
    ['db', secret('db', ['password'])],
  ]);
  assert.deepEqual(toolSecretProblems(server(), secrets), []);
});

test('a missing Secret is one problem naming every variable and tool that reads it', () => {
  const secrets = new Map([
    ['github', undefined],
    ['db', secret('db', ['password'])],
  ]);
  assert.deepEqual(toolSecretProblems(server(), secrets), [
    {
      reason: 'SecretNotFound',
      message:
        'Secret team/github (secretEnv GITHUB_TOKEN of tool create_issue, TOKEN of tool sync) not found: calls of these tools fail until it exists',
    },
  ]);
});

test('a missing key names the Secret, the key, the variable and the tool, never a value', () => {
  const secrets = new Map([
    ['github', secret('github', ['token'])],
    ['db', secret('db', ['user'])],
  ]);
  const problems = toolSecretProblems(server(), secrets);
  assert.deepEqual(problems, [
    {
      reason: 'SecretKeyNotFound',
      message:
        'Secret team/db has no key "password" (secretEnv DB_PASSWORD of tool create_issue): calls of these tools fail until it exists',
    },
  ]);
  const text = JSON.stringify(problems);
  assert.ok(!text.includes(VALUE) && !text.includes(Buffer.from(VALUE).toString('base64')));
});

test('both kinds at once, each reported', () => {
  const problems = toolSecretProblems(
    server(),
    new Map([
      ['github', secret('github', [])],
      ['db', undefined],
    ]),
  );
  assert.deepEqual(
    problems.map((p) => p.reason),
    ['SecretKeyNotFound', 'SecretNotFound'],
  );
});

test("the operator's own Secrets are refused to tools: Degraded SecretNotAllowed, and never mounted", async () => {
  const { referencedSecretKeys } = await import('./desired-workloads.ts');
  const base = server();
  const reserved = McpServerSchema.parse({
    ...base,
    spec: {
      ...base.spec,
      auth: { apiKeys: { secretRef: { name: 'demo-keys' } } },
      audit: { signingKeySecretRef: { name: 'demo-signing' } },
      tools: [
        ...base.spec.tools,
        {
          name: 'steal',
          description: 'steal',
          runtime: 'python',
          code: 'x',
          secretEnv: [
            { name: 'A', secretKeyRef: { name: 'demo-executor-token', key: 'token' } },
            { name: 'B', secretKeyRef: { name: 'other-executor-token', key: 'token' } },
            { name: 'C', secretKeyRef: { name: 'demo-signing', key: 'ed25519.key' } },
            { name: 'D', secretKeyRef: { name: 'demo-keys', key: 'k1' } },
          ],
        },
      ],
    },
  });
  const present = new Map<string, KubeObject | undefined>([
    ['github', secret('github', ['token'])],
    ['db', secret('db', ['password'])],
  ]);
  const problems = toolSecretProblems(reserved, present);
  assert.deepEqual(
    problems.map((p) => p.reason),
    ['SecretNotAllowed', 'SecretNotAllowed', 'SecretNotAllowed', 'SecretNotAllowed'],
  );
  assert.match(problems[0]!.message, /demo-executor-token .*A of tool steal.*executor token/);
  assert.match(problems[2]!.message, /audit signing key/);
  assert.match(problems[3]!.message, /API keys/);
  assert.deepEqual([...referencedSecretKeys(reserved).keys()], ['db', 'github']);
});
