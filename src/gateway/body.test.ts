import assert from 'node:assert/strict';
import { test } from 'node:test';
import { jsonNestingDepth, MAX_JSON_DEPTH } from './body.ts';

test('jsonNestingDepth counts arrays and objects, not brackets inside strings', () => {
  assert.equal(jsonNestingDepth('1'), 0);
  assert.equal(jsonNestingDepth('{"a":[1,{"b":[]}]}'), 4);
  assert.equal(jsonNestingDepth('{"a":"[[[[{{{{"}'), 1);
  assert.equal(jsonNestingDepth('{"a":"\\"[[[["}'), 1);
  assert.equal(jsonNestingDepth('{"a":"\\\\","b":[[]]}'), 3);
});

test('jsonNestingDepth handles a megabyte of nesting without recursion', () => {
  const depth = 500_000;
  assert.equal(jsonNestingDepth(`${'['.repeat(depth)}${']'.repeat(depth)}`), depth);
  assert.ok(depth > MAX_JSON_DEPTH);
});
