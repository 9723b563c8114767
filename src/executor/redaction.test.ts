import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createRedactor, redactResult, secretForms, type SecretValue } from './redaction.ts';
import type { ToolCallResult } from './types.ts';

/** A small seeded generator (mulberry32): the same "random" cases on every run. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ALPHABET =
  'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~!*\'()+/=%&?:@ "\\é€';

function randomSecret(next: () => number, min = 8, max = 48): string {
  const length = min + Math.floor(next() * (max - min + 1));
  let out = '';
  while (Buffer.byteLength(out) < length) out += ALPHABET[Math.floor(next() * ALPHABET.length)]!;
  return out;
}

/** The ways a careless tool writes a value into its output. */
const LEAKS: Record<string, (value: string) => string> = {
  raw: (v) => v,
  base64: (v) => Buffer.from(v).toString('base64'),
  base64Unpadded: (v) => Buffer.from(v).toString('base64').replace(/=+$/, ''),
  base64url: (v) => Buffer.from(v).toString('base64url'),
  base64urlPadded: (v) => {
    const s = Buffer.from(v).toString('base64url');
    return s + '='.repeat((4 - (s.length % 4)) % 4);
  },
  basicAuthHeader: (v) => 'Basic ' + Buffer.from(`user:${v}`).toString('base64'),
  base64After2: (v) => Buffer.from(`ab${v}tail`).toString('base64'),
  base64urlAfter1: (v) => Buffer.from(`a${v}`).toString('base64url'),
  encodeURIComponent: (v) => encodeURIComponent(v),
  formPlus: (v) => new URLSearchParams({ q: v }).toString().slice(2),
  encodeURIComponentPlus: (v) => encodeURIComponent(v).replace(/%20/g, '+'),
  lowerEscapes: (v) => encodeURIComponent(v).replace(/%[0-9A-F]{2}/g, (e) => e.toLowerCase()),
  hex: (v) => Buffer.from(v).toString('hex'),
  HEX: (v) => Buffer.from(v).toString('hex').toUpperCase(),
  json: (v) => JSON.stringify({ token: v }),
};

function redactOnce(secrets: SecretValue[], text: string) {
  const counts = new Map<string, number>();
  const out = createRedactor(secrets).redact(text, counts);
  return { out, counts: Object.fromEntries(counts) };
}

/** True when no form of `value` the scanner knows of is left in `text`. */
function noFormLeft(value: string, text: string): boolean {
  return secretForms(value).every((form) => !text.includes(form));
}

describe('redaction of one secret, every leak form, random values', () => {
  for (const [form, leak] of Object.entries(LEAKS)) {
    test(form, () => {
      const next = random(14);
      for (let i = 0; i < 60; i += 1) {
        const value = randomSecret(next);
        const { out, counts } = redactOnce(
          [{ name: 'API_TOKEN', value }],
          `before ${leak(value)} after`,
        );
        assert.ok(noFormLeft(value, out), `left in: ${out}`);
        assert.match(out, /\[REDACTED:API_TOKEN\]/);
        assert.ok(out.startsWith('before ') && out.endsWith(' after'), out);
        assert.equal(counts['API_TOKEN'], 1);
      }
    });
  }
});

describe('redaction inside longer base64 text at every byte alignment', () => {
  for (const prefix of ['', 'a', 'ab', 'abc']) {
    for (const suffix of ['', 'z', 'zy']) {
      test(`${prefix.length} bytes before, ${suffix.length} after`, () => {
        const next = random(7);
        for (let i = 0; i < 40; i += 1) {
          const value = randomSecret(next, 8, 40);
          for (const encoding of ['base64', 'base64url'] as const) {
            const encoded = Buffer.from(`${prefix}${value}${suffix}`).toString(encoding);
            const { out, counts } = redactOnce([{ name: 'K', value }], encoded);
            assert.equal(counts['K'], 1, `${encoding}: ${encoded} -> ${out}`);
            // Only the characters that mix in neighbouring bits (and padding) remain.
            const left = out.replace('[REDACTED:K]', '');
            assert.ok(left.length <= 4 + Math.ceil(((prefix.length + suffix.length) * 8) / 6));
          }
        }
      });
    }
  }
});

describe('several secrets', () => {
  test('two secrets in one text are each replaced and counted', () => {
    const a = 'alpha-secret-1234';
    const b = 'bravo-secret-5678';
    const { out, counts } = redactOnce(
      [
        { name: 'A', value: a },
        { name: 'B', value: b },
      ],
      `${a} and ${Buffer.from(b).toString('base64')} and ${a}`,
    );
    assert.equal(out, '[REDACTED:A] and [REDACTED:B] and [REDACTED:A]');
    assert.deepEqual(counts, { A: 2, B: 1 });
  });

  test('a secret that is a substring of another: the longer match names the longer secret', () => {
    const short = 'abcdefgh';
    const long = 'abcdefgh-and-more';
    const { out, counts } = redactOnce(
      [
        { name: 'SHORT', value: short },
        { name: 'LONG', value: long },
      ],
      `x ${long} y ${short} z`,
    );
    assert.equal(out, 'x [REDACTED:LONG] y [REDACTED:SHORT] z');
    assert.deepEqual(counts, { LONG: 1, SHORT: 1 });
  });

  test('overlapping secrets in the text leave nothing of either', () => {
    const a = 'xxxx-shared-part';
    const b = 'shared-part-yyyy';
    const { out, counts } = redactOnce(
      [
        { name: 'A', value: a },
        { name: 'B', value: b },
      ],
      'start xxxx-shared-part-yyyy end',
    );
    assert.equal(out, 'start [REDACTED:A][REDACTED:B] end');
    assert.deepEqual(counts, { A: 1, B: 1 });
  });

  test('random overlapping and nested secrets never survive in any form', () => {
    const next = random(99);
    for (let i = 0; i < 200; i += 1) {
      const base = randomSecret(next, 16, 40);
      const cut = 4 + Math.floor(next() * (base.length - 8));
      const secrets = [
        { name: 'WHOLE', value: base },
        { name: 'HEAD', value: base.slice(0, cut + 4) },
        { name: 'TAIL', value: base.slice(cut) },
      ].filter((s) => Buffer.byteLength(s.value) >= 8);
      const leaks = Object.values(LEAKS);
      const pick = () => leaks[Math.floor(next() * leaks.length)]!;
      const text = `${pick()(base)} | ${pick()(secrets[1]?.value ?? base)} | ${secrets.map((s) => s.value).join('')}`;
      const { out } = redactOnce(secrets, text);
      for (const s of secrets) assert.ok(noFormLeft(s.value, out), `${s.name} left in ${out}`);
    }
  });

  test('two variables holding the same value both appear in the marker', () => {
    const { out, counts } = redactOnce(
      [
        { name: 'ONE', value: 'same-value-42' },
        { name: 'TWO', value: 'same-value-42' },
      ],
      'v=same-value-42',
    );
    assert.equal(out, 'v=[REDACTED:ONE][REDACTED:TWO]');
    assert.deepEqual(counts, { ONE: 1, TWO: 1 });
  });
});

describe('edge cases', () => {
  test('repeated overlapping occurrences of a self-similar value become one marker', () => {
    const { out, counts } = redactOnce([{ name: 'A', value: 'aaaaaaaa' }], 'a'.repeat(1000));
    assert.equal(out, '[REDACTED:A]');
    assert.deepEqual(counts, { A: 1 });
  });

  test('text without a secret is returned unchanged and counts nothing', () => {
    const { out, counts } = redactOnce([{ name: 'A', value: 'not-in-there' }], 'plain text');
    assert.equal(out, 'plain text');
    assert.deepEqual(counts, {});
  });

  test('a value with a trailing newline is also found without it', () => {
    const { out } = redactOnce([{ name: 'A', value: 'file-secret-9\n' }], 'got file-secret-9.');
    assert.equal(out, 'got [REDACTED:A].');
  });

  test('JSON escaping (quotes, backslashes, non-ASCII as \\u escapes) is found', () => {
    const value = 'q"uo\\te-€-secret';
    const pythonJson = JSON.stringify(value).replace(
      /[\u0080-\uffff]/g,
      (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'),
    );
    const { out } = redactOnce([{ name: 'A', value }], `${JSON.stringify(value)} ${pythonJson}`);
    assert.equal(out, '"[REDACTED:A]" "[REDACTED:A]"');
  });

  test('hex of a value is found in either case', () => {
    const hex = Buffer.from('hex-me-please').toString('hex');
    const { out, counts } = redactOnce(
      [{ name: 'A', value: 'hex-me-please' }],
      `${hex} ${hex.toUpperCase()}`,
    );
    assert.equal(out, '[REDACTED:A] [REDACTED:A]');
    assert.deepEqual(counts, { A: 2 });
  });
});

function result(overrides: Partial<ToolCallResult>): ToolCallResult {
  return {
    outcome: 'ok',
    isError: false,
    content: [],
    durationMs: 1,
    outputBytes: 1,
    executor: 'test/cold',
    ...overrides,
  };
}

describe('redactResult', () => {
  const secrets = [{ name: 'GITHUB_TOKEN', value: 'ghp_abcdefghijklmnop' }];

  test('structuredContent strings and keys, deeply; its JSON text follows; counted once', () => {
    const structured = {
      ghp_abcdefghijklmnop: 1,
      nested: { list: ['token=ghp_abcdefghijklmnop', 2, { deep: 'ghp_abcdefghijklmnop' }] },
    };
    const r = redactResult(
      result({
        content: [{ type: 'text', text: JSON.stringify(structured) }],
        structuredContent: structured,
      }),
      secrets,
    );
    assert.deepEqual(r.structuredContent, {
      '[REDACTED:GITHUB_TOKEN]': 1,
      nested: { list: ['token=[REDACTED:GITHUB_TOKEN]', 2, { deep: '[REDACTED:GITHUB_TOKEN]' }] },
    });
    assert.equal(r.content[0]!.text, JSON.stringify(r.structuredContent));
    assert.deepEqual(r.redactions, { GITHUB_TOKEN: 3 });
  });

  test('an error message and the content repeating it are both redacted, counted once', () => {
    const message = 'ValueError: bad token ghp_abcdefghijklmnop (line 3)';
    const r = redactResult(
      result({
        outcome: 'error',
        isError: true,
        content: [{ type: 'text', text: `${message}\nstderr: ghp_abcdefghijklmnop` }],
        message,
      }),
      secrets,
    );
    assert.equal(r.message, 'ValueError: bad token [REDACTED:GITHUB_TOKEN] (line 3)');
    assert.equal(
      r.content[0]!.text,
      'ValueError: bad token [REDACTED:GITHUB_TOKEN] (line 3)\nstderr: [REDACTED:GITHUB_TOKEN]',
    );
    assert.deepEqual(r.redactions, { GITHUB_TOKEN: 2 });
  });

  test('nothing found: no redactions field, same content', () => {
    const r = redactResult(result({ content: [{ type: 'text', text: 'clean' }] }), secrets);
    assert.equal(r.redactions, undefined);
    assert.deepEqual(r.content, [{ type: 'text', text: 'clean' }]);
  });

  test('keys that redact to the same text keep both values', () => {
    const structured = { ghp_abcdefghijklmnop: 1, '[REDACTED:GITHUB_TOKEN]': 2 };
    const r = redactResult(result({ content: [], structuredContent: structured }), secrets);
    assert.deepEqual(Object.values(r.structuredContent ?? {}).sort(), [1, 2]);
  });
});

describe('texts that were cut', () => {
  const secrets = [{ name: 'TOKEN', value: 'cut-secret-value-0123456789' }];

  test('a log tail that begins inside a value, and output cut inside one, are redacted', () => {
    const redactor = createRedactor(secrets);
    for (const cut of [7, 12, 20]) {
      const tail = `the script exited with status 1\n…${secrets[0]!.value.slice(cut)} more log`;
      const out = redactor.redact(tail, new Map(), true);
      assert.equal(out, 'the script exited with status 1\n…[REDACTED:TOKEN] more log', out);
      const truncated = `{"partial": "${secrets[0]!.value.slice(0, cut)}`;
      assert.equal(redactor.redact(truncated, new Map(), true), '{"partial": "[REDACTED:TOKEN]');
      const base64 = Buffer.from(secrets[0]!.value).toString('base64');
      assert.equal(
        redactor.redact(`x ${base64.slice(0, cut)}`, new Map(), true),
        'x [REDACTED:TOKEN]',
      );
    }
  });

  test('pieces shorter than the minimum, or not at a cut, are left alone', () => {
    const redactor = createRedactor(secrets);
    assert.equal(redactor.redact('ends with cut-s', new Map(), true), 'ends with cut-s');
    assert.equal(
      redactor.redact('cut-secret-va in the middle', new Map(), false),
      'cut-secret-va in the middle',
    );
  });

  test('only cut marks that begin a line count, and only the first ones', () => {
    const redactor = createRedactor(secrets);
    const piece = secrets[0]!.value.slice(10);
    assert.equal(redactor.redact(`a…${piece} b`, new Map(), true), `a…${piece} b`);
    const many = `${'\n…x'.repeat(100)}\n…${piece} b`;
    assert.equal(redactor.redact(many, new Map(), true), many);
  });

  test('a truncated result keeps no head of a value', () => {
    const r = redactResult(
      result({
        outcome: 'output-truncated',
        isError: true,
        content: [{ type: 'text', text: 'x'.repeat(100) + 'cut-secret-value-01' }],
        message: 'output truncated: the tool wrote more than 119 bytes',
      }),
      secrets,
    );
    assert.equal(r.content[0]!.text, 'x'.repeat(100) + '[REDACTED:TOKEN]');
    assert.deepEqual(r.redactions, { TOKEN: 1 });
  });
});

describe('egress attempts', () => {
  test('a value put into a requested host name is redacted from the attempt, in any case', () => {
    const secrets: SecretValue[] = [{ name: 'API_TOKEN', value: 'Sup3rSecretValue' }];
    const result: ToolCallResult = {
      outcome: 'ok',
      isError: false,
      content: [{ type: 'text', text: 'done' }],
      durationMs: 1,
      outputBytes: 4,
      executor: 'test',
      egress: [
        {
          host: 'sup3rsecretvalue.evil.example',
          port: 443,
          allowed: false,
          reason: 'not-declared',
          detail: 'sup3rsecretvalue.evil.example is not declared',
          bytesUp: 0,
          bytesDown: 0,
          durationMs: 0,
        },
        {
          host: 'api.example.com',
          port: 443,
          sni: 'api.example.com',
          allowed: true,
          reason: 'allowed',
          bytesUp: 10,
          bytesDown: 20,
          durationMs: 3,
        },
      ],
    };
    const redacted = redactResult(result, secrets);
    assert.equal(redacted.egress?.[0]?.host, '[REDACTED:API_TOKEN].evil.example');
    assert.doesNotMatch(JSON.stringify(redacted.egress), /sup3rsecretvalue/i);
    assert.equal(redacted.egress?.[1]?.host, 'api.example.com');
    assert.equal(redacted.egress?.[1]?.sni, 'api.example.com');
    assert.equal(redacted.redactions?.['API_TOKEN'], 2);
  });
});
