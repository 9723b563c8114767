/**
 * Tool-name globs: `*` (any run of characters), `?` (one character), `[a-z]` / `[!a-z]` / `[^a-z]`
 * (one character in / not in the set) and `{a,b}` (alternatives, nestable).
 *
 * Hand-written rather than picomatch (the project otherwise prefers the library) because:
 * - picomatch compiles `*` to a backtracking `[^/]*?`: measured with picomatch 4.0.7, `*a*a*a*x`
 *   (a valid 8-character pattern) against a 256-character caller-chosen name blocks the event loop
 *   for about 2 s, so a policy author and any caller could stall the gateway (minimatch's
 *   CVE-2026-26996 is the same class of flaw). Called names may be 256 characters long (declared
 *   ones 64) and results are cached per name, so each new name pays again. Here braces expand at compile time (bounded)
 *   and each alternative is matched by the two-pointer wildcard algorithm, O(name × pattern).
 * - its path semantics do not all switch off: `*` never matches `.` or `..` even with `dot`,
 *   `{a..c}` becomes a range, `[!a]` is a literal set without `posix`, a leading `!` negates the
 *   whole pattern (an Allow of `!admin` would allow everything else), a reversed range silently
 *   never matches (a Deny that misses is an open door), and a name in a tools/call is the caller's
 *   string, checked only for length before the policy decides, so it may contain `/`.
 */

type Token =
  | { t: 'lit'; c: string }
  | { t: 'any' }
  | { t: 'star' }
  | { t: 'class'; negate: boolean; chars: string; ranges: [string, string][] };

export type GlobMatcher = (name: string) => boolean;

export const MAX_GLOB_ALTERNATIVES = 64;

export class GlobError extends Error {}

/** True when the pattern has no glob syntax, i.e. it names exactly one tool. */
export function isLiteralGlob(pattern: string): boolean {
  return !/[*?[\]{}]/.test(pattern);
}

/** Compiles a pattern; throws GlobError on unbalanced brackets, reversed ranges or too many alternatives. */
export function compileGlob(pattern: string): GlobMatcher {
  if (pattern === '*') return () => true;
  if (isLiteralGlob(pattern)) return (name) => name === pattern;
  const alternatives = expandBraces(pattern).map(tokenize);
  const only = alternatives.length === 1 ? (alternatives[0] as Token[]) : undefined;
  const fast = only === undefined ? undefined : fastPath(only);
  if (fast !== undefined) return fast;
  if (alternatives.length === 1) {
    const only = alternatives[0] as Token[];
    return (name) => matchTokens(only, name);
  }
  return (name) => alternatives.some((tokens) => matchTokens(tokens, name));
}

/** `abc*`, `*abc`, `*abc*`: plain string tests instead of the general matcher. */
function fastPath(tokens: Token[]): GlobMatcher | undefined {
  const first = tokens[0]?.t === 'star';
  const last = tokens.length > 1 && tokens.at(-1)?.t === 'star';
  const middle = tokens.slice(first ? 1 : 0, last ? -1 : undefined);
  if (middle.length === 0 || !middle.every((t) => t.t === 'lit')) return undefined;
  const text = middle.map((t) => (t as { c: string }).c).join('');
  if (first && last) return (name) => name.includes(text);
  if (first) return (name) => name.endsWith(text);
  if (last) return (name) => name.startsWith(text);
  return undefined;
}

function expandBraces(pattern: string): string[] {
  const open = findTopLevelBrace(pattern);
  if (open === -1) {
    if (pattern.includes('}')) throw new GlobError(`unbalanced "}" in "${pattern}"`);
    return [pattern];
  }
  let depth = 0;
  let close = -1;
  const commas: number[] = [];
  for (let i = open; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '[') i = skipClass(pattern, i);
    else if (c === '{') depth++;
    else if (c === '}') {
      depth--;
      if (depth === 0) {
        close = i;
        break;
      }
    } else if (c === ',' && depth === 1) commas.push(i);
  }
  if (close === -1) throw new GlobError(`unbalanced "{" in "${pattern}"`);
  const head = pattern.slice(0, open);
  if (head.includes('}')) throw new GlobError(`unbalanced "}" in "${pattern}"`);
  const tail = pattern.slice(close + 1);
  const bounds = [open, ...commas, close];
  const out: string[] = [];
  for (let k = 0; k + 1 < bounds.length; k++) {
    const middle = pattern.slice((bounds[k] as number) + 1, bounds[k + 1]);
    for (const expanded of expandBraces(head + middle + tail)) {
      out.push(expanded);
      if (out.length > MAX_GLOB_ALTERNATIVES) {
        throw new GlobError(
          `"${pattern}" expands to more than ${MAX_GLOB_ALTERNATIVES} alternatives`,
        );
      }
    }
  }
  return out;
}

function findTopLevelBrace(pattern: string): number {
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] === '[') i = skipClass(pattern, i);
    else if (pattern[i] === '{') return i;
  }
  return -1;
}

/** Index of the `]` closing the class that opens at `start`. */
function skipClass(pattern: string, start: number): number {
  let i = start + 1;
  if (pattern[i] === '!' || pattern[i] === '^') i++;
  if (pattern[i] === ']') i++; // a leading `]` is a member
  while (i < pattern.length && pattern[i] !== ']') i++;
  if (i >= pattern.length) throw new GlobError(`unbalanced "[" in "${pattern}"`);
  return i;
}

function tokenize(pattern: string): Token[] {
  const tokens: Token[] = [];
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '*') {
      if (tokens.at(-1)?.t !== 'star') tokens.push({ t: 'star' });
    } else if (c === '?') tokens.push({ t: 'any' });
    else if (c === '[') {
      const end = skipClass(pattern, i);
      tokens.push(parseClass(pattern.slice(i + 1, end), pattern));
      i = end;
    } else if (c === ']') throw new GlobError(`unbalanced "]" in "${pattern}"`);
    else tokens.push({ t: 'lit', c });
  }
  return tokens;
}

function parseClass(body: string, pattern: string): Token {
  let negate = false;
  let i = 0;
  if (body[0] === '!' || body[0] === '^') {
    negate = true;
    i = 1;
  }
  if (i >= body.length) throw new GlobError(`empty "[]" in "${pattern}"`);
  let chars = '';
  const ranges: [string, string][] = [];
  for (; i < body.length; i++) {
    const c = body[i] as string;
    const next = body[i + 2];
    if (body[i + 1] === '-' && next !== undefined) {
      if (next < c) throw new GlobError(`reversed range "${c}-${next}" in "${pattern}"`);
      ranges.push([c, next]);
      i += 2;
    } else chars += c;
  }
  return { t: 'class', negate, chars, ranges };
}

function matchOne(token: Token, c: string): boolean {
  switch (token.t) {
    case 'lit':
      return token.c === c;
    case 'any':
      return true;
    case 'class': {
      const inside = token.chars.includes(c) || token.ranges.some(([lo, hi]) => c >= lo && c <= hi);
      return inside !== token.negate;
    }
    case 'star':
      return false;
  }
}

/** Two-pointer wildcard match: on a mismatch, retry from the last `*` one character later. */
function matchTokens(tokens: Token[], name: string): boolean {
  let p = 0;
  let n = 0;
  let starP = -1;
  let starN = 0;
  while (n < name.length) {
    const token = tokens[p];
    if (token !== undefined && token.t === 'star') {
      starP = p++;
      starN = n;
    } else if (token !== undefined && matchOne(token, name[n] as string)) {
      p++;
      n++;
    } else if (starP !== -1) {
      p = starP + 1;
      n = ++starN;
    } else return false;
  }
  while (tokens[p]?.t === 'star') p++;
  return p === tokens.length;
}
