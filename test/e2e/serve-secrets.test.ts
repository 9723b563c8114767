// `mcpworks serve` with tools that declare secretEnv, through a real MCP client and the real
// nsjail: values come from the Secret manifests, only the declaring tools see them, leaks are
// redacted in the MCP result, a missing key is warned about at start and fails its calls closed,
// a Secret edited under --watch applies to the next call, and no value ever reaches serve's
// output or a decision record line.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { stringify } from 'yaml';
import { connectClient, startServe, type RunningServe } from './serve-harness.ts';

const FIRST = 'tok_e2e first/value+=&?';
const SECOND = 'tok_e2e-rotated-value-2';
const DEPLOY = 'deploy-key-added-later';

const sha256 = (value: string) => createHash('sha256').update(value, 'utf8').digest('hex');
const secretEnv = (name: string, key = 'token') => [
  { name, secretKeyRef: { name: 'api-credentials', key } },
];
const HASH_PY =
  'import hashlib, os\ndef main(args):\n    return hashlib.sha256(os.environ["API_TOKEN"].encode()).hexdigest()\n';

const server = {
  apiVersion: 'mcpworks.io/v1alpha1',
  kind: 'McpServer',
  metadata: { name: 'secrets', namespace: 'default' },
  spec: {
    auth: { anonymous: { enabled: true } },
    tools: [
      {
        name: 'py_read',
        description: 'hash of the token (python)',
        runtime: 'python',
        secretEnv: secretEnv('API_TOKEN'),
        code: HASH_PY,
      },
      {
        name: 'node_read',
        description: 'hash of the token (node)',
        runtime: 'node',
        secretEnv: secretEnv('API_TOKEN'),
        code: "const { createHash } = require('node:crypto');\nfunction main() { return createHash('sha256').update(process.env.API_TOKEN).digest('hex'); }\n",
      },
      {
        name: 'bash_read',
        description: 'hash of the token (bash)',
        runtime: 'bash',
        secretEnv: secretEnv('API_TOKEN'),
        code: 'printf %s "$API_TOKEN" | sha256sum | cut -d" " -f1\n',
      },
      {
        name: 'leaky',
        description: 'returns the token in the forms careless code does',
        runtime: 'python',
        secretEnv: secretEnv('API_TOKEN'),
        code: [
          'import base64, os, sys, urllib.parse',
          'def main(args):',
          '    v = os.environ["API_TOKEN"]',
          '    print("token is", v, file=sys.stderr)',
          '    return {"raw": v, "b64": base64.b64encode(v.encode()).decode(),',
          '            "url": "https://api.example.com/?key=" + urllib.parse.quote_plus(v),',
          '            "hex": v.encode().hex(), "auth": "Basic " + base64.b64encode(b"me:" + v.encode()).decode()}',
          '',
        ].join('\n'),
      },
      {
        name: 'plain',
        description: 'declares no secret and looks for one',
        runtime: 'python',
        code: [
          'import os',
          'def main(args):',
          '    return {"env": sorted(os.environ), "proc": open("/proc/self/environ", "rb").read().decode("latin-1")}',
          '',
        ].join('\n'),
      },
      {
        name: 'deploy',
        description: 'reads a key the Secret does not have at first',
        runtime: 'bash',
        secretEnv: secretEnv('DEPLOY_KEY', 'deploy'),
        code: 'printf %s "$DEPLOY_KEY" | sha256sum | cut -d" " -f1\n',
      },
    ],
  },
};

const policy = {
  apiVersion: 'mcpworks.io/v1alpha1',
  kind: 'AgentPolicy',
  metadata: { name: 'anyone', namespace: 'default' },
  spec: {
    servers: { names: ['secrets'] },
    rules: [
      {
        effect: 'Allow',
        subjects: [{ kind: 'Anonymous' }],
        tools: ['*'],
        reason: 'the secrets e2e test calls every tool',
      },
    ],
  },
};

const secret = (data: Record<string, string>) =>
  stringify({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'api-credentials', namespace: 'default' },
    stringData: data,
  });

let dir: string;
let serve: RunningServe;
let client: Client;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mcpworks-serve-secrets-'));
  await writeFile(join(dir, 'server.yaml'), stringify(server));
  await writeFile(join(dir, 'policy.yaml'), stringify(policy));
  await writeFile(join(dir, 'secret.yaml'), secret({ token: FIRST }));
  serve = await startServe([dir], ['--watch'], { logLevel: 'debug' });
  client = await connectClient(`${serve.base}/mcp`);
});

after(async () => {
  await client?.close();
  await serve?.stop();
});

interface CallResult {
  isError?: boolean;
  content: { type: string; text: string }[];
  structuredContent?: Record<string, unknown>;
}

async function callTool(name: string): Promise<CallResult> {
  return (await client.callTool({ name, arguments: {} })) as CallResult;
}
const text = (r: CallResult) => r.content.map((c) => c.text).join('');

async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${serve.stderr()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('a missing key is warned about once at start, naming server, tool, variable, Secret and key', () => {
  const warnings = serve
    .stderr()
    .split('\n')
    .filter((line) => line.includes('secretEnv'));
  assert.deepEqual(warnings, [
    'mcpworks serve: warning: McpServer default/secrets: tool deploy: secretEnv DEPLOY_KEY: key "deploy" of Secret default/api-credentials is missing; its calls fail closed',
  ]);
});

test('python, node and bash tools read the value their secretEnv declares', async () => {
  for (const tool of ['py_read', 'node_read', 'bash_read']) {
    const r = await callTool(tool);
    assert.equal(r.isError ?? false, false, tool);
    assert.equal(text(r).trim(), sha256(FIRST), tool);
  }
});

test('a leaking tool comes back redacted in every form, in content and structuredContent', async () => {
  const r = await callTool('leaky');
  assert.equal(r.isError ?? false, false);
  assert.deepEqual(r.structuredContent, {
    raw: '[REDACTED:API_TOKEN]',
    b64: '[REDACTED:API_TOKEN]',
    url: 'https://api.example.com/?key=[REDACTED:API_TOKEN]',
    hex: '[REDACTED:API_TOKEN]',
    auth: `Basic ${Buffer.from('me:').toString('base64').slice(0, 4)}[REDACTED:API_TOKEN]`,
  });
  assert.ok(!text(r).includes(FIRST));
  assert.ok(!text(r).includes(Buffer.from(FIRST).toString('base64')));
});

test('a tool that declares no secret has no such variable, in its env or /proc', async () => {
  const r = await callTool('plain');
  assert.equal(r.isError ?? false, false);
  assert.ok(!(r.structuredContent?.['env'] as string[]).includes('API_TOKEN'));
  assert.ok(!String(r.structuredContent?.['proc']).includes('API_TOKEN'));
  assert.ok(!text(r).includes(FIRST));
});

test('the tool whose key is missing fails closed with a clear message; the others still work', async () => {
  const r = await callTool('deploy');
  assert.equal(r.isError, true);
  assert.equal(
    text(r),
    'secretEnv DEPLOY_KEY: key "deploy" of Secret default/api-credentials is missing',
  );
  assert.equal(text(await callTool('py_read')), sha256(FIRST));
});

test('an edited Secret manifest applies to the next call under --watch', async () => {
  await writeFile(join(dir, 'secret.yaml'), secret({ token: SECOND, deploy: DEPLOY }));
  await eventually(
    async () => text(await callTool('py_read')) === sha256(SECOND),
    'the rotated token',
  );
  assert.equal(text(await callTool('node_read')), sha256(SECOND));
  const deploy = await callTool('deploy');
  assert.equal(deploy.isError ?? false, false);
  assert.equal(text(deploy).trim(), sha256(DEPLOY));
  const leak = await callTool('leaky');
  assert.equal(leak.structuredContent?.['raw'], '[REDACTED:API_TOKEN]');
});

test('a key removed on reload is warned about again and its calls fail closed', async () => {
  await writeFile(join(dir, 'secret.yaml'), secret({ deploy: DEPLOY }));
  await eventually(async () => (await callTool('py_read')).isError === true, 'the removed key');
  await eventually(
    async () =>
      /tool py_read: secretEnv API_TOKEN: key "token" of Secret default\/api-credentials is missing/.test(
        serve.stderr(),
      ),
    'the reload warning',
  );
  assert.equal(text(await callTool('deploy')).trim(), sha256(DEPLOY));
});

test('no value, in any form, reaches serve output or a decision record line', async () => {
  const records = await readFile(serve.decisionLog, 'utf8');
  assert.ok(records.split('\n').length > 10, 'the calls were recorded');
  const output = serve.stderr() + serve.stdout() + records;
  assert.match(serve.stderr(), /"level":"debug"|tool call finished/);
  for (const value of [FIRST, SECOND, DEPLOY]) {
    for (const form of [
      value,
      Buffer.from(value).toString('base64'),
      Buffer.from(value).toString('hex'),
      encodeURIComponent(value),
      new URLSearchParams({ q: value }).toString().slice(2),
    ])
      assert.ok(!output.includes(form), `a form of a secret value is in serve's output`);
  }
});
