// SIGTERM stops `mcpworks serve` gracefully: a tool call in progress finishes, gets its result
// and its decision record, and the process exits 0.
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { stringify } from 'yaml';
import { connectClient, startServe } from './serve-harness.ts';

async function slowServer(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'mcpworks-stop-'));
  const file = join(dir, 'slow.yaml');
  const docs = [
    {
      apiVersion: 'mcpworks.io/v1alpha1',
      kind: 'McpServer',
      metadata: { name: 'slow', namespace: 'stop' },
      spec: {
        auth: { anonymous: { enabled: true } },
        tools: [
          {
            name: 'nap',
            description: 'sleeps a second',
            runtime: 'python',
            timeoutSeconds: 10,
            code: 'import time\ndef main(args):\n    time.sleep(1.5)\n    return "rested"\n',
          },
        ],
      },
    },
    {
      apiVersion: 'mcpworks.io/v1alpha1',
      kind: 'AgentPolicy',
      metadata: { name: 'anyone', namespace: 'stop' },
      spec: {
        servers: { names: ['slow'] },
        rules: [
          { effect: 'Allow', subjects: [{ kind: 'Anonymous' }], tools: ['nap'], reason: 'test' },
        ],
      },
    },
  ];
  await writeFile(file, docs.map((d) => stringify(d)).join('---\n'));
  return file;
}

test('a call in progress at SIGTERM completes and is recorded; the process exits 0', async () => {
  const serve = await startServe([await slowServer()]);
  const client = await connectClient(`${serve.base}/mcp`);
  const call = client.callTool({ name: 'nap', arguments: {} });
  await new Promise((r) => setTimeout(r, 400));
  const exited = serve.stop();
  const result = await call;
  assert.equal(result.isError, false, JSON.stringify(result));
  assert.deepEqual(result.content, [{ type: 'text', text: 'rested' }]);
  assert.equal(await exited, 0);
  const records = await serve.decisions();
  const napped = records.filter((r) => r.tool === 'nap');
  assert.equal(napped.length, 1);
  assert.equal(napped[0]!.outcome, 'ok');
});
