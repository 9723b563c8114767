import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeUtf8Strict, unfaithfulJson } from './faithful-json.ts';

test('ordinary JSON passes, including numbers a double holds and escaped pairs', () => {
  for (const text of [
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"a":1}}}',
    '{"n":[0,-1,3.25,1e21,1.5e-300,9007199254740991,-9007199254740991,9007199254740992]}',
    '{"s":"\\ud83d\\ude00 caf\\u00e9","k":{"s":1},"l":[{"s":2},{"s":3}]}',
    '{"a":{"x":1},"b":{"x":2}}',
    '"just a string"',
    '0.1',
  ]) {
    assert.equal(unfaithfulJson(text), undefined, text);
  }
});

test('numbers that do not survive the round trip are named', () => {
  const cases: [string, RegExp][] = [
    ['{"limit":1e400}', /1e400 is too large for a double/],
    ['{"limit":-1e400}', /too large for a double/],
    ['{"id":12345678901234567890}', /12345678901234567890 cannot be represented exactly/],
    ['{"x":-0}', /-0 is negative zero/],
    ['{"x":-0.0e5}', /negative zero/],
    ['{"x":1e-400}', /underflows to 0/],
  ];
  for (const [text, problem] of cases) assert.match(unfaithfulJson(text) ?? '', problem, text);
});

test('a key repeated in one object is refused, at any depth; the same key in siblings is not', () => {
  assert.match(unfaithfulJson('{"a":1,"a":2}') ?? '', /the key "a" appears twice/);
  assert.match(unfaithfulJson('{"p":{"args":{"limit":1,"limit":500}}}') ?? '', /"limit"/);
  assert.match(unfaithfulJson('{"\\u0061":1,"a":2}') ?? '', /the key "a" appears twice/);
  assert.equal(unfaithfulJson('[{"a":1},{"a":2}]'), undefined);
});

test('a string with an unpaired surrogate is refused, as a value or a key', () => {
  assert.match(unfaithfulJson('{"s":"\\ud800"}') ?? '', /unpaired UTF-16 surrogate/);
  assert.match(unfaithfulJson('{"\\udfff":1}') ?? '', /unpaired/);
  assert.match(unfaithfulJson('["ok","x\\ude00y"]') ?? '', /unpaired/);
});

test('strings that look like numbers or structure are not mistaken for them', () => {
  assert.equal(unfaithfulJson('{"a":"1e400","b":"{\\"a\\":1,\\"a\\":2}","c":"-0"}'), undefined);
});

test('bodies that are not UTF-8 are refused; UTF-8 is decoded as is', () => {
  assert.equal(decodeUtf8Strict(Buffer.from('{"s":"é"}')), '{"s":"é"}');
  assert.equal(decodeUtf8Strict(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d])), undefined);
  assert.equal(decodeUtf8Strict(Buffer.from([0xed, 0xa0, 0x80])), undefined); // encoded surrogate
});
