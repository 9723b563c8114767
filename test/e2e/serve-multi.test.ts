// `mcpworks serve` with two McpServers: each at /mcp/<namespace>/<name>, no /mcp alias, and the
// policies and credentials of one never apply to the other.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { repoRoot } from '../harness/paths.ts';
import { connectClient, DEMO_KEY, startServe, type RunningServe } from './serve-harness.ts';

let serve: RunningServe;
before(async () => {
  serve = await startServe([
    join(repoRoot, 'config', 'samples'),
    join(repoRoot, 'test', 'conformance', 'server.yaml'),
  ]);
});
after(async () => {
  await serve?.stop();
});

test('both servers are listed in the banner and /mcp is not served', async () => {
  assert.match(serve.stderr(), /MCP endpoint {2}http:\/\/127\.0\.0\.1:\d+\/mcp\/default\/demo/);
  assert.match(
    serve.stderr(),
    /MCP endpoint {2}http:\/\/127\.0\.0\.1:\d+\/mcp\/conformance\/conformance/,
  );
  const res = await fetch(`${serve.base}/mcp`, { method: 'POST', body: '{}' });
  assert.equal(res.status, 404);
});

test('anonymous access enabled on one server does not open the other', async () => {
  const open = await connectClient(`${serve.base}/mcp/conformance/conformance`);
  assert.ok((await open.listTools()).tools.length > 0);
  await open.close();
  await assert.rejects(connectClient(`${serve.base}/mcp/default/demo`), /authentication required/);
});

test("one server's API key is not accepted by the other", async () => {
  const demo = await connectClient(`${serve.base}/mcp/default/demo`, DEMO_KEY);
  await demo.close();
  await assert.rejects(
    connectClient(`${serve.base}/mcp/conformance/conformance`, DEMO_KEY),
    /not accepted by this server/,
  );
});
