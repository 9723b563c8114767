/**
 * Every Prometheus metric the gateway exports, declared in one place on a registry the caller
 * passes in (never the global default registry). Labels are bounded: `server` comes from
 * configuration, `tool` only from the tools the server declares (anything else is `_unknown`),
 * `reason_code` / `outcome` / `method` / `reason` from closed enums below. No metric has a
 * principal label: callers are unbounded; and none has a host label: a tool's code chooses the
 * hosts it tries (the decision record names them).
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { AUTH_FAILURE_REASONS, AUTH_METHODS } from '../auth/types.ts';
import { EgressReason } from '../../executor/egress/allowlist.ts';
import { REFUSAL_REASONS, SANDBOX_OUTCOMES } from '../../executor/types.ts';
import type { DecisionSink } from '../decisions/recorder.ts';

export const METRIC_PREFIX = 'mcpworks_';
export const UNKNOWN_LABEL = '_unknown';
export const NO_TOOL_LABEL = '';

/** Why the gateway decided what it decided; a closed set (metric label and log field). */
export const ReasonCode = {
  /** A policy rule allowed the call. */
  PolicyAllow: 'policy_allow',
  /** A policy rule denied the call. */
  PolicyDeny: 'policy_deny',
  /** No rule matched: default deny. */
  DefaultDeny: 'default_deny',
  /** An authenticated protocol request that needs no policy (initialize, ping, tools/list, ...). */
  Authenticated: 'authenticated',
  Unauthenticated: 'unauthenticated',
  InsufficientScope: 'insufficient_scope',
  OriginRejected: 'origin_rejected',
  HostRejected: 'host_rejected',
  CredentialInQuery: 'credential_in_query',
  BodyTooLarge: 'body_too_large',
  ParseError: 'parse_error',
  InvalidRequest: 'invalid_request',
  UnknownTool: 'unknown_tool',
  /** Allowed, but the arguments do not match the tool's inputSchema; not run. */
  InvalidArguments: 'invalid_arguments',
  /** Allowed, but the tool's inputSchema does not compile; refused (fail closed). */
  ToolMisconfigured: 'tool_misconfigured',
  /** Allowed, but the tool declares egress and a guardrail selecting the server cannot be read; refused (fail closed). */
  EgressGuardrailInvalid: 'egress_guardrail_invalid',
  SessionNotFound: 'session_not_found',
  SessionLimit: 'session_limit',
  NotFound: 'not_found',
  MethodNotAllowed: 'method_not_allowed',
  /** A JSON-RPC method the gateway does not serve (the SDK answered Method not found). */
  MethodNotFound: 'method_not_found',
  InternalError: 'internal_error',
} as const;
export type ReasonCode = (typeof ReasonCode)[keyof typeof ReasonCode];
export const REASON_CODES = Object.values(ReasonCode) as readonly ReasonCode[];

export type Effect = 'allow' | 'deny';

/**
 * Why an egress attempt ended as it did (metric label): the proxy's closed set, plus
 * `policy-denied` (a ClusterAgentPolicy egressDeny refused the host). Anything else is `_unknown`.
 */
export const EGRESS_REASONS: readonly string[] = [...Object.values(EgressReason), 'policy-denied'];

/** MCP methods that get their own label value; everything else is `_other`. */
const KNOWN_METHODS = new Set([
  'initialize',
  'ping',
  'tools/list',
  'tools/call',
  'notifications/initialized',
  'notifications/cancelled',
  'GET',
  'DELETE',
]);

export function methodLabel(method: string | undefined): string {
  if (method === undefined) return UNKNOWN_LABEL;
  return KNOWN_METHODS.has(method) ? method : '_other';
}

export interface GatewayMetrics {
  readonly registry: Registry;
  decision(labels: { server: string; tool: string; effect: Effect; reasonCode: ReasonCode }): void;
  requestDuration(labels: { server: string; method: string | undefined }, seconds: number): void;
  authFailure(labels: { method: string | undefined; reason: string }): void;
  sandboxOutcome(labels: { server: string; tool: string; outcome: string }): void;
  sessionsOpen(server: string, count: number): void;
  /** A tool call refused before it started, by the limit that refused it (RefusalReason). */
  queueRefusal(labels: { server: string; reason: string }): void;
  /**
   * Reports the fair queue's running and waiting calls per server at each scrape (the queue is
   * shared by every app of a process, so it is registered once, by whoever builds the queue).
   */
  observeQueue(read: () => readonly { server: string; running: number; waiting: number }[]): void;
  /** One egress attempt of a tool call (allowed or refused), by its bounded reason. */
  egressAttempt(labels: { server: string; tool: string; allowed: boolean; reason: string }): void;
  /** Secret values redacted from one call's result (the sum over its variables). */
  secretRedactions(labels: { server: string; tool: string }, count: number): void;
  /** A decision record was written: its writer's last seq (for `audit verify --expect-last`). */
  decisionWritten(labels: { writerId: string; keyId: string | undefined }, seq: number): void;
  /**
   * Maps a tool name from a request to a label value: itself when `declared` has it, else
   * `_unknown` (a caller must not be able to mint label values).
   */
  toolLabel(tool: string | undefined, declared: ReadonlySet<string>): string;
}

function bounded(value: string | undefined, allowed: ReadonlySet<string>): string {
  return value !== undefined && allowed.has(value) ? value : UNKNOWN_LABEL;
}

export function createGatewayMetrics(registry: Registry): GatewayMetrics {
  const decisions = new Counter({
    name: `${METRIC_PREFIX}decisions_total`,
    help: 'Gateway decisions, one per request that reached the MCP endpoint.',
    labelNames: ['server', 'tool', 'effect', 'reason_code'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: `${METRIC_PREFIX}request_duration_seconds`,
    help: 'Time from request arrival to the response, by MCP method.',
    labelNames: ['server', 'method'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const authFailures = new Counter({
    name: `${METRIC_PREFIX}auth_failures_total`,
    help: 'Requests refused by authentication, by credential method and bounded reason.',
    labelNames: ['method', 'reason'] as const,
    registers: [registry],
  });
  const outcomes = new Counter({
    name: `${METRIC_PREFIX}sandbox_outcomes_total`,
    help: 'How sandboxed tool calls ended.',
    labelNames: ['server', 'tool', 'outcome'] as const,
    registers: [registry],
  });
  const sessions = new Gauge({
    name: `${METRIC_PREFIX}sessions_open`,
    help: 'MCP sessions currently open.',
    labelNames: ['server'] as const,
    registers: [registry],
  });
  const refusals = new Counter({
    name: `${METRIC_PREFIX}queue_refusals_total`,
    help: 'Tool calls answered overloaded without being started, by the limit that refused them.',
    labelNames: ['server', 'reason'] as const,
    registers: [registry],
  });
  let readQueue: () => readonly { server: string; running: number; waiting: number }[] = () => [];
  const queueWaiting = new Gauge({
    name: `${METRIC_PREFIX}queue_waiting`,
    help: 'Tool calls waiting in the gateway for an executor slot.',
    labelNames: ['server'] as const,
    registers: [registry],
    collect() {
      for (const s of readQueue()) this.set({ server: s.server }, s.waiting);
    },
  });
  const queueRunning = new Gauge({
    name: `${METRIC_PREFIX}queue_running`,
    help: 'Tool calls the gateway has started in the executor and not yet seen end.',
    labelNames: ['server'] as const,
    registers: [registry],
    collect() {
      for (const s of readQueue()) this.set({ server: s.server }, s.running);
    },
  });
  const egressAttempts = new Counter({
    name: `${METRIC_PREFIX}egress_attempts_total`,
    help: "Tool calls' connection attempts through the egress proxy, allowed or refused, by reason, and (not-proxied) those the tool's runtime saw it make without the proxy (no host label: hosts are unbounded; the decision record names them).",
    labelNames: ['server', 'tool', 'allowed', 'reason'] as const,
    registers: [registry],
  });
  const redactions = new Counter({
    name: `${METRIC_PREFIX}secret_redactions_total`,
    help: 'Secret values found in tool results and redacted before they reached the agent.',
    labelNames: ['server', 'tool'] as const,
    registers: [registry],
  });
  const egressReasons = new Set<string>(EGRESS_REASONS);
  const refusalReasons = new Set<string>(REFUSAL_REASONS);
  // One series per gateway process (its writerId is fixed for the process's life).
  const lastSeq = new Gauge({
    name: `${METRIC_PREFIX}decision_log_last_seq`,
    help: 'seq of the last decision record this writer (gateway process) wrote; `mcpworks audit verify --expect-last <writer_id>=<value>` finds a truncated tail. key_id: the signing key, empty when unsigned.',
    labelNames: ['writer_id', 'key_id'] as const,
    registers: [registry],
  });
  const authMethods = new Set<string>(AUTH_METHODS);
  const authReasons = new Set<string>(AUTH_FAILURE_REASONS);
  const outcomeValues = new Set<string>(SANDBOX_OUTCOMES);
  const reasonCodes = new Set<string>(REASON_CODES);

  return {
    registry,
    decision({ server, tool, effect, reasonCode }) {
      decisions.inc({
        server,
        tool,
        effect,
        reason_code: bounded(reasonCode, reasonCodes),
      });
    },
    requestDuration({ server, method }, seconds) {
      duration.observe({ server, method: methodLabel(method) }, seconds);
    },
    authFailure({ method, reason }) {
      authFailures.inc({
        method: method === undefined ? 'none' : bounded(method, authMethods),
        reason: bounded(reason, authReasons),
      });
    },
    sandboxOutcome({ server, tool, outcome }) {
      outcomes.inc({ server, tool, outcome: bounded(outcome, outcomeValues) });
    },
    sessionsOpen(server, count) {
      sessions.set({ server }, count);
    },
    queueRefusal({ server, reason }) {
      refusals.inc({ server, reason: bounded(reason, refusalReasons) });
    },
    observeQueue(read) {
      readQueue = read;
      queueWaiting.reset();
      queueRunning.reset();
    },
    egressAttempt({ server, tool, allowed, reason }) {
      egressAttempts.inc({
        server,
        tool,
        allowed: allowed ? 'true' : 'false',
        reason: bounded(reason, egressReasons),
      });
    },
    secretRedactions({ server, tool }, count) {
      if (Number.isFinite(count) && count > 0) redactions.inc({ server, tool }, count);
    },
    decisionWritten({ writerId, keyId }, seq) {
      lastSeq.set({ writer_id: writerId, key_id: keyId ?? '' }, seq);
    },
    toolLabel(tool, declared) {
      if (tool === undefined) return NO_TOOL_LABEL;
      return declared.has(tool) ? tool : UNKNOWN_LABEL;
    },
  };
}

/** The decision sink that keeps decision_log_last_seq current. */
export function lastSeqDecisionSink(metrics: GatewayMetrics): DecisionSink {
  return {
    write(record) {
      metrics.decisionWritten({ writerId: record.writerId, keyId: record.keyId }, record.seq);
    },
  };
}
