/**
 * Redaction of secret values from what a tool returns, before it leaves the executor. Pure: the
 * values come in, a redacted copy and counts by variable name come out.
 *
 * A careless tool leaks a credential as it is or in the encodings it passes through: base64
 * (standard and URL-safe, padded or not, and inside a longer base64 text at any of the three byte
 * alignments), percent-encoding (JavaScript's and Python's, `+` for space, upper- or lower-case
 * escapes), hex (lower and upper case) and JSON string escaping. Each is replaced with
 * `[REDACTED:<VAR_NAME>]`. What no scanner can catch (a value split, reversed, encrypted, or
 * re-encoded some other way) is said plainly in docs/tools.md, "Secrets".
 */
import type { ToolCallResult } from './types.ts';

export interface SecretValue {
  /** The secretEnv variable's name: what a redaction marker and the counts show. */
  name: string;
  value: string;
}

/** Patterns shorter than this are not searched (a base64 core of a very short value). */
const MIN_PATTERN_CHARS = 6;

const STANDARD = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const URL_SAFE = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * The base64 characters that depend on `bytes` alone when they sit `offset` bytes (0, 1 or 2)
 * into a longer encoded text: characters carrying bits of a neighbouring byte are left out.
 */
function base64Core(bytes: Buffer, offset: number, alphabet: string): string {
  const padded = Buffer.concat([Buffer.alloc(offset), bytes]);
  let encoded = padded.toString('base64').replace(/=+$/, '');
  if (alphabet === URL_SAFE) encoded = encoded.replace(/\+/g, '-').replace(/\//g, '_');
  const first = Math.ceil((offset * 8) / 6);
  const end = Math.floor((padded.length * 8) / 6);
  return encoded.slice(first, end);
}

function base64Forms(bytes: Buffer): string[] {
  const standard = bytes.toString('base64');
  const urlSafe = bytes.toString('base64url');
  const forms = [
    standard,
    standard.replace(/=+$/, ''),
    urlSafe,
    urlSafe + '='.repeat((4 - (urlSafe.length % 4)) % 4),
  ];
  for (const alphabet of [STANDARD, URL_SAFE]) {
    for (const offset of [0, 1, 2]) forms.push(base64Core(bytes, offset, alphabet));
  }
  return forms;
}

/** Percent-encodes every byte except ASCII letters, digits and `safe`; `plus`: space as `+`. */
function percentEncode(bytes: Buffer, safe: string, plus: boolean, lower: boolean): string {
  let out = '';
  for (const byte of bytes) {
    const char = String.fromCharCode(byte);
    if (byte < 0x80 && (/[A-Za-z0-9]/.test(char) || safe.includes(char))) out += char;
    else if (plus && byte === 0x20) out += '+';
    else {
      const hex = byte.toString(16).padStart(2, '0');
      out += '%' + (lower ? hex : hex.toUpperCase());
    }
  }
  return out;
}

/** encodeURIComponent; Python's quote and quote_plus; HTML form encoding (URLSearchParams). */
const PERCENT_STYLES: { safe: string; plus: boolean }[] = [
  { safe: "-_.!~*'()", plus: false },
  { safe: "-_.!~*'()", plus: true },
  { safe: '-_.~/', plus: false },
  { safe: '-_.~', plus: true },
  { safe: '-_.*', plus: true },
];

function jsonEscapes(value: string): string[] {
  const escaped = JSON.stringify(value).slice(1, -1);
  // Python's json.dumps default (ensure_ascii): every non-ASCII code unit as \uXXXX.
  const ascii = escaped.replace(
    /[\u0080-\uffff]/g,
    (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'),
  );
  return [escaped, ascii];
}

/** Every form of `value` the scanner looks for, longest first, without duplicates. */
export function secretForms(value: string): string[] {
  const variants = [value];
  const trimmed = value.trim();
  // A value ending in a newline (a file written with echo) leaks without it just as well.
  if (trimmed !== value && Buffer.byteLength(trimmed) >= 8) variants.push(trimmed);
  const forms = new Set<string>();
  for (const variant of variants) {
    const bytes = Buffer.from(variant, 'utf8');
    forms.add(variant);
    for (const form of jsonEscapes(variant)) forms.add(form);
    for (const form of base64Forms(bytes)) forms.add(form);
    for (const { safe, plus } of PERCENT_STYLES) {
      for (const lower of [false, true]) forms.add(percentEncode(bytes, safe, plus, lower));
    }
    const hex = bytes.toString('hex');
    forms.add(hex);
    forms.add(hex.toUpperCase());
  }
  return [...forms]
    .filter((form) => form.length >= MIN_PATTERN_CHARS)
    .sort((a, b) => b.length - a.length);
}

/**
 * The shortest piece of a form redacted where a text was cut (see Redactor.redact `cut`): shorter
 * pieces say little about a value and would match ordinary text too often.
 */
export const MIN_CUT_PIECE_CHARS = 6;
/** What the executor puts where it cut a log tail (src/executor/protocol.ts). */
const CUT_MARK = '…';

export interface Redactor {
  /**
   * `text` with every form of every value replaced; adds to `counts` per variable. `cut`: the
   * text may have been cut (a log tail, a truncated output), so a form's tail at its start or
   * after a line-starting `…`, and a form's head at its end, are replaced too.
   */
  redact(text: string, counts: Map<string, number>, cut?: boolean): string;
}

interface Interval {
  start: number;
  end: number;
  name: string;
}

/**
 * Compiles the search for `secrets`. Every occurrence of every form is found, overlapping ones
 * included; a match inside a longer one (a secret that is a substring of another) is part of
 * the longer one; overlapping matches are replaced together, so two secrets sharing characters
 * in the text leave nothing of either behind.
 */
export function createRedactor(secrets: readonly SecretValue[]): Redactor {
  const patterns: { form: string; name: string }[] = [];
  for (const { name, value } of secrets) {
    for (const form of secretForms(value)) patterns.push({ form, name });
  }
  return {
    redact(text, counts, cut = false) {
      if (patterns.length === 0 || text.length === 0) return text;
      const found: Interval[] = [];
      for (const { form, name } of patterns) {
        for (let at = text.indexOf(form); at !== -1; at = text.indexOf(form, at + 1))
          found.push({ start: at, end: at + form.length, name });
      }
      if (cut) found.push(...cutPieces(text, patterns));
      if (found.length === 0) return text;
      found.sort((a, b) => a.start - b.start || b.end - a.end);
      let out = '';
      let cursor = 0;
      let group: { end: number; names: string[] } | undefined;
      // The interval reaching furthest so far, and the earliest start reaching there: a later
      // interval ending no further is inside it (unless it is the very same span).
      let reach = -1;
      let reachStart = -1;
      const flush = () => {
        if (group === undefined) return;
        for (const name of group.names) counts.set(name, (counts.get(name) ?? 0) + 1);
        out += group.names.map((name) => `[REDACTED:${name}]`).join('');
        cursor = group.end;
        group = undefined;
      };
      for (const interval of found) {
        if (group !== undefined && interval.start >= group.end) flush();
        if (group === undefined) {
          out += text.slice(cursor, interval.start);
          group = { end: interval.end, names: [interval.name] };
          reach = interval.end;
          reachStart = interval.start;
          continue;
        }
        const inside =
          interval.end < reach || (interval.end === reach && reachStart < interval.start);
        if (interval.end > reach) {
          reach = interval.end;
          reachStart = interval.start;
        }
        group.end = Math.max(group.end, interval.end);
        if (!inside && !group.names.includes(interval.name)) group.names.push(interval.name);
      }
      flush();
      return out + text.slice(cursor);
    },
  };
}

/** Cut marks looked at per text: the executor makes one or two; more come from the tool. */
const MAX_CUTS = 16;

/** The length of the longest proper prefix of `head` that `tail` ends with (KMP, linear). */
function overlap(head: string, tail: string): number {
  const joined = head + '\u0000' + tail.slice(-(head.length - 1));
  const prefix = new Int32Array(joined.length);
  for (let i = 1; i < joined.length; i += 1) {
    let k = prefix[i - 1]!;
    while (k > 0 && joined[i] !== joined[k]) k = prefix[k - 1]!;
    if (joined[i] === joined[k]) k += 1;
    prefix[i] = k;
  }
  return Math.min(prefix[joined.length - 1]!, head.length - 1);
}

const reversed = (value: string) => [...value].reverse().join('');

/**
 * Pieces of forms where `text` may have been cut: a form's tail at its start or after a `…`
 * that begins a line (the executor's mark for a log tail), and a form's head at its end.
 */
function cutPieces(text: string, patterns: readonly { form: string; name: string }[]): Interval[] {
  const starts = [0];
  for (
    let at = text.indexOf('\n' + CUT_MARK);
    at !== -1 && starts.length <= MAX_CUTS;
    at = text.indexOf('\n' + CUT_MARK, at + 1)
  )
    starts.push(at + 1 + CUT_MARK.length);
  const pieces: Interval[] = [];
  for (const { form, name } of patterns) {
    if (form.length <= MIN_CUT_PIECE_CHARS) continue;
    const formReversed = reversed(form);
    for (const start of starts) {
      const window = text.slice(start, start + form.length - 1);
      const k = overlap(formReversed, reversed(window));
      if (k >= MIN_CUT_PIECE_CHARS) pieces.push({ start, end: start + k, name });
    }
    const k = overlap(form, text);
    if (k >= MIN_CUT_PIECE_CHARS) pieces.push({ start: text.length - k, end: text.length, name });
  }
  return pieces;
}

function redactDeep(value: unknown, redactor: Redactor, counts: Map<string, number>): unknown {
  if (typeof value === 'string') return redactor.redact(value, counts);
  if (Array.isArray(value)) return value.map((item) => redactDeep(item, redactor, counts));
  if (typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(value)) {
    let redactedKey = redactor.redact(key, counts);
    // Two keys redacted to the same text keep both values.
    for (let n = 2; Object.hasOwn(out, redactedKey); n += 1)
      redactedKey = `${redactor.redact(key, new Map())}#${n}`;
    out[redactedKey] = redactDeep(child, redactor, counts);
  }
  return out;
}

/**
 * The result with every secret value redacted from its text content, structuredContent (every
 * string and key, deeply) and message, and `redactions` counting the places by variable. A leak
 * shown twice over (structuredContent and its JSON text; the message and the content that
 * repeats it) counts once.
 */
export function redactResult(
  result: ToolCallResult,
  secrets: readonly SecretValue[],
): ToolCallResult {
  if (secrets.length === 0) return result;
  const redactor = createRedactor(secrets);
  const counts = new Map<string, number>();
  const redacted: ToolCallResult = { ...result };
  const { structuredContent } = result;
  const derivedText =
    structuredContent !== undefined &&
    result.content.length === 1 &&
    result.content[0]!.text === JSON.stringify(structuredContent);
  if (structuredContent !== undefined) {
    redacted.structuredContent = redactDeep(structuredContent, redactor, counts) as Record<
      string,
      unknown
    >;
  }
  redacted.content = result.content.map((c) => ({
    ...c,
    // Content may hold a cut log tail or a truncated output: pieces at the cuts count too.
    text: derivedText
      ? JSON.stringify(redacted.structuredContent)
      : redactor.redact(c.text, counts, true),
  }));
  if (result.message !== undefined) {
    const repeated = result.content.some((c) => c.text.startsWith(result.message!));
    redacted.message = redactor.redact(result.message, repeated ? new Map() : counts, true);
  }
  if (result.egress !== undefined) {
    // A tool can put a value into the host it asks for (`<token>.example.com`): attempts are
    // recorded, so their names are scanned too, ignoring case (DNS names are lower-cased).
    const folded = createRedactor(secrets.map((s) => ({ ...s, value: s.value.toLowerCase() })));
    const scrub = (text: string): string => {
      const exact = redactor.redact(text, counts);
      if (exact !== text) return exact;
      const lower = text.toLowerCase();
      const caseless = folded.redact(lower, counts);
      return caseless === lower ? text : caseless;
    };
    redacted.egress = result.egress.map((attempt) => ({
      ...attempt,
      host: scrub(attempt.host),
      ...(attempt.sni === undefined ? {} : { sni: scrub(attempt.sni) }),
      ...(attempt.detail === undefined ? {} : { detail: scrub(attempt.detail) }),
    }));
  }
  if (counts.size > 0) {
    redacted.redactions = { ...result.redactions };
    for (const [name, n] of counts)
      redacted.redactions[name] = (redacted.redactions[name] ?? 0) + n;
  }
  return redacted;
}
