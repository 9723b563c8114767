/**
 * The state of one HTTP request as it passes through the gateway, and the one place that turns
 * it into a decision record. Every path through the HTTP handler ends in `finish()`, which
 * records exactly once (a second call is a no-op), so a crash mid-call still leaves a record
 * and no path leaves two.
 */
import { randomUUID } from 'node:crypto';
import type { RefusalReason } from '../executor/types.ts';
import type { Principal } from './auth/principal.ts';
import type { AuthFailure, AuthMethod } from './auth/types.ts';
import { argumentsDigest } from './decisions/canonical.ts';
import type { RecordedEgress } from './decisions/egress.ts';
import type { DecisionOutcome } from './decisions/record.ts';
import type { DecisionEntry } from './decisions/recorder.ts';
import type { Decision } from './policy/types.ts';
import type { ReasonCode } from './telemetry/metrics.ts';
import type { GatewaySnapshot } from './source/types.ts';

export interface RequestContext {
  readonly decisionId: string;
  readonly startedMs: number;
  readonly snapshot: GatewaySnapshot;
  /** `namespace/name` of the McpServer. */
  readonly serverKey: string;
  principal?: Principal;
  authMethod?: AuthMethod;
  authFailure?: AuthFailure;
  sessionId?: string;
  /** JSON-RPC method, or the HTTP method for GET / DELETE / unparseable bodies. */
  method: string;
  tool?: string;
  arguments?: Record<string, unknown>;
  decision?: Decision;
  reasonCode?: ReasonCode;
  outcome?: DecisionOutcome;
  outputBytes?: number;
  executor?: string;
  /** Which limit refused a tool call the executor never started (outcome `overloaded`). */
  refusal?: RefusalReason;
  /** The call's egress attempts (ToolCallResult.egress), made fit for the record (decisions/egress.ts). */
  egress?: RecordedEgress;
  /** Redactions by secretEnv variable name (ToolCallResult.redactions), positive counts only. */
  redactions?: Record<string, number>;
  /** Settles when a tool call started by this request is over (for post-conditions). */
  pending?: Promise<unknown>;
  /**
   * Set when the gateway ended the request itself before the SDK answered it (cancelled, the
   * session closed): the record's outcome, whatever the aborted handler wrote afterwards.
   */
  endedEarly?: 'cancelled' | 'session-closed';
  finished: boolean;
}

/** `serverKey` is the app's (serverKeyOf its source's snapshots), computed once, not per request. */
export function newRequestContext(
  snapshot: GatewaySnapshot,
  serverKey: string,
  startedMs: number,
  method: string,
): RequestContext {
  return {
    decisionId: randomUUID(),
    startedMs,
    snapshot,
    serverKey,
    method,
    finished: false,
  };
}

/** A gateway-level decision (no policy rule involved). */
export function gatewayDecision(effect: 'Allow' | 'Deny', reason: string): Decision {
  return { effect, reason, policies: [], audit: [] };
}

/** Builds the recorder entry; pure, so tests can check it without a recorder. */
export function toDecisionEntry(
  ctx: RequestContext,
  durationMs: number,
  recordArguments: boolean,
): DecisionEntry {
  const decision = ctx.decision ?? gatewayDecision('Deny', 'request did not reach a decision');
  const principal = ctx.principal;
  const entry: DecisionEntry = {
    decisionId: ctx.decisionId,
    server: ctx.serverKey,
    principal:
      principal === undefined
        ? null
        : {
            kind: principal.kind,
            name: principal.name,
            groups: [...principal.groups],
            authMethod: principal.authMethod,
          },
    authentication:
      ctx.authFailure !== undefined
        ? {
            outcome: 'failed',
            reason: ctx.authFailure.reason,
            ...(ctx.authFailure.method === undefined ? {} : { method: ctx.authFailure.method }),
          }
        : principal === undefined
          ? { outcome: 'failed', reason: 'not-attempted' }
          : principal.kind === 'Anonymous'
            ? { outcome: 'anonymous', method: 'anonymous' }
            : { outcome: 'authenticated', method: principal.authMethod },
    method: ctx.method,
    policies: decision.policies,
    effect: decision.effect,
    reason: decision.reason,
    outcome: ctx.endedEarly ?? ctx.outcome ?? (decision.effect === 'Allow' ? 'ok' : 'denied'),
    durationMs: Math.max(0, Math.round(durationMs * 1000) / 1000),
  };
  if (ctx.sessionId !== undefined) entry.sessionId = ctx.sessionId;
  if (ctx.tool !== undefined) entry.tool = ctx.tool;
  if (ctx.method === 'tools/call') {
    entry.argumentsSha256 = argumentsDigest(ctx.arguments);
    if (recordArguments && ctx.arguments !== undefined) entry.arguments = ctx.arguments;
  }
  if (decision.rule !== undefined) entry.rule = decision.rule;
  if (decision.audit.length > 0) entry.audit = decision.audit;
  if (ctx.outputBytes !== undefined) entry.outputBytes = ctx.outputBytes;
  if (ctx.executor !== undefined) entry.executor = ctx.executor;
  if (ctx.refusal !== undefined && entry.outcome === 'overloaded') entry.refusal = ctx.refusal;
  if (ctx.egress !== undefined && ctx.egress.attempts.length > 0) {
    entry.egress = ctx.egress.attempts;
    if (ctx.egress.omitted > 0) entry.egressOmitted = ctx.egress.omitted;
  }
  if (ctx.redactions !== undefined) entry.redactions = ctx.redactions;
  return entry;
}
