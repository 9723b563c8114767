import { hash } from 'node:crypto';

/**
 * Canonical JSON: object keys sorted by UTF-16 code unit, no whitespace, `undefined` members
 * dropped (as JSON.stringify does). Two equal values always give the same bytes, which is what
 * the argument digest and the record hash chain need. docs/policy.md states the form; it must
 * not change, or `mcpworks audit verify` would reject logs written before the change.
 *
 * Written for the per-request path: one string built by concatenation, no intermediate arrays,
 * and the key sort skipped for objects whose keys are already in order (the recorder builds its
 * records that way), which gives the same bytes as sorting them.
 */
export function canonicalJson(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return quote(value);
    case 'number':
      return Number.isFinite(value) ? String(value) : 'null';
    case 'boolean':
      return value ? 'true' : 'false';
    case 'bigint':
      return value.toString();
    case 'object':
      if (value === null) return 'null';
      if (Array.isArray(value)) return canonicalArray(value);
      if (typeof (value as { toJSON?: unknown }).toJSON === 'function') {
        return canonicalJson((value as { toJSON(): unknown }).toJSON());
      }
      return canonicalObject(value as Record<string, unknown>);
    default:
      // undefined, functions and symbols, as JSON.stringify treats them inside an array.
      return 'null';
  }
}

/** Serializes one kind of object to canonical JSON. */
export type ShapeSerializer = (value: Readonly<Record<string, unknown>>) => string;

/**
 * A serializer giving canonicalJson's bytes for plain objects whose own keys are all among
 * `keys` (a fixed shape, such as a decision record's fields), without listing, checking and
 * quoting the object's keys on every call. `nested` gives the serializer of members that are
 * themselves plain objects of a fixed shape. A key outside the shape would be left out: give
 * it only objects built to that shape.
 */
export function canonicalJsonOfShape(
  keys: readonly string[],
  nested: Readonly<Record<string, ShapeSerializer>> = {},
): ShapeSerializer {
  const sorted = [...keys].sort();
  const prefixes = sorted.map((key) => `${quote(key)}:`);
  const members = sorted.map((key) => (Object.hasOwn(nested, key) ? nested[key] : undefined));
  return (value) => {
    let text = '{';
    for (let i = 0; i < sorted.length; i++) {
      const member = value[sorted[i] as string];
      if (member === undefined || typeof member === 'function' || typeof member === 'symbol')
        continue;
      if (text.length > 1) text += ',';
      text += prefixes[i] as string;
      const serialize = members[i];
      text +=
        serialize !== undefined &&
        typeof member === 'object' &&
        member !== null &&
        !Array.isArray(member)
          ? serialize(member as Record<string, unknown>)
          : canonicalJson(member);
    }
    return `${text}}`;
  };
}

function canonicalArray(items: readonly unknown[]): string {
  let text = '[';
  for (let i = 0; i < items.length; i++) {
    if (i > 0) text += ',';
    text += canonicalJson(items[i]);
  }
  return `${text}]`;
}

function canonicalObject(record: Record<string, unknown>): string {
  const keys = Object.keys(record);
  if (!inOrder(keys)) keys.sort();
  let text = '{';
  let first = true;
  for (const key of keys) {
    const member = record[key];
    if (member === undefined || typeof member === 'function' || typeof member === 'symbol')
      continue;
    text += first ? quote(key) : `,${quote(key)}`;
    text += `:${canonicalJson(member)}`;
    first = false;
  }
  return `${text}}`;
}

/**
 * Characters JSON.stringify escapes: controls, `"`, `\\`, and surrogates (a lone one is escaped;
 * a pair is not, but taking JSON.stringify's path for it is still right).
 */
// eslint-disable-next-line no-control-regex -- exactly the characters JSON escapes
const NEEDS_ESCAPE = /[\u0000-\u001f"\\\ud800-\udfff]/;

/** JSON.stringify(text), without its call cost for the common text that needs no escaping. */
function quote(text: string): string {
  return NEEDS_ESCAPE.test(text) ? JSON.stringify(text) : `"${text}"`;
}

/** Whether the keys are already in Array.prototype.sort's default (UTF-16 code unit) order. */
function inOrder(keys: readonly string[]): boolean {
  for (let i = 1; i < keys.length; i++)
    if ((keys[i - 1] as string) > (keys[i] as string)) return false;
  return true;
}

/** SHA-256 of the UTF-8 bytes of `text`, as 64 lowercase hex digits (one-shot: no Hash object). */
export function sha256Hex(text: string): string {
  return hash('sha256', text, 'hex');
}

/** SHA-256 of the canonical JSON of a tool call's arguments, as recorded in `argumentsSha256`. */
export function argumentsDigest(args: Record<string, unknown> | undefined): string {
  return sha256Hex(canonicalJson(args ?? {}));
}
