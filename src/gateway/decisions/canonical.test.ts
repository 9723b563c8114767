import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { canonicalJson, canonicalJsonOfShape } from './canonical.ts';

/**
 * The canonical form as first written (logs already on disk were hashed with it): any faster
 * version must give the same bytes, or `mcpworks audit verify` would reject old logs.
 */
function firstCanonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'bigint') return value.toString();
    const text = JSON.stringify(value);
    return text === undefined ? 'null' : text;
  }
  if (Array.isArray(value)) {
    return `[${value.map((item) => (item === undefined ? 'null' : firstCanonicalJson(item))).join(',')}]`;
  }
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function') {
    return firstCanonicalJson((value as { toJSON(): unknown }).toJSON());
  }
  const record = value as Record<string, unknown>;
  const parts: string[] = [];
  for (const key of Object.keys(record).sort()) {
    const member = record[key];
    if (member === undefined || typeof member === 'function' || typeof member === 'symbol')
      continue;
    parts.push(`${JSON.stringify(key)}:${firstCanonicalJson(member)}`);
  }
  return `{${parts.join(',')}}`;
}

/** Any text, lone surrogates and control characters included. */
const anyText = fc.string({ unit: 'binary', maxLength: 12 });
const jsonish = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.double(),
    fc.integer(),
    anyText,
    fc.constant(undefined),
    fc.bigInt(),
    fc.date({ noInvalidDate: true }),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.oneof(anyText, fc.nat().map(String)), tie('value'), { maxKeys: 5 }),
  ),
})).value;

describe('canonicalJson', () => {
  test('gives the bytes of the first implementation for any value', () => {
    fc.assert(
      fc.property(jsonish, (value) => {
        assert.equal(canonicalJson(value), firstCanonicalJson(value));
      }),
      { numRuns: 2000 },
    );
  });

  test('escapes what JSON.stringify escapes: quotes, backslashes, controls, lone surrogates', () => {
    const text = 'a"b\\c\n\u0001\ud800\udc00\udfff';
    assert.equal(
      canonicalJson({ [text]: text }),
      `{${JSON.stringify(text)}:${JSON.stringify(text)}}`,
    );
  });

  test('orders integer-like keys as text, not as numbers', () => {
    assert.equal(canonicalJson({ 9: 'a', 10: 'b', x: 'c' }), '{"10":"b","9":"a","x":"c"}');
  });
});

describe('canonicalJsonOfShape', () => {
  const shape = canonicalJsonOfShape(['b', 'a', 'c', 'd'], {
    d: canonicalJsonOfShape(['y', 'x']),
  });

  test('gives canonicalJson bytes for objects of its shape, in any key order', () => {
    fc.assert(
      fc.property(
        fc.record(
          {
            c: jsonish,
            a: jsonish,
            b: jsonish,
            // A member with a nested shape holds an object of that shape, or no object at all.
            d: fc.oneof(
              fc.record({ y: jsonish, x: jsonish }, { requiredKeys: [] }),
              fc.constant(null),
              fc.integer(),
              anyText,
              fc.array(jsonish, { maxLength: 3 }),
            ),
          },
          { requiredKeys: [] },
        ),
        (value) => {
          assert.equal(shape(value), canonicalJson(value));
        },
      ),
      { numRuns: 1000 },
    );
  });
});
