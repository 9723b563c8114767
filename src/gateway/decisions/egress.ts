/**
 * What the executor reports about a call's egress and redactions, made fit for the decision
 * record: the executor runs tool code and its answer is not trusted to be well formed, so every
 * attempt is reduced to the record's fields (EgressAttemptSchema) with values the schema accepts
 * (a record the schema rejects would not verify), free text is bounded, and a call that made
 * very many attempts lists the first MAX_RECORDED_ATTEMPTS and counts the rest in
 * `egressOmitted`, so one tool looping over refused CONNECTs cannot write a megabyte record.
 * Pure: the gateway calls it once per call and uses the result for the record, metrics and Events.
 */
import type { EgressAttempt } from './record.ts';

export const MAX_RECORDED_ATTEMPTS = 256;
/** Longer than any DNS name (253) or bracketed IPv6 literal; a CONNECT target the proxy refused may be anything. */
const MAX_HOST = 300;
const MAX_TEXT = 512;
const MAX_REDACTED_NAMES = 64;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

export interface RecordedEgress {
  attempts: EgressAttempt[];
  /** Attempts beyond MAX_RECORDED_ATTEMPTS (counted in metrics, not listed); 0 when none. */
  omitted: number;
  /** Every attempt, listed or not, for metrics and Events. */
  all: EgressAttempt[];
}

export function recordedEgress(raw: unknown): RecordedEgress {
  if (!Array.isArray(raw)) return { attempts: [], omitted: 0, all: [] };
  const all = raw.map(sanitiseAttempt);
  return {
    attempts: all.slice(0, MAX_RECORDED_ATTEMPTS),
    omitted: Math.max(0, all.length - MAX_RECORDED_ATTEMPTS),
    all,
  };
}

function sanitiseAttempt(raw: unknown): EgressAttempt {
  const a = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
  const port = a['port'];
  const attempt: EgressAttempt = {
    host: bounded(a['host'], MAX_HOST) ?? '',
    port:
      Number.isInteger(port) && (port as number) >= 0 && (port as number) <= 65_535
        ? (port as number)
        : 0,
    allowed: a['allowed'] === true,
    reason: bounded(a['reason'], MAX_TEXT) ?? 'unknown',
    bytesUp: count(a['bytesUp']),
    bytesDown: count(a['bytesDown']),
    durationMs: milliseconds(a['durationMs']),
  };
  const address = bounded(a['address'], MAX_HOST);
  if (address !== undefined) attempt.address = address;
  const policy = bounded(a['policy'], MAX_TEXT);
  if (policy !== undefined) attempt.policy = policy;
  return attempt;
}

/** Positive integer counts by secretEnv variable name; undefined when there are none. */
export function redactionCounts(raw: unknown): Record<string, number> | undefined {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return undefined;
  const out: Record<string, number> = {};
  let names = 0;
  for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
    if (!ENV_NAME.test(name) || !Number.isSafeInteger(value) || (value as number) < 1) continue;
    if (++names > MAX_REDACTED_NAMES) break;
    out[name] = value as number;
  }
  return names === 0 ? undefined : out;
}

function bounded(value: unknown, max: number): string | undefined {
  if (typeof value !== 'string') return undefined;
  return value.length > max ? `${value.slice(0, max)}...` : value;
}

function count(value: unknown): number {
  return Number.isSafeInteger(value) && (value as number) >= 0 ? (value as number) : 0;
}

function milliseconds(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0
    ? Math.round(value * 1000) / 1000
    : 0;
}
