/**
 * Does the live object already hold every field we would apply? Server-side apply of an
 * unchanged object is a no-op on the server but still a write request; comparing first is what
 * makes a steady state write nothing. Fields the server defaults or others own are ignored;
 * lists must match in length (we own them whole); quantities compare by value ("0.5" = "500m").
 */
export function isSubset(desired: unknown, live: unknown): boolean {
  if (desired === live) return true;
  if (desired === null || desired === undefined) return live === null || live === undefined;
  // The API server omits empty lists and maps (omitempty): `egress: []` reads back as absent.
  if (isEmpty(desired) && (live === undefined || live === null)) return true;
  if (Array.isArray(desired)) {
    if (!Array.isArray(live) || live.length !== desired.length) return false;
    return desired.every((d, i) => isSubset(d, live[i]));
  }
  if (typeof desired === 'object') {
    if (typeof live !== 'object' || live === null || Array.isArray(live)) return false;
    const liveRecord = live as Record<string, unknown>;
    return Object.entries(desired as Record<string, unknown>).every(([k, v]) =>
      v === undefined ? true : isSubset(v, liveRecord[k]),
    );
  }
  if (
    (typeof desired === 'string' || typeof desired === 'number') &&
    (typeof live === 'string' || typeof live === 'number')
  ) {
    const a = parseQuantity(String(desired));
    const b = parseQuantity(String(live));
    return a !== undefined && b !== undefined && a === b;
  }
  return false;
}

function isEmpty(value: unknown): boolean {
  if (Array.isArray(value)) return value.length === 0;
  return typeof value === 'object' && value !== null && Object.keys(value).length === 0;
}

const SUFFIXES: Record<string, number> = {
  '': 1,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
};

/** A Kubernetes resource.Quantity as a number, or undefined when `text` is not one. */
export function parseQuantity(text: string): number | undefined {
  const match = /^([+-]?\d+(?:\.\d+)?)(m|k|M|G|T|P|Ki|Mi|Gi|Ti|Pi)?$/.exec(text);
  if (!match) return undefined;
  const factor = SUFFIXES[match[2] ?? ''] ?? 1;
  // Round to avoid 0.1 * 1e3 style float noise.
  return Math.round(Number(match[1]) * factor * 1e6) / 1e6;
}
