// The gateway's MCP endpoint in-process: real SDK client and transport over loopback HTTP, stub
// authenticator / policy / executor (the real ones are exercised by test/e2e). Every test also
// checks the decision records the requests produced: exactly one each.
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { systemClock } from '../../src/shared/clock.ts';
import {
  createDecisionRecorder,
  memoryDecisionSink,
} from '../../src/gateway/decisions/recorder.ts';
import {
  connect,
  INITIALIZE,
  post,
  snapshot,
  startGateway,
  stubExecutor,
  type StartedGateway,
} from './gateway-fixtures.ts';

let gw: StartedGateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

test('an allowed tool call returns the executor result and records one Allow with post-conditions', async () => {
  gw = await startGateway();
  const client = await connect(gw.url, 'token-alice');
  const before = gw.records.length;
  const result = await client.callTool({ name: 'echo', arguments: { x: 1 } });
  assert.equal(result.isError, false);
  assert.deepEqual(result.structuredContent, { x: 1 });
  const records = gw.records.slice(before);
  assert.equal(records.length, 1);
  assert.equal(records[0]!.effect, 'Allow');
  assert.equal(records[0]!.outcome, 'ok');
  assert.equal(records[0]!.tool, 'echo');
  assert.equal(records[0]!.principal?.name, 'alice');
  assert.equal(records[0]!.executor, 'stub');
  assert.match(records[0]!.argumentsSha256 ?? '', /^[0-9a-f]{64}$/);
  await client.close();
});

test('tools/list shows only the tools the policy lets the caller call', async () => {
  gw = await startGateway({ grants: { alice: ['echo'], bob: ['echo', 'secret'] } });
  const alice = await connect(gw.url, 'token-alice');
  const bob = await connect(gw.url, 'token-bob');
  assert.deepEqual(
    (await alice.listTools()).tools.map((t) => t.name),
    ['echo'],
  );
  assert.deepEqual((await bob.listTools()).tools.map((t) => t.name).sort(), ['echo', 'secret']);
  await alice.close();
  await bob.close();
});

test('a denied call is a tool error result, never reaches the executor, and records one Deny', async () => {
  gw = await startGateway();
  const client = await connect(gw.url, 'token-alice');
  const before = gw.records.length;
  const result = await client.callTool({ name: 'secret', arguments: {} });
  assert.equal(result.isError, true);
  assert.match(JSON.stringify(result.content), /denied by policy: no rule allows this call/);
  assert.equal(gw.executor.requests.length, 0);
  const records = gw.records.slice(before);
  assert.equal(records.length, 1);
  assert.equal(records[0]!.effect, 'Deny');
  assert.equal(records[0]!.outcome, 'denied');
  await client.close();
});

test('a denied call to a tool that does not exist looks the same as one that does', async () => {
  gw = await startGateway();
  const client = await connect(gw.url, 'token-alice');
  const result = await client.callTool({ name: 'no-such-tool', arguments: {} });
  assert.equal(result.isError, true);
  assert.match(JSON.stringify(result.content), /denied by policy/);
  await client.close();
});

test('an unauthenticated request gets 401 with a resource_metadata challenge and one Deny record', async () => {
  gw = await startGateway();
  const res = await post(gw.url, INITIALIZE);
  assert.equal(res.status, 401);
  const challenge = res.headers.get('www-authenticate') ?? '';
  assert.match(
    challenge,
    /^Bearer resource_metadata="http:\/\/127\.0\.0\.1:\d+\/\.well-known\/oauth-protected-resource\/mcp\/team-a\/demo"/,
  );
  assert.equal(gw.records.length, 1);
  assert.equal(gw.records[0]!.effect, 'Deny');
  assert.equal(gw.records[0]!.outcome, 'unauthenticated');
  assert.equal(gw.records[0]!.authentication.outcome, 'failed');
  assert.equal(gw.records[0]!.principal, null);
});

test('the protected-resource metadata names the resource and is public', async () => {
  gw = await startGateway();
  const res = await fetch(`${gw.base}/.well-known/oauth-protected-resource/mcp/team-a/demo`);
  assert.equal(res.status, 200);
  const body = (await res.json()) as { resource: string; bearer_methods_supported: string[] };
  assert.equal(body.resource, gw.url);
  assert.deepEqual(body.bearer_methods_supported, ['header']);
});

test('a foreign Origin is refused with 403 before authentication (DNS rebinding)', async () => {
  gw = await startGateway();
  const res = await post(gw.url, INITIALIZE, {
    authorization: 'Bearer token-alice',
    origin: 'http://evil.example',
  });
  assert.equal(res.status, 403);
  assert.equal(gw.records.length, 1);
  assert.equal(gw.records[0]!.effect, 'Deny');
  assert.equal(gw.records[0]!.principal, null);
});

test('a loopback Origin is accepted', async () => {
  gw = await startGateway();
  const res = await post(gw.url, INITIALIZE, {
    authorization: 'Bearer token-alice',
    origin: 'http://localhost:6274',
  });
  assert.equal(res.status, 200);
});

test('a rebound Host name is refused with 403', async () => {
  gw = await startGateway();
  const { request } = await import('node:http');
  const status = await new Promise<number>((resolve, reject) => {
    const req = request(
      gw!.url,
      { method: 'POST', headers: { host: 'attacker.example', 'content-type': 'application/json' } },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(INITIALIZE));
  });
  assert.equal(status, 403);
});

test('a token in the query string is rejected even with a valid Authorization header', async () => {
  gw = await startGateway();
  const res = await post(`${gw.url}?access_token=token-alice`, INITIALIZE, {
    authorization: 'Bearer token-alice',
  });
  assert.equal(res.status, 400);
  assert.equal(gw.records.length, 1);
  assert.equal(gw.records[0]!.effect, 'Deny');
});

test('a body over the limit gets 413', async () => {
  gw = await startGateway({ limits: { maxBodyBytes: 1024 } });
  const res = await post(
    gw.url,
    { ...INITIALIZE, params: { ...INITIALIZE.params, pad: 'x'.repeat(4096) } },
    { authorization: 'Bearer token-alice' },
  );
  assert.equal(res.status, 413);
  assert.equal(gw.records.length, 1);
});

test('malformed JSON gets 400 with a JSON-RPC parse error', async () => {
  gw = await startGateway();
  const res = await post(gw.url, '{"jsonrpc": "2.0", ', { authorization: 'Bearer token-alice' });
  assert.equal(res.status, 400);
  assert.equal((res.json as { error: { code: number } }).error.code, -32700);
  assert.equal(gw.records.length, 1);
  assert.equal(gw.records[0]!.outcome, 'invalid-request');
});

test('arguments nested past the depth limit get 400 before anything walks them, with one record', async () => {
  const executor = stubExecutor();
  gw = await startGateway({ executor });
  const client = await connect(gw.url, 'token-alice');
  await client.close();
  const nested = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
  const before = gw.records.length;
  const res = await post(
    gw.url,
    `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"x":${nested}}}}`,
    { authorization: 'Bearer token-alice' },
  );
  assert.equal(res.status, 400);
  assert.equal((res.json as { error: { code: number } }).error.code, -32600);
  const records = gw.records.slice(before);
  assert.equal(records.length, 1);
  assert.equal(records[0]!.outcome, 'invalid-request');
  assert.equal(executor.requests.length, 0);
});

test('a record that cannot be written with its arguments is written without them: never zero', async () => {
  const sink = memoryDecisionSink();
  const real = createDecisionRecorder({ sinks: [sink], clock: systemClock, writerId: 'test' });
  const recorder: typeof real = {
    ...real,
    record(entry) {
      if (entry.argumentsSha256 !== undefined)
        throw new RangeError('Maximum call stack size exceeded');
      return real.record(entry);
    },
  };
  gw = await startGateway({ recorder });
  const client = await connect(gw.url, 'token-alice');
  const before = sink.records.length;
  await client.callTool({ name: 'echo', arguments: { x: 1 } });
  const records = sink.records.slice(before);
  assert.equal(records.length, 1);
  assert.equal(records[0]!.tool, 'echo');
  assert.equal(records[0]!.argumentsSha256, undefined);
  assert.match(records[0]!.reason, /arguments could not be recorded/);
  await client.close();
});

test('a JSON-RPC batch is refused', async () => {
  gw = await startGateway();
  const res = await post(gw.url, [INITIALIZE], { authorization: 'Bearer token-alice' });
  assert.equal(res.status, 400);
  assert.equal((res.json as { error: { code: number } }).error.code, -32600);
});

test("another principal's session id is answered like an unknown one (404)", async () => {
  gw = await startGateway({ grants: { alice: ['echo'], bob: ['echo'] } });
  const init = await post(gw.url, INITIALIZE, { authorization: 'Bearer token-alice' });
  assert.equal(init.status, 200);
  const sessionId = init.headers.get('mcp-session-id');
  assert.ok(sessionId !== null && sessionId.length >= 32);
  const list = { jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} };
  const hijack = await post(gw.url, list, {
    authorization: 'Bearer token-bob',
    'mcp-session-id': sessionId,
    'mcp-protocol-version': '2025-06-18',
  });
  assert.equal(hijack.status, 404);
  const own = await post(gw.url, list, {
    authorization: 'Bearer token-alice',
    'mcp-session-id': sessionId,
    'mcp-protocol-version': '2025-06-18',
  });
  assert.equal(own.status, 200);
  const last = gw.records.at(-2)!;
  assert.equal(last.effect, 'Deny');
  assert.equal(last.principal?.name, 'bob');
});

test('a crash in the executor still leaves exactly one record, and the client gets no internals', async () => {
  const executor = stubExecutor(() => {
    throw new Error('boom at /secret/path');
  });
  gw = await startGateway({ executor });
  const client = await connect(gw.url, 'token-alice');
  const before = gw.records.length;
  await assert.rejects(
    client.callTool({ name: 'echo', arguments: {} }),
    (err: Error) => !err.message.includes('/secret/path'),
  );
  const records = gw.records.slice(before);
  assert.equal(records.length, 1);
  assert.equal(records[0]!.outcome, 'internal-error');
  await client.close();
});

test('a policy change applies to the next request without a restart', async () => {
  gw = await startGateway();
  const client = await connect(gw.url, 'token-alice');
  assert.equal((await client.callTool({ name: 'echo', arguments: {} })).isError, false);
  gw.source.set(snapshot({ alice: [] }, 2));
  assert.equal((await client.callTool({ name: 'echo', arguments: {} })).isError, true);
  await client.close();
});

test('the caller credential never reaches the executor', async () => {
  gw = await startGateway();
  const client = await connect(gw.url, 'token-alice');
  await client.callTool({ name: 'echo', arguments: { x: 2 } });
  assert.equal(gw.executor.requests.length, 1);
  assert.doesNotMatch(JSON.stringify(gw.executor.requests[0]), /token-alice/);
  await client.close();
});

test('anonymous callers are served only when the server enables them', async () => {
  gw = await startGateway({ anonymous: true, grants: { anonymous: ['echo'] } });
  const client = await connect(gw.url);
  assert.equal((await client.callTool({ name: 'echo', arguments: {} })).isError, false);
  const record = gw.records.at(-1)!;
  assert.equal(record.authentication.outcome, 'anonymous');
  await client.close();
});

test('metrics count decisions with bounded labels: a made-up tool name becomes _unknown', async () => {
  gw = await startGateway();
  const client = await connect(gw.url, 'token-alice');
  await client.callTool({ name: 'made-up-$(rm -rf)', arguments: {} });
  await client.callTool({ name: 'echo', arguments: {} });
  const text = await (await fetch(`${gw.base}/metrics`)).text();
  assert.match(
    text,
    /mcpworks_decisions_total\{server="team-a\/demo",tool="_unknown",effect="deny",reason_code="default_deny"\} 1/,
  );
  assert.match(
    text,
    /mcpworks_decisions_total\{server="team-a\/demo",tool="echo",effect="allow",reason_code="policy_allow"\} 1/,
  );
  assert.match(
    text,
    /mcpworks_sandbox_outcomes_total\{server="team-a\/demo",tool="echo",outcome="ok"\} 1/,
  );
  assert.doesNotMatch(text, /rm -rf/);
  await client.close();
});

test('sessions a principal never closes are bounded by its per-principal cap', async () => {
  gw = await startGateway({
    limits: { sessions: { maxSessions: 100, maxSessionsPerPrincipal: 3, idleTimeoutMs: 60_000 } },
  });
  for (let i = 0; i < 8; i++) {
    const client = await connect(gw.url, 'token-alice');
    await client.close();
  }
  assert.equal(gw.app.sessionCount, 3);
});

test('per-request memory stays flat over many sessions that are closed', async (t) => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gw = await startGateway();
  const cycle = async () => {
    const client = await connect(gw!.url, 'token-alice');
    await client.callTool({ name: 'echo', arguments: { x: 1 } });
    await (client.transport as StreamableHTTPClientTransport).terminateSession();
    await client.close();
  };
  for (let i = 0; i < 300; i++) await cycle(); // warm-up: JIT and pools settle
  gw.records.length = 0;
  gw.executor.requests.length = 0;
  gc();
  const start = process.memoryUsage().heapUsed;
  for (let i = 0; i < 400; i++) {
    await cycle();
    // The test's own bookkeeping is not the gateway's memory.
    gw.records.length = 0;
    gw.executor.requests.length = 0;
  }
  gc();
  const grown = process.memoryUsage().heapUsed - start;
  t.diagnostic(`heap grew by ${grown} bytes over 400 sessions (initialize + call + delete)`);
  // 400 leaked sessions (server + transport each) would be several MB; allow noise only.
  assert.ok(grown < 1024 * 1024, `heap grew by ${grown} bytes over 400 sessions`);
  assert.equal(gw.app.sessionCount, 0);
});

test('a CORS preflight from an allowed origin gets 204 with the MCP headers allowed, and no record', async () => {
  gw = await startGateway({ allowedOrigins: ['https://inspector.example'] });
  const res = await fetch(gw.url, {
    method: 'OPTIONS',
    headers: { origin: 'https://inspector.example', 'access-control-request-method': 'POST' },
  });
  assert.equal(res.status, 204);
  assert.equal(res.headers.get('access-control-allow-origin'), 'https://inspector.example');
  assert.match(res.headers.get('access-control-allow-headers') ?? '', /Mcp-Session-Id/);
  assert.equal(gw.records.length, 0);
});

test('a CORS preflight from a foreign origin gets 403', async () => {
  gw = await startGateway();
  const res = await fetch(gw.url, {
    method: 'OPTIONS',
    headers: { origin: 'https://evil.example' },
  });
  assert.equal(res.status, 403);
  assert.equal(res.headers.get('access-control-allow-origin'), null);
});

test('answers to an allowed browser origin expose the session id and the challenge', async () => {
  gw = await startGateway({ allowedOrigins: ['https://inspector.example'] });
  const res = await post(gw.url, INITIALIZE, { origin: 'https://inspector.example' });
  assert.equal(res.status, 401);
  assert.equal(res.headers.get('access-control-allow-origin'), 'https://inspector.example');
  assert.match(res.headers.get('access-control-expose-headers') ?? '', /WWW-Authenticate/);
});

test('stateless mode serves the SDK client without session ids and keeps nothing between requests', async () => {
  gw = await startGateway({ sessionMode: 'stateless' });
  const init = await post(gw.url, INITIALIZE, { authorization: 'Bearer token-alice' });
  assert.equal(init.status, 200);
  assert.equal(init.headers.get('mcp-session-id'), null);
  const client = await connect(gw.url, 'token-alice');
  const before = gw.records.length;
  assert.equal((await client.callTool({ name: 'echo', arguments: { x: 3 } })).isError, false);
  assert.equal((await client.callTool({ name: 'secret', arguments: {} })).isError, true);
  const calls = gw.records.slice(before).filter((r) => r.method === 'tools/call');
  assert.deepEqual(
    calls.map((r) => r.effect),
    ['Allow', 'Deny'],
  );
  assert.equal(gw.app.sessionCount, 0);
  await client.close();
});

test('stateless mode refuses GET streams with 405', async () => {
  gw = await startGateway({ sessionMode: 'stateless' });
  const res = await fetch(gw.url, {
    headers: { authorization: 'Bearer token-alice', accept: 'text/event-stream' },
  });
  assert.equal(res.status, 405);
});

test('stateless mode keeps memory flat over many requests', async (t) => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gw = await startGateway({ sessionMode: 'stateless' });
  // Raw requests: the SDK client itself retains an abort listener per request on its transport.
  const headers = { authorization: 'Bearer token-alice', 'mcp-protocol-version': '2025-06-18' };
  const burst = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const call = {
        jsonrpc: '2.0',
        id: i,
        method: 'tools/call',
        params: { name: 'echo', arguments: { x: i } },
      };
      const res = await post(gw!.url, call, headers);
      assert.equal(res.status, 200);
      gw!.records.length = 0;
      gw!.executor.requests.length = 0;
    }
  };
  await burst(1000); // warm-up
  gc();
  const start = process.memoryUsage().heapUsed;
  await burst(1000);
  gc();
  const grown = process.memoryUsage().heapUsed - start;
  t.diagnostic(`heap grew by ${grown} bytes over 1000 stateless calls`);
  assert.ok(grown < 1024 * 1024, `heap grew by ${grown} bytes over 1000 stateless calls`);
});
