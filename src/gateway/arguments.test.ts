import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ResolvedTool } from '../executor/types.ts';
import { silentLogger } from '../shared/logger.ts';
import {
  argumentPath,
  checkArguments,
  compileToolValidators,
  createArgumentValidators,
} from './arguments.ts';
import type { GatewaySnapshot } from './source/types.ts';

function tool(name: string, inputSchema: Record<string, unknown>): ResolvedTool {
  return {
    name,
    description: name,
    runtime: 'python',
    code: 'def main(args):\n  return args\n',
    inputSchema: inputSchema as ResolvedTool['inputSchema'],
    timeoutSeconds: 5,
    limits: { memoryMiB: 64, cpuMillicores: 500, pids: 8, maxOutputBytes: 4096, tmpfsMiB: 4 },
  };
}

const TEXT_SCHEMA = {
  type: 'object',
  properties: { text: { type: 'string' }, n: { type: 'integer', maximum: 10 } },
  required: ['text'],
  additionalProperties: false,
};

function check(schema: Record<string, unknown>, args: Record<string, unknown>) {
  return checkArguments(compileToolValidators([tool('t', schema)]), 't', args);
}

test('arguments that match the schema pass', () => {
  assert.deepEqual(check(TEXT_SCHEMA, { text: 'a', n: 3 }), { ok: true });
});

test('a wrong type names the failing path', () => {
  assert.deepEqual(check(TEXT_SCHEMA, { text: 1 }), {
    ok: false,
    reason: 'invalid-arguments',
    message: 'arguments.text: must be string',
  });
});

test('a missing required property names the property', () => {
  const result = check(TEXT_SCHEMA, {});
  assert.equal(result.ok, false);
  assert.equal(!result.ok && result.message, 'arguments.text: is required');
});

test('an extra property is refused when additionalProperties is false', () => {
  const result = check(TEXT_SCHEMA, { text: 'a', extra: true });
  assert.equal(!result.ok && result.message, 'arguments.extra: is not allowed');
});

test('nested paths use indexes and quote names that are not identifiers', () => {
  assert.equal(argumentPath('/items/0/a~1b'), 'arguments.items[0]["a/b"]');
  const schema = {
    type: 'object',
    properties: { items: { type: 'array', items: { type: 'object', required: ['id'] } } },
  };
  const result = check(schema, { items: [{ id: 1 }, {}] });
  assert.equal(!result.ok && result.message, 'arguments.items[1].id: is required');
});

test('a caller-chosen property name is bounded in the message', () => {
  const result = check(TEXT_SCHEMA, { text: 'a', ['x'.repeat(10_000)]: 1 });
  assert.ok(!result.ok && result.message.length < 300);
});

test('a draft-07 schema compiles with draft-07 semantics', () => {
  const schema = {
    $schema: 'http://json-schema.org/draft-07/schema#',
    type: 'object',
    properties: { pair: { type: 'array', items: [{ type: 'string' }, { type: 'number' }] } },
  };
  assert.deepEqual(check(schema, { pair: ['a', 1] }), { ok: true });
  assert.equal(check(schema, { pair: [1, 'a'] }).ok, false);
});

for (const [name, schema] of [
  [
    'a remote $ref (never fetched)',
    { type: 'object', properties: { x: { $ref: 'http://127.0.0.1:9/s.json' } } },
  ],
  ['an unknown keyword (a typo would constrain nothing)', { type: 'object', requried: ['x'] }],
  ['$async (its validator would answer with a Promise)', { $async: true, type: 'object' }],
  [
    'an unsupported $schema',
    { $schema: 'https://json-schema.org/draft/2019-09/schema', type: 'object' },
  ],
  [
    'a keyword with a value of the wrong kind',
    { type: 'object', properties: { x: { minimum: 'one' } } },
  ],
] as const) {
  test(`a schema with ${name} refuses every call (fail closed)`, () => {
    const result = check(schema as Record<string, unknown>, {});
    assert.equal(result.ok, false);
    assert.equal(!result.ok && result.reason, 'schema-invalid');
  });
}

test('x- vendor keywords are annotations, anywhere in the schema', () => {
  const schema = {
    type: 'object',
    'x-owner': 'team-a',
    properties: { n: { type: 'integer', minimum: 0, 'x-vendor': { nested: [1, 2] } } },
    required: ['n'],
  };
  assert.deepEqual(check(schema, { n: 1 }), { ok: true });
  assert.equal(check(schema, { n: -1 }).ok, false);
});

test('arguments nested deeper than the stack under a recursive schema are refused, not thrown', () => {
  const schema = {
    type: 'object',
    properties: { tree: { $ref: '#/$defs/node' } },
    $defs: { node: { type: 'array', items: { $ref: '#/$defs/node' } } },
  };
  let tree: unknown = [];
  for (let i = 0; i < 200_000; i += 1) tree = [tree];
  assert.deepEqual(check(schema, { tree }), {
    ok: false,
    reason: 'invalid-arguments',
    message: 'arguments: nested too deeply',
  });
});

test('$data references are plain values, not evaluated', () => {
  const schema = { type: 'object', properties: { a: { const: { $data: '1/b' } }, b: {} } };
  assert.equal(check(schema, { a: 1, b: 1 }).ok, false);
});

test('format is an annotation, not enforced (2020-12 default)', () => {
  const schema = { type: 'object', properties: { mail: { type: 'string', format: 'email' } } };
  assert.deepEqual(check(schema, { mail: 'not an address' }), { ok: true });
});

test('two tools with the same $id both compile', () => {
  const schema = () => ({
    $id: 'https://schemas.example/same',
    type: 'object',
    properties: { x: { type: 'string' } },
  });
  const validators = compileToolValidators([tool('a', schema()), tool('b', schema())]);
  assert.equal(checkArguments(validators, 'b', { x: 1 }).ok, false);
  assert.equal(checkArguments(validators, 'a', { x: 'y' }).ok, true);
});

function snapshotOf(revision: number, tools: ResolvedTool[]): GatewaySnapshot {
  return { revision, tools } as unknown as GatewaySnapshot;
}

test('validators are compiled once per revision and reused while the schema is unchanged', () => {
  const validators = createArgumentValidators(silentLogger());
  const first = validators.for(snapshotOf(1, [tool('t', TEXT_SCHEMA)]));
  assert.equal(validators.for(snapshotOf(1, [tool('t', TEXT_SCHEMA)])), first);
  const second = validators.for(snapshotOf(2, [tool('t', { ...TEXT_SCHEMA })]));
  assert.notEqual(second, first);
  assert.equal(second.get('t'), first.get('t'));
  const third = validators.for(snapshotOf(3, [tool('t', { type: 'object' })]));
  assert.notEqual(third.get('t'), first.get('t'));
});

test('a schema that does not compile is logged once, not on every call', () => {
  const lines: string[] = [];
  const logger = silentLogger();
  const counting = Object.assign(Object.create(logger) as typeof logger, {
    error: (_obj: unknown, msg: string) => lines.push(msg),
  });
  const validators = createArgumentValidators(counting);
  const broken = [tool('t', { type: 'object', requried: ['x'] })];
  for (let i = 0; i < 3; i += 1) validators.check(snapshotOf(1, broken), 't', {});
  validators.check(snapshotOf(2, broken), 't', {});
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /does not compile/);
});
