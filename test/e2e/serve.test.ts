// End to end: the official SDK client against a real `mcpworks serve` child process running the
// samples with real nsjail sandboxes; checks results and the decision records on disk.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, test } from 'node:test';
import type { DecisionRecord } from '../../src/gateway/decisions/record.ts';
import {
  connectClient,
  DEMO_KEY,
  openRawSession,
  postInitialize,
  rpcHeaders,
  samplesWithSecondAgent,
  startServe,
  waitForDecisions,
  type RunningServe,
} from './serve-harness.ts';

let serve: RunningServe;
let e2eKey: string;
let unlistedKey: string;
let url: string;

before(async () => {
  const fixture = await samplesWithSecondAgent();
  e2eKey = fixture.key;
  unlistedKey = fixture.unlistedKey;
  serve = await startServe([fixture.dir]);
  url = `${serve.base}/mcp/default/demo`;
});
after(async () => {
  await serve?.stop();
});

/**
 * The records written after the first `count` that match `pred`; waits until one is there. (The
 * SDK client's GET stream is recorded when it closes, so positions are not predictable.)
 */
async function recordsAfter(count: number, pred: (r: DecisionRecord) => boolean) {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const found = (await waitForDecisions(serve, count + 1)).slice(count).filter(pred);
    if (found.length > 0 || Date.now() > deadline) return found;
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('tools/list shows demo-agent the tools its policy allows and hides the denied one', async () => {
  const client = await connectClient(url, DEMO_KEY);
  const names = (await client.listTools()).tools.map((t) => t.name).sort();
  assert.deepEqual(names, ['json_summary', 'word_count']);
  await client.close();
});

test('a tools/list is a decision: recorded with the policies that let the caller see tools', async () => {
  const count = (await serve.decisions()).length;
  const client = await connectClient(url, DEMO_KEY);
  await client.listTools();
  await client.close();
  const [record, extra] = await recordsAfter(count, (r) => r.method === 'tools/list');
  assert.equal(extra, undefined);
  assert.equal(record!.effect, 'Allow');
  assert.ok(
    record!.policies.includes('AgentPolicy/default/demo-agent-access'),
    record!.policies.join(),
  );
});

test('a caller no policy allows anything lists no tools, recorded as a Deny, not a blanket Allow', async () => {
  const count = (await serve.decisions()).length;
  const client = await connectClient(url, unlistedKey);
  assert.deepEqual((await client.listTools()).tools, []);
  await client.close();
  const [record, extra] = await recordsAfter(count, (r) => r.method === 'tools/list');
  assert.equal(extra, undefined);
  assert.equal(record!.effect, 'Deny');
  assert.equal(record!.outcome, 'denied');
  assert.match(
    record!.reason,
    /no policy allows agent "unlisted-agent" any tool on server default\/demo/,
  );
});

test('a method the gateway does not serve is Method not found, recorded as a Deny', async () => {
  const client = await connectClient(url, DEMO_KEY);
  const count = (await serve.decisions()).length;
  await assert.rejects(client.listResources(), /Method not found|-32601/);
  await client.close();
  const [record, extra] = await recordsAfter(count, (r) => r.method === 'resources/list');
  assert.equal(extra, undefined);
  assert.equal(record!.effect, 'Deny');
  assert.equal(record!.reason, 'method "resources/list" is not served by this gateway');
});

test('a tool name in capitals is matched in lower case: the *shell* guardrail denies RunShell', async () => {
  const client = await connectClient(url, e2eKey);
  const result = await client.callTool({ name: 'RunShell', arguments: {} });
  await client.close();
  assert.equal(result.isError, true);
  assert.match(JSON.stringify(result.content), /denied by policy/);
  const records = await serve.decisions();
  const record = records.findLast((r) => r.tool === 'RunShell');
  assert.equal(record?.effect, 'Deny');
  assert.equal(record?.rule?.kind, 'ClusterAgentPolicy');
});

test('the python tool runs in the sandbox and its call is recorded as allowed', async () => {
  const client = await connectClient(url, DEMO_KEY);
  const count = (await serve.decisions()).length;
  const result = await client.callTool({
    name: 'word_count',
    arguments: { text: 'one two three' },
  });
  assert.equal(result.isError, false);
  assert.deepEqual(result.structuredContent, { words: 3, lines: 1, characters: 13 });
  const [record, extra] = await recordsAfter(count, (r) => r.method === 'tools/call');
  assert.equal(extra, undefined);
  assert.equal(record!.tool, 'word_count');
  assert.equal(record!.effect, 'Allow');
  assert.equal(record!.outcome, 'ok');
  assert.equal(record!.principal?.name, 'demo-agent');
  assert.deepEqual(record!.rule, {
    kind: 'AgentPolicy',
    namespace: 'default',
    name: 'demo-agent-access',
    index: 0,
  });
  assert.ok((record!.outputBytes ?? 0) > 0);
  assert.match(record!.executor ?? '', /^serve@/);
  await client.close();
});

test('arguments that do not match the inputSchema are refused before the sandbox and recorded', async () => {
  const client = await connectClient(url, DEMO_KEY);
  const count = (await serve.decisions()).length;
  // Missing `text`: the sample policy's condition (`!has(args.text) || ...`) allows the call,
  // so it is the schema that refuses it. (A non-string `text` is already denied by that
  // condition, failing closed: authorization runs first.)
  const result = await client.callTool({ name: 'word_count', arguments: {} });
  assert.equal(result.isError, true);
  assert.deepEqual(result.content, [
    { type: 'text', text: 'invalid arguments: arguments.text: is required' },
  ]);
  const [record, extra] = await recordsAfter(count, (r) => r.method === 'tools/call');
  assert.equal(extra, undefined);
  assert.equal(record!.effect, 'Allow');
  assert.equal(record!.outcome, 'invalid-arguments');
  assert.equal(record!.executor, undefined);
  assert.equal(record!.outputBytes, undefined);
  await client.close();
});

test('the node tool runs in the sandbox', async () => {
  const client = await connectClient(url, DEMO_KEY);
  const result = await client.callTool({
    name: 'json_summary',
    arguments: { value: { a: [1, { b: 2 }] } },
  });
  assert.equal(result.isError, false);
  assert.deepEqual(result.structuredContent, { type: 'object', size: 1, depth: 3, keys: ['a'] });
  await client.close();
});

test('the bash tool runs in the sandbox for an agent allowed to call it', async () => {
  const client = await connectClient(url, e2eKey);
  const result = await client.callTool({ name: 'sha256', arguments: { x: 1 } });
  assert.equal(result.isError, false, JSON.stringify(result));
  // bash prints its result: the text content is the JSON document.
  const text = (result.content as { type: string; text: string }[])[0]!.text;
  const out = JSON.parse(text) as { sha256: string; bytes: number };
  assert.match(out.sha256, /^[0-9a-f]{64}$/);
  assert.equal(out.bytes, JSON.stringify({ x: 1 }).length);
  await client.close();
});

test('a call the policy denies is a tool error with the rule reason, recorded as Deny', async () => {
  const client = await connectClient(url, DEMO_KEY);
  const count = (await serve.decisions()).length;
  const result = await client.callTool({ name: 'sha256', arguments: {} });
  assert.equal(result.isError, true);
  assert.match(JSON.stringify(result.content), /reserved for the release pipeline/);
  const [record, extra] = await recordsAfter(count, (r) => r.method === 'tools/call');
  assert.equal(extra, undefined);
  assert.equal(record!.effect, 'Deny');
  assert.equal(record!.outcome, 'denied');
  assert.equal(record!.reason, 'hashing is reserved for the release pipeline, not for agents');
  await client.close();
});

test('an unauthenticated request is refused with 401 and recorded', async () => {
  const count = (await serve.decisions()).length;
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
  });
  assert.equal(res.status, 401);
  assert.match(
    res.headers.get('www-authenticate') ?? '',
    /resource_metadata="http:\/\/127\.0\.0\.1:\d+\/\.well-known\/oauth-protected-resource\/mcp\/default\/demo"/,
  );
  const [record, extra] = await recordsAfter(count, (r) => r.principal === null);
  assert.equal(extra, undefined);
  assert.equal(record!.method, 'POST');
  assert.equal(record!.effect, 'Deny');
  assert.equal(record!.outcome, 'unauthenticated');
  assert.equal(record!.principal, null);
});

test('a wrong API key is refused with 401', async () => {
  await assert.rejects(
    connectClient(url, 'mcpw_demo_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'),
    /unknown API key/,
  );
});

test('a foreign Origin is refused with 403 even with a valid key (DNS rebinding)', async () => {
  const res = await postInitialize(
    url,
    rpcHeaders(DEMO_KEY, { origin: 'https://attacker.example' }),
  );
  assert.equal(res.status, 403);
});

test('an Origin with user info naming loopback is refused with 403 (it is not a serialized origin)', async () => {
  const res = await postInitialize(
    url,
    rpcHeaders(DEMO_KEY, { origin: 'http://evil.com@127.0.0.1' }),
  );
  assert.equal(res.status, 403);
});

test('two Authorization headers are refused with 400, whichever of them is valid', async () => {
  const target = new URL(url);
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: {} });
  for (const pair of [
    [`Bearer ${DEMO_KEY}`, 'Bearer mcpw_demo_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'],
    ['Bearer mcpw_demo_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', `Bearer ${DEMO_KEY}`],
    [`Bearer ${DEMO_KEY}`, `Bearer ${DEMO_KEY}`],
  ]) {
    const count = (await serve.decisions()).length;
    // Raw bytes: fetch and http.request would fold the two headers into one.
    const socket = connect(Number(target.port), target.hostname);
    socket.end(
      [
        `POST ${target.pathname} HTTP/1.1`,
        `Host: ${target.host}`,
        'Content-Type: application/json',
        'Accept: application/json, text/event-stream',
        `Authorization: ${pair[0]}`,
        `Authorization: ${pair[1]}`,
        `Content-Length: ${Buffer.byteLength(body)}`,
        'Connection: close',
        '',
        body,
      ].join('\r\n'),
    );
    let answer = '';
    for await (const chunk of socket) answer += String(chunk);
    assert.match(answer, /^HTTP\/1\.1 400 /, answer);
    const [record, extra] = await recordsAfter(count, (r) => r.principal === null);
    assert.equal(extra, undefined);
    assert.equal(record!.outcome, 'unauthenticated');
  }
});

test('a malformed tools/call gets Invalid params in one line, no validation dump, and one record', async () => {
  const session = await openRawSession(url, DEMO_KEY);
  for (const [params, message] of [
    [{ name: 5 }, 'Invalid params: tools/call params.name must be a string'],
    [
      { name: 'word_count', arguments: 'x' },
      'Invalid params: tools/call params.arguments must be an object',
    ],
  ] as const) {
    const count = (await serve.decisions()).length;
    const res = await fetch(url, {
      method: 'POST',
      headers: session,
      body: JSON.stringify({ jsonrpc: '2.0', id: 'call-1', method: 'tools/call', params }),
    });
    assert.deepEqual(await res.json(), {
      jsonrpc: '2.0',
      id: 'call-1',
      error: { code: -32602, message },
    });
    const [record, extra] = await recordsAfter(count, (r) => r.method === 'tools/call');
    assert.equal(extra, undefined);
    assert.equal(record!.outcome, 'invalid-request');
    assert.equal(record!.reason, message);
  }
});

test('arguments whose parse would not reach the tool unchanged are refused at the edge, one record each', async () => {
  const call = (args: string) =>
    `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"word_count","arguments":${args}}}`;
  const cases: [string | Uint8Array, RegExp][] = [
    // A condition `args.limit <= 100` would pass Infinity... and the tool would get null.
    [call('{"text":"a","limit":1e400}'), /the number 1e400 is too large for a double/],
    [call('{"text":"a","limit":12345678901234567890}'), /cannot be represented exactly/],
    [call('{"text":"a","limit":-0}'), /negative zero/],
    // First-wins readers (and grep) see "a"; JSON.parse keeps the second.
    [call('{"text":"a","text":"rm -rf"}'), /the key "text" appears twice/],
    [call('{"text":"\\ud800"}'), /unpaired UTF-16 surrogate/],
    [
      Buffer.concat([Buffer.from(call('{"text":"')), Buffer.from([0xff]), Buffer.from('"}')]),
      /not UTF-8/,
    ],
  ];
  for (const [body, message] of cases) {
    const count = (await serve.decisions()).length;
    const res = await fetch(url, { method: 'POST', headers: rpcHeaders(DEMO_KEY), body });
    assert.equal(res.status, 400, String(body));
    const answer = (await res.json()) as { error: { message: string } };
    assert.match(answer.error.message, message);
    const [record, extra] = await recordsAfter(count, (r) => r.outcome === 'invalid-request');
    assert.equal(extra, undefined);
    assert.equal(record!.effect, 'Deny');
    assert.match(record!.reason, message);
  }
});

test('a token in the query string is rejected', async () => {
  const res = await fetch(`${url}?access_token=${DEMO_KEY}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: {} }),
  });
  assert.equal(res.status, 400);
});

test('the decision log is one hash chain with no gaps', async () => {
  const records = await serve.decisions();
  assert.ok(records.length > 5);
  records.forEach((r, i) => {
    assert.equal(r.seq, i);
    if (i > 0) assert.equal(r.prevHash, records[i - 1]!.hash);
  });
});

test('/healthz and /metrics answer without credentials; /metrics has the decision counters', async () => {
  assert.equal((await fetch(`${serve.base}/healthz`)).status, 200);
  const text = await (await fetch(`${serve.base}/metrics`)).text();
  assert.match(
    text,
    /mcpworks_decisions_total\{server="default\/demo",tool="word_count",effect="allow",reason_code="policy_allow"\} \d+/,
  );
  assert.match(
    text,
    /mcpworks_auth_failures_total\{method="none",reason="missing-credentials"\} \d+/,
  );
});
