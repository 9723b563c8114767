import { z } from 'zod';
import { REFUSAL_REASONS } from '../../executor/types.ts';
import { canonicalJson, sha256Hex } from './canonical.ts';
import { KEY_ID_PATTERN, SIGNATURE_PATTERN } from './signing.ts';

/**
 * One decision record per request that reaches the gateway. Field names follow the spirit of
 * OPA decision logs (decision_id → decisionId, input → server/principal/method/tool/arguments*,
 * result → effect/rule/reason, timestamp); docs/policy.md has the mapping.
 *
 * Tamper evidence: `seq` counts the records of one writer (one gateway process) from 0, `prevHash`
 * is the `hash` of that writer's previous record (64 zeros for seq 0), and `hash` is the SHA-256 of
 * the canonical JSON of the record without `hash` and without `arguments` (raw arguments are bound
 * to the chain through `argumentsSha256` instead, so a log pipeline that redacts them does not
 * break verification).
 *
 * Writer identity (optional, src/gateway/decisions/signing.ts): a writer given an Ed25519 key adds
 * `keyId` (covered by `hash`) and `signature`, the unpadded base64url Ed25519 signature of
 * `SIGNING_CONTEXT + canonicalJson({hash, keyId, seq, writerId})` (not covered by `hash`: it is
 * computed from it). Both or neither; a writer without a key writes neither.
 *
 * The line a writer emits is the canonical JSON of the members `hash` covers (sorted), then
 * `arguments` when present, then `hash`, then `signature` when signed, inside
 * `{"level":"info", ..., "msg":"decision"}` (recorder.ts, decisionLine).
 */
const Sha256HexSchema = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits');

export const GENESIS_HASH = '0'.repeat(64);

export const DECISION_OUTCOMES = [
  'ok',
  'error',
  'timeout',
  'memory-limit',
  'pids-limit',
  'output-truncated',
  'sandbox-violation',
  'denied',
  'unauthenticated',
  'invalid-request',
  'invalid-arguments',
  'executor-unavailable',
  'overloaded',
  'internal-error',
  /** The client cancelled the request (notifications/cancelled) while it ran. */
  'cancelled',
  /** The session was closed (DELETE, evicted, expired) while the request ran. */
  'session-closed',
  /** Refused: a request with the same JSON-RPC id was still in flight in the session. */
  'duplicate-id',
] as const;
export const DecisionOutcomeSchema = z.enum(DECISION_OUTCOMES);
export type DecisionOutcome = z.infer<typeof DecisionOutcomeSchema>;

export const AUTH_METHODS = ['api-key', 'oidc', 'service-account', 'anonymous'] as const;

export const DecidingRuleSchema = z.object({
  kind: z.enum(['AgentPolicy', 'ClusterAgentPolicy']),
  namespace: z.string().optional(),
  name: z.string(),
  index: z.number().int().min(0),
});

export const AuditFindingSchema = z.object({
  policy: z.string(),
  effect: z.enum(['Allow', 'Deny']),
  rule: DecidingRuleSchema,
  reason: z.string(),
  changesDecision: z.boolean(),
});

/**
 * One connection attempt a tool call made through the executor's egress proxy: the host and port
 * it asked for, the address the proxy connected to, whether it was allowed and why (a closed set,
 * src/executor/egress/allowlist.ts EgressReason, plus `policy-denied`), the guardrail that refused
 * it, bytes each way and how long it lasted. Never payload.
 */
export const EgressAttemptSchema = z.object({
  address: z.string().optional(),
  allowed: z.boolean(),
  bytesDown: z.number().int().min(0),
  bytesUp: z.number().int().min(0),
  durationMs: z.number().min(0),
  host: z.string(),
  /** For `policy-denied`: `ClusterAgentPolicy <name>`. */
  policy: z.string().optional(),
  port: z.number().int().min(0).max(65_535),
  reason: z.string(),
});
export type EgressAttempt = z.infer<typeof EgressAttemptSchema>;

export const RecordedPrincipalSchema = z.object({
  kind: z.enum(['Agent', 'ServiceAccount', 'Anonymous']),
  name: z.string(),
  groups: z.array(z.string()),
  authMethod: z.enum(AUTH_METHODS),
});

export const AuthenticationSchema = z.object({
  outcome: z.enum(['authenticated', 'failed', 'anonymous']),
  method: z.enum(AUTH_METHODS).optional(),
  /** Why authentication failed; never the credential itself. */
  reason: z.string().optional(),
});

export const DecisionRecordSchema = z
  .object({
    decisionId: z.uuid(),
    /** The process that wrote the record; chains are per writer. */
    writerId: z.string().min(1),
    seq: z.number().int().min(0),
    prevHash: Sha256HexSchema,
    timestamp: z.iso.datetime({ offset: true }),
    /** `namespace/name` of the McpServer. */
    server: z.string(),
    sessionId: z.string().optional(),
    principal: RecordedPrincipalSchema.nullable(),
    authentication: AuthenticationSchema,
    method: z.string(),
    tool: z.string().optional(),
    argumentsSha256: Sha256HexSchema.optional(),
    /** Raw arguments, only when the McpServer opts in; not covered by `hash` (see above). */
    arguments: z.record(z.string(), z.unknown()).optional(),
    policies: z.array(z.string()),
    effect: z.enum(['Allow', 'Deny']),
    rule: DecidingRuleSchema.optional(),
    reason: z.string(),
    audit: z.array(AuditFindingSchema).optional(),
    outcome: DecisionOutcomeSchema,
    /**
     * For outcome `overloaded`: which limit refused the call before it started (`principal-share`,
     * `server-share`, `queue-full`, `wait-timeout`, `executor-busy`). Absent on other records and
     * on records written before it existed, which therefore still verify.
     */
    refusal: z.enum(REFUSAL_REASONS).optional(),
    durationMs: z.number().min(0),
    outputBytes: z.number().int().min(0).optional(),
    /** Executor instance (pod name) that ran the call. */
    executor: z.string().optional(),
    /**
     * tools/call of a tool with egress: every connection attempt, in order (EgressAttemptSchema).
     * Absent when the call made none and on records written before it existed, which still verify.
     */
    egress: z.array(EgressAttemptSchema).optional(),
    /** Attempts beyond the first 256, not listed in `egress` (counted in the metrics). */
    egressOmitted: z.number().int().min(1).optional(),
    /**
     * tools/call of a tool with secretEnv: how many times each variable's value was found and
     * redacted in the result, by variable name (never the value). Absent when nothing was.
     */
    redactions: z.record(z.string(), z.number().int().min(1)).optional(),
    hash: Sha256HexSchema,
    /** The signing key: first 16 hex of SHA-256 of the raw Ed25519 public key. Covered by `hash`. */
    keyId: z.string().regex(KEY_ID_PATTERN, 'must be 16 lowercase hex digits').optional(),
    /** Ed25519 signature of the signing input (see above), unpadded base64url; not covered by `hash`. */
    signature: z
      .string()
      .regex(
        SIGNATURE_PATTERN,
        'must be an Ed25519 signature in unpadded base64url (86 characters)',
      )
      .optional(),
  })
  .refine((record) => (record.keyId === undefined) === (record.signature === undefined), {
    message: 'keyId and signature go together: both or neither',
    path: ['signature'],
  });
export type DecisionRecord = z.infer<typeof DecisionRecordSchema>;

/** Members of a record that `hash` does not cover. */
export const UNHASHED_MEMBERS: ReadonlySet<string> = new Set(['hash', 'arguments', 'signature']);

/**
 * The hash a record must carry: SHA-256 of its canonical JSON without `hash`, `arguments` and
 * `signature`.
 */
export function computeRecordHash(
  record: Omit<DecisionRecord, 'hash'> & { hash?: string },
): string {
  const { hash: _hash, arguments: _arguments, signature: _signature, ...covered } = record;
  return sha256Hex(canonicalJson(covered));
}
