// Argument validation in the gateway, in-process: a call whose arguments do not match the tool's
// inputSchema is answered with a tool error naming the path, never reaches the executor, and
// leaves exactly one decision record with outcome invalid-arguments. Authorization still comes
// first: a denied caller sees the same denial whatever the arguments.
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import type { ResolvedTool } from '../../src/executor/types.ts';
import type { GatewaySnapshot } from '../../src/gateway/source/types.ts';
import type { EventObservation, EventSink } from '../../src/gateway/telemetry/events.ts';
import {
  connect,
  mutableSource,
  snapshot,
  startGateway,
  tool,
  type StartedGateway,
} from './gateway-fixtures.ts';

const TEXT_SCHEMA = {
  type: 'object',
  properties: { text: { type: 'string' } },
  required: ['text'],
  additionalProperties: false,
} as const;

function withTools(revision: number, tools: ResolvedTool[]): GatewaySnapshot {
  return { ...snapshot({ alice: tools.map((t) => t.name) }, revision), tools };
}

function schemaTool(name: string, inputSchema: Record<string, unknown>): ResolvedTool {
  return { ...tool(name), inputSchema: inputSchema as ResolvedTool['inputSchema'] };
}

let gw: StartedGateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

async function startWith(tools: ResolvedTool[]) {
  const source = mutableSource(withTools(1, tools));
  gw = await startGateway({ source });
  return { gw, source };
}

async function callOnce(args: Record<string, unknown>, name = 'count', token = 'token-alice') {
  const client = await connect(gw!.url, token);
  const before = gw!.records.length;
  const result = await client.callTool({ name, arguments: args });
  await client.close();
  return { result, records: gw!.records.slice(before) };
}

function text(result: Awaited<ReturnType<typeof callOnce>>['result']): string {
  return (result.content as { type: string; text: string }[]).map((c) => c.text).join('');
}

for (const [name, args, message] of [
  ['a wrong type', { text: 1 }, 'invalid arguments: arguments.text: must be string'],
  ['a missing required property', {}, 'invalid arguments: arguments.text: is required'],
  [
    'an extra property (additionalProperties: false)',
    { text: 'a', extra: 1 },
    'invalid arguments: arguments.extra: is not allowed',
  ],
] as const) {
  test(`${name} is a tool error, costs no sandbox, and records one invalid-arguments`, async () => {
    await startWith([schemaTool('count', TEXT_SCHEMA)]);
    const { result, records } = await callOnce(args);
    assert.equal(result.isError, true);
    assert.equal(text(result), message);
    assert.equal(gw!.executor.requests.length, 0);
    assert.equal(records.length, 1);
    assert.equal(records[0]!.method, 'tools/call');
    assert.equal(records[0]!.tool, 'count');
    assert.equal(records[0]!.effect, 'Allow');
    assert.equal(records[0]!.outcome, 'invalid-arguments');
    assert.equal(records[0]!.executor, undefined);
  });
}

test('a valid call still runs in the executor and records ok', async () => {
  await startWith([schemaTool('count', TEXT_SCHEMA)]);
  const { result, records } = await callOnce({ text: 'one two' });
  assert.equal(result.isError, false);
  assert.equal(gw!.executor.requests.length, 1);
  assert.deepEqual(gw!.executor.requests[0]!.arguments, { text: 'one two' });
  assert.equal(records.length, 1);
  assert.equal(records[0]!.outcome, 'ok');
});

test('a denied caller gets the policy denial, not the schema error (authorization first)', async () => {
  await startWith([schemaTool('count', TEXT_SCHEMA)]);
  const { result, records } = await callOnce({ text: 1 }, 'count', 'token-bob');
  assert.equal(result.isError, true);
  assert.match(text(result), /^denied by policy/);
  assert.doesNotMatch(text(result), /arguments/);
  assert.equal(records.length, 1);
  assert.equal(records[0]!.outcome, 'denied');
});

test('the refusal is counted under reason_code invalid_arguments', async () => {
  await startWith([schemaTool('count', TEXT_SCHEMA)]);
  await callOnce({ text: 1 });
  const metrics = await gw!.registry.metrics();
  assert.match(
    metrics,
    /mcpworks_decisions_total\{server="team-a\/demo",tool="count",effect="allow",reason_code="invalid_arguments"\} 1/,
  );
});

test('a tool whose schema does not compile is refused (fail closed) without the sandbox', async () => {
  const observed: EventObservation[] = [];
  const events: EventSink = {
    observe: (o) => observed.push(o),
    flush: async () => {},
    stats: () => ({ published: 0, dropped: 0, pending: 0 }),
  };
  const source = mutableSource(
    withTools(1, [schemaTool('count', { type: 'object', requried: ['text'] })]),
  );
  gw = await startGateway({ source, events });
  const { result, records } = await callOnce({ text: 'a' });
  assert.equal(result.isError, true);
  assert.match(text(result), /^tool unavailable: its inputSchema is invalid/);
  assert.equal(gw!.executor.requests.length, 0);
  assert.equal(records.length, 1);
  assert.equal(records[0]!.outcome, 'internal-error');
  assert.deepEqual(
    observed.map((o) => [o.regarding.kind, o.reason]),
    [['McpServer', 'ToolSchemaInvalid']],
  );
  assert.match(observed[0]!.message, /^tool count is refused: .*unknown keyword: "requried"/);
});

test('a schema change applies to the next call', async () => {
  const { source } = await startWith([schemaTool('count', TEXT_SCHEMA)]);
  assert.equal((await callOnce({ text: 1 })).result.isError, true);
  source.set(withTools(2, [schemaTool('count', { type: 'object' })]));
  assert.equal((await callOnce({ text: 1 })).result.isError, false);
  assert.equal(gw!.executor.requests.length, 1);
});
