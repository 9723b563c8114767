import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkRequestShape } from './request-shape.ts';

const call = (params: unknown) => ({ jsonrpc: '2.0', id: 1, method: 'tools/call', params });

test('a well-formed tools/call passes', () => {
  assert.deepEqual(checkRequestShape(call({ name: 'word_count', arguments: { text: 'a' } })), {
    ok: true,
  });
  assert.deepEqual(checkRequestShape(call({ name: 'word_count' })), { ok: true });
});

test('a malformed tools/call gets one short line naming the field, never a dump', () => {
  const cases: [unknown, string][] = [
    [{ name: 5 }, 'Invalid params: tools/call params.name must be a string'],
    [
      { name: 'x', arguments: 'y' },
      'Invalid params: tools/call params.arguments must be an object',
    ],
    [{}, 'Invalid params: tools/call params.name must be a string'],
    [undefined, 'Invalid params: tools/call params must be an object'],
  ];
  for (const [params, message] of cases) {
    const r = checkRequestShape(call(params));
    assert.deepEqual(r, { ok: false, message }, JSON.stringify(params));
  }
});

test('notifications, responses and methods the gateway does not serve are left to the SDK', () => {
  assert.equal(checkRequestShape({ method: 'tools/call', params: 5 }).ok, true);
  assert.equal(checkRequestShape({ id: 1 }).ok, true);
  assert.equal(checkRequestShape({ method: 'resources/list', id: 1, params: 5 }).ok, true);
  assert.equal(checkRequestShape({ method: 'constructor', id: 1 }).ok, true);
});

test('initialize without its required fields is refused the same way', () => {
  const r = checkRequestShape({ id: 1, method: 'initialize', params: {} });
  assert.equal(r.ok, false);
  assert.match(
    (r as { message: string }).message,
    /^Invalid params: initialize params\.\w+ must be/,
  );
});
