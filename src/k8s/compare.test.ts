import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isSubset, parseQuantity } from './compare.ts';

test('fields the server added do not count as a difference', () => {
  assert.ok(
    isSubset(
      { spec: { replicas: 2 } },
      { spec: { replicas: 2, revisionHistoryLimit: 10 }, status: {} },
    ),
  );
});

test('a changed value is a difference', () => {
  assert.equal(isSubset({ spec: { replicas: 2 } }, { spec: { replicas: 7 } }), false);
});

test('lists must match in length', () => {
  assert.equal(isSubset({ args: ['a'] }, { args: ['a', 'b'] }), false);
});

test('an empty list equals an omitted one (the API server drops empty lists)', () => {
  assert.ok(isSubset({ egress: [] }, {}));
});

test('quantities compare by value', () => {
  assert.ok(isSubset({ cpu: '0.5' }, { cpu: '500m' }));
  assert.ok(isSubset({ memory: '1Gi' }, { memory: '1024Mi' }));
  assert.equal(isSubset({ memory: '1G' }, { memory: '1Gi' }), false);
  assert.equal(parseQuantity('abc'), undefined);
});
