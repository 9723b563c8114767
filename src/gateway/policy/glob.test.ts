import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { compileGlob, GlobError, isLiteralGlob } from './glob.ts';

/** The obvious regular-expression reading of a brace-free glob, as the reference. */
function reference(pattern: string): RegExp {
  let source = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '*') source += '[\\s\\S]*';
    else if (c === '?') source += '[\\s\\S]';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      const body = pattern.slice(i + 1, end);
      source += body.startsWith('!') ? `[^${body.slice(1)}]` : `[${body}]`;
      i = end;
    } else source += c.replace(/[.\\^$+()|{}]/g, '\\$&');
  }
  return new RegExp(`^${source}$`);
}

describe('compileGlob', () => {
  const table: [string, string[], string[]][] = [
    ['read_*', ['read_', 'read_file', 'read_/x'], ['rea', 'xread_file']],
    ['*_file', ['write_file', '_file'], ['file', 'write_files']],
    ['*e*', ['e', 'shell', '.env'], ['list']],
    ['ge?', ['get', 'ge/'], ['ge', 'gets']],
    ['log[0-9]', ['log0', 'log9'], ['logx', 'log10']],
    ['log[!0-9]', ['logx'], ['log1', 'log']],
    ['log[^0-9]', ['logx'], ['log1']],
    ['{list,stat}_dir', ['list_dir', 'stat_dir'], ['mk_dir', '{list,stat}_dir']],
    ['a{b,c{d,e}}f', ['abf', 'acdf', 'acef'], ['acf']],
    ['{a,}x', ['ax', 'x'], ['bx']],
    ['a*b*c', ['abc', 'aXbYc', 'abbbc'], ['ab', 'acb']],
    ['*', ['', 'anything/at.all'], []],
    ['.hidden', ['.hidden'], ['xhidden']],
    ['db.*', ['db.read', 'db.', 'db.a.b'], ['db', 'dbxread', 'xdb.read']],
    ['*.read', ['db.read', '.read', 'a.b.read'], ['db_read', 'db.reads', 'read']],
    ['*.*', ['a.b', '.', '..', 'a..b'], ['ab']],
    ['!admin', ['!admin'], ['admin', 'read_file']],
    ['x{a..c}', ['xa..c'], ['xa', 'xb']],
  ];
  for (const [pattern, yes, no] of table) {
    test(`${pattern} matches ${yes.join(', ')}${no.length > 0 ? ` and not ${no.join(', ')}` : ''}`, () => {
      const matches = compileGlob(pattern);
      for (const name of yes) assert.equal(matches(name), true, name);
      for (const name of no) assert.equal(matches(name), false, name);
    });
  }

  test('agrees with a regular-expression reading on random brace-free globs and names', () => {
    const patternArb = fc
      .array(fc.constantFrom('a', 'b', '.', '-', '*', '?', '[ab]', '[!a]', '[a-b]'), {
        minLength: 1,
        maxLength: 8,
      })
      .map((parts) => parts.join(''));
    const nameArb = fc
      .array(fc.constantFrom('a', 'b', 'c', '.', '/', '-'), { maxLength: 10 })
      .map((p) => p.join(''));
    fc.assert(
      fc.property(patternArb, nameArb, (pattern, name) => {
        assert.equal(
          compileGlob(pattern)(name),
          reference(pattern).test(name),
          `${pattern} vs ${name}`,
        );
      }),
      { numRuns: 3000 },
    );
  });

  test('rejects unbalanced brackets and braces, reversed ranges and empty classes', () => {
    for (const bad of ['read_[a', 'a]', '{a,b', 'a}', '[z-a]', '[]', '[!]']) {
      assert.throws(() => compileGlob(bad), GlobError, bad);
    }
  });

  test('refuses brace patterns with too many alternatives', () => {
    assert.throws(
      () => compileGlob('{a,b,c,d,e}{a,b,c,d,e}{a,b,c,d,e}x'),
      /more than 64 alternatives/,
    );
  });

  test('a pattern built to make backtracking matchers explode stays fast', () => {
    const matches = compileGlob('*a*a*a*a*a*a*a*a*a*a*b');
    const started = performance.now();
    assert.equal(matches('a'.repeat(256)), false);
    assert.ok(performance.now() - started < 100, 'linear-time matching');
  });

  test('stays linear on a few stars and a name of the longest length a caller may send', () => {
    const matches = compileGlob('*a*a*a*x');
    const started = performance.now();
    assert.equal(matches('a'.repeat(256)), false);
    assert.ok(performance.now() - started < 100, 'linear-time matching');
  });

  test('isLiteralGlob tells exact names from patterns', () => {
    assert.equal(isLiteralGlob('read_file'), true);
    assert.equal(isLiteralGlob('read_*'), false);
    assert.equal(isLiteralGlob('{a,b}'), false);
  });
});
