import { createHash } from 'node:crypto';

/** Stable JSON (sorted keys) so that the hash depends on content, not key order. */
export function stableStringify(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableStringify(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** First 16 hex digits of SHA-256 over the stable JSON of `parts`. */
export function specHash(...parts: unknown[]): string {
  return createHash('sha256').update(stableStringify(parts)).digest('hex').slice(0, 16);
}
