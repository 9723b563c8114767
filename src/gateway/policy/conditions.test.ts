import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  compileCondition,
  prepareArguments,
  unsafeRegex,
  type CompiledCondition,
} from './conditions.ts';

function compiled(source: string): CompiledCondition {
  const result = compileCondition(source);
  if ('error' in result) assert.fail(result.error);
  return result;
}

const run = (condition: CompiledCondition, args: Record<string, unknown>) =>
  condition.evaluate(prepareArguments(args, 'tool', { kind: 'Agent', name: 'alice', groups: [] }));

describe('compileCondition', () => {
  test('rejects what does not parse, is not boolean, or is too long', () => {
    assert.match((compileCondition('args.(') as { error: string }).error, /does not compile/);
    assert.match((compileCondition('1 + 2') as { error: string }).error, /boolean/);
    assert.match(
      (compileCondition(`${'true && '.repeat(300)}true`) as { error: string }).error,
      /longer than 2048/,
    );
    assert.match(
      (compileCondition('unknown_var == 1') as { error: string }).error,
      /does not compile/,
    );
  });

  test('evaluates to the boolean result', () => {
    assert.deepEqual(run(compiled('args.n > 2'), { n: 3 }), { ok: true, value: true });
    assert.deepEqual(run(compiled('args.n > 2'), { n: 1 }), { ok: true, value: false });
  });

  test('an evaluation error is reported, not thrown', () => {
    const result = run(compiled('args.missing == 1'), {});
    assert.equal(result.ok, false);
  });

  test('a non-boolean result under dyn is an error', () => {
    const result = run(compiled('args.x'), { x: 'text' });
    assert.deepEqual(result, { ok: false, error: 'evaluated to string, not bool' });
  });

  test('nested comprehensions over large arguments exceed the estimated cost', () => {
    const condition = compiled('args.l.all(a, args.l.all(b, a != b || a == b))');
    assert.equal(run(condition, { l: [1, 2, 3] }).ok, true);
    const result = run(condition, { l: Array.from({ length: 2000 }, (_, i) => i) });
    assert.equal(result.ok, false);
    assert.match((result as { error: string }).error, /estimated cost/);
  });

  test('a string that split() could turn into a long list counts in full for comprehensions', () => {
    const condition = compiled(
      'args.s.split("").all(a, args.s.split("").all(b, a == b || a != b))',
    );
    assert.equal(run(condition, { s: 'ab' }).ok, true);
    const result = run(condition, { s: 'x'.repeat(20_000) });
    assert.equal(result.ok, false);
    assert.match((result as { error: string }).error, /estimated cost/);
  });

  test('a condition without comprehensions runs on large arguments', () => {
    assert.deepEqual(run(compiled('size(args.text) > 10'), { text: 'x'.repeat(100_000) }), {
      ok: true,
      value: true,
    });
  });

  test('matches() needs a literal, safe pattern and bounded input', () => {
    assert.match(
      (compileCondition('args.s.matches(args.p)') as { error: string }).error,
      /literal pattern/,
    );
    const condition = compiled('args.s.matches("^[a-z]+$")');
    assert.deepEqual(run(condition, { s: 'abc' }), { ok: true, value: true });
    const long = run(condition, { s: 'a'.repeat(5000) });
    assert.equal(long.ok, false);
  });
});

describe('unsafeRegex', () => {
  const safe = ['^[a-z]+$', '^/tmp/', '^[a-z]+@[a-z]+\\.com$', '(ab)+', '^(foo|bar)$', 'a{2,3}'];
  const unsafe = [
    '(a+)+$',
    '(a|aa)*',
    '(a*)*',
    '(\\w+\\s?)*$',
    '(.*a){10}',
    '(a)\\1',
    'a*b*c*d',
    '(?<x>a)\\k<x>',
    '(a',
    'a)',
  ];
  for (const pattern of safe)
    test(`accepts ${pattern}`, () => assert.equal(unsafeRegex(pattern), undefined));
  for (const pattern of unsafe)
    test(`rejects ${pattern}`, () => assert.notEqual(unsafeRegex(pattern), undefined));
});

describe('prepareArguments', () => {
  test('integers become CEL ints and objects lose their prototype', () => {
    const prepared = prepareArguments(
      JSON.parse('{"n": 3, "x": 1.5, "o": {"__proto__": 1}}'),
      't',
      {},
    );
    assert.equal(prepared.input.args['n'], 3n);
    assert.equal(prepared.input.args['x'], 1.5);
    assert.equal(Object.getPrototypeOf(prepared.input.args['o']), null);
  });

  test('deeply nested arguments are too heavy to evaluate', () => {
    let nested: unknown = 1;
    for (let i = 0; i < 100; i++) nested = { n: nested };
    assert.match(prepareArguments({ nested }, 't', {}).tooHeavy ?? '', /deeper than 64/);
  });
});
