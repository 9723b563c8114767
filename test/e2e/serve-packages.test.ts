// `mcpworks serve --packages <dir>`: the official SDK client calls a python and a node tool that
// import the example's pinned packages (sandbox-image/packages/) in real nsjail sandboxes; a tool
// importing a package the directory lacks gets an error result naming it; a directory that does
// not exist stops serve before it listens.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parse, stringify } from 'yaml';
import type { McpServer } from '../../src/api/v1alpha1/mcpserver.ts';
import { ensureExamplePackages } from '../harness/packages.ts';
import { repoRoot, resolveNsjail } from '../harness/paths.ts';
import {
  connectClient,
  samplesWithSecondAgent,
  startServe,
  type RunningServe,
} from './serve-harness.ts';

let serve: RunningServe;
let key: string;
let url: string;
let samples: string;

const PACKAGE_TOOLS = [
  {
    name: 'punycode',
    description: 'The ASCII form of an internationalised host name (the idna package).',
    runtime: 'python',
    inputSchema: { type: 'object', properties: { host: { type: 'string' } }, required: ['host'] },
    code: 'import idna\n\ndef main(args):\n    return idna.encode(args["host"]).decode()\n',
  },
  {
    name: 'duration',
    description: 'Milliseconds in a human duration such as "2 days" (the ms package).',
    runtime: 'node',
    inputSchema: { type: 'object', properties: { span: { type: 'string' } }, required: ['span'] },
    code: "const ms = require('ms');\nfunction main(args) { return { ms: ms(args.span) }; }\n",
  },
  {
    name: 'yaml_keys',
    description: 'Needs PyYAML, which the packages directory does not carry.',
    runtime: 'python',
    inputSchema: { type: 'object' },
    code: 'import yaml\n\ndef main(args):\n    return 1\n',
  },
];

before(async () => {
  const packages = await ensureExamplePackages();
  const fixture = await samplesWithSecondAgent();
  key = fixture.key;
  samples = fixture.dir;
  const file = join(fixture.dir, 'mcpworks_v1alpha1_mcpserver.yaml');
  const server = parse(await readFile(file, 'utf8')) as McpServer;
  server.spec.tools.push(...(PACKAGE_TOOLS as McpServer['spec']['tools']));
  await writeFile(file, stringify(server));
  serve = await startServe([fixture.dir], ['--packages', packages]);
  url = `${serve.base}/mcp/default/demo`;
});
after(async () => {
  await serve?.stop();
});

test('a python tool imports the pinned package through serve', async () => {
  const client = await connectClient(url, key);
  const result = await client.callTool({ name: 'punycode', arguments: { host: 'bücher.example' } });
  await client.close();
  assert.equal(result.isError, false, JSON.stringify(result));
  assert.deepEqual(result.content, [{ type: 'text', text: 'xn--bcher-kva.example' }]);
});

test('a node tool requires the pinned package through serve', async () => {
  const client = await connectClient(url, key);
  const result = await client.callTool({ name: 'duration', arguments: { span: '2 days' } });
  await client.close();
  assert.equal(result.isError, false, JSON.stringify(result));
  assert.deepEqual(result.structuredContent, { ms: 172_800_000 });
});

test('a tool importing a package serve was not given fails with an error naming it', async () => {
  const client = await connectClient(url, key);
  const result = await client.callTool({ name: 'yaml_keys', arguments: {} });
  await client.close();
  assert.equal(result.isError, true);
  const text = (result.content as Array<{ text: string }>).map((c) => c.text).join('');
  assert.match(
    text,
    /No module named 'yaml': the executor image does not carry the package providing 'yaml'/,
  );
});

test('serve refuses to start when --packages names no directory', () => {
  const run = spawnSync(
    process.execPath,
    [
      join(repoRoot, 'src', 'cli', 'main.ts'),
      'serve',
      '-f',
      samples,
      '--port',
      '0',
      '--packages',
      join(samples, 'no-such-dir'),
    ],
    {
      encoding: 'utf8',
      timeout: 60_000,
      env: { ...process.env, MCPWORKS_NSJAIL: resolveNsjail() },
    },
  );
  assert.equal(run.status, 1, run.stderr);
  assert.match(
    run.stderr,
    /the sandbox is unavailable, refusing to run tool code: the packages directory .*no-such-dir does not exist/,
  );
});
