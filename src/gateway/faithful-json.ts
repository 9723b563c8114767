/**
 * JSON that means the same thing to every reader. A request body is parsed once; the policy's
 * conditions, the argument digest and the tool all see that parsed value, and the tool receives
 * it serialized again. Text whose parse does not survive that round trip unchanged is refused at
 * the edge, because a condition such as `args.limit <= 100` would otherwise judge one value while
 * the tool, a log reader or a proxy sees another:
 * - a number too large for a double (`1e400` parses to Infinity and reaches the tool as null),
 *   an integer a double cannot hold exactly (`12345678901234567890`), a non-zero number that
 *   underflows to 0, and `-0` (serialized as 0);
 * - a key repeated in one object (JSON.parse keeps the last, many readers the first);
 * - a string with an unpaired UTF-16 surrogate (`"\ud800"`: Python cannot encode it);
 * - bytes that are not UTF-8 (decoded to U+FFFD, so the tool gets other text) — see
 *   `decodeUtf8Strict`.
 * Runs after JSON.parse has accepted the text, so it only tokenizes valid JSON; no recursion.
 */

/** The first way `text` (valid JSON) would not survive parse → serialize unchanged, if any. */
export function unfaithfulJson(text: string): string | undefined {
  const objects: ({ keys: Set<string>; expectKey: boolean } | undefined)[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x7b /* { */) objects.push({ keys: new Set(), expectKey: true });
    else if (c === 0x5b /* [ */) objects.push(undefined);
    else if (c === 0x7d /* } */ || c === 0x5d /* ] */) objects.pop();
    else if (c === 0x2c /* , */) {
      const top = objects.at(-1);
      if (top !== undefined) top.expectKey = true;
    } else if (c === 0x3a /* : */) {
      const top = objects.at(-1);
      if (top !== undefined) top.expectKey = false;
    } else if (c === 0x22 /* " */) {
      const end = stringEnd(text, i);
      const token = text.slice(i, end + 1);
      const top = objects.at(-1);
      const isKey = top?.expectKey === true;
      if (isKey || token.includes('\\u')) {
        const value = JSON.parse(token) as string;
        if (LONE_SURROGATE.test(value)) return 'a string with an unpaired UTF-16 surrogate';
        if (isKey) {
          if (top.keys.has(value))
            return `the key "${value.slice(0, 64)}" appears twice in one object`;
          top.keys.add(value);
        }
      }
      i = end;
    } else if (c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39)) {
      let end = i + 1;
      while (end < text.length && isNumberChar(text.charCodeAt(end))) end++;
      const problem = numberProblem(text.slice(i, end));
      if (problem !== undefined) return problem;
      i = end - 1;
    }
  }
  return undefined;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function stringEnd(text: string, start: number): number {
  for (let i = start + 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5c /* \ */) i++;
    else if (c === 0x22) return i;
  }
  return text.length - 1;
}

function isNumberChar(c: number): boolean {
  return (
    (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x65 || c === 0x45 || c === 0x2b || c === 0x2d
  );
}

function numberProblem(literal: string): string | undefined {
  const value = Number(literal);
  const shown = literal.length > 40 ? `${literal.slice(0, 40)}…` : literal;
  if (!Number.isFinite(value)) return `the number ${shown} is too large for a double`;
  if (Object.is(value, -0)) return `the number ${shown} is negative zero`;
  const mantissa = literal.split(/[eE]/)[0] ?? literal;
  if (value === 0 && /[1-9]/.test(mantissa)) return `the number ${shown} underflows to 0`;
  const isIntegerLiteral = !/[.eE]/.test(literal);
  if (isIntegerLiteral && !Number.isSafeInteger(value) && BigInt(literal) !== BigInt(value)) {
    return `the integer ${shown} cannot be represented exactly (send it as a string)`;
  }
  return undefined;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The body as text, or undefined when it is not valid UTF-8. */
export function decodeUtf8Strict(bytes: Uint8Array): string | undefined {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return undefined;
  }
}
