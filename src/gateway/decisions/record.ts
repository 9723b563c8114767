import { z } from 'zod';
import { REFUSAL_REASONS } from '../../executor/types.ts';
import { canonicalJson, sha256Hex } from './canonical.ts';

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

export const DecisionRecordSchema = z.object({
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
  hash: Sha256HexSchema,
});
export type DecisionRecord = z.infer<typeof DecisionRecordSchema>;

/** The hash a record must carry: SHA-256 of its canonical JSON without `hash` and `arguments`. */
export function computeRecordHash(
  record: Omit<DecisionRecord, 'hash'> & { hash?: string },
): string {
  const { hash: _hash, arguments: _arguments, ...covered } = record;
  return sha256Hex(canonicalJson(covered));
}
