/**
 * The executor's contract: what the gateway sends for one tool call, what comes back, and the
 * interface both the in-process sandbox executor and the HTTP client to the executor service
 * implement. Kept free of I/O so the gateway can depend on it without pulling in nsjail.
 */
import type { Logger } from 'pino';
import type { Clock } from '../shared/clock.ts';
import type { Runtime, Tool } from '../api/v1alpha1/mcpserver.ts';
import type { SecretSource } from './secrets.ts';

/** A tool as the executor runs it: the api Tool with its code resolved (codeFrom already read). */
export type ResolvedTool = Omit<Tool, 'code' | 'codeFrom'> & { code: string };

export interface ToolCallRequest {
  /** Unique per call (the gateway's decision id is a good choice); echoed in logs. */
  callId: string;
  server: { namespace: string; name: string };
  /**
   * Who asked: the principal's stable identity (`kind:name`, src/gateway/auth/principal.ts
   * callerKey), the key the gateway's fair queue shares slots by. The executor service never
   * receives it (the client sends only what the executor runs).
   */
  caller: string;
  tool: ResolvedTool;
  arguments: Record<string, unknown>;
  /**
   * Hosts cluster guardrails forbid this call to reach (ClusterAgentPolicy `spec.egressDeny`,
   * computed by the gateway's policy engine). They only narrow the tool's own `egress`: the
   * executor's proxy refuses a matching host with reason `policy-denied`, naming the policy.
   */
  egressDenied?: EgressDenial[];
}

/** One guardrail entry that forbids hosts for a call (src/gateway/policy). */
export interface EgressDenial {
  /** Host patterns as in a tool's egress rules: `name` or `*.suffix`. */
  hosts: string[];
  /** `ClusterAgentPolicy <name>`. */
  policy: string;
  /** The guardrail's human reason, copied into the attempt's record. */
  reason: string;
}

/**
 * One connection attempt through the egress proxy, as the decision record carries it: every
 * attempt, refused ones included (src/executor/egress/proxy.ts EgressAttempt, plus the guardrail
 * that refused it when one did).
 */
export interface EgressAttemptRecord {
  host: string;
  port: number;
  address?: string;
  sni?: string;
  allowed: boolean;
  /** A closed set: allowed, not-declared, port-not-declared, raw-ip, private-address, policy-denied, sni-mismatch, ... */
  reason: string;
  detail?: string;
  /** For `policy-denied`: `ClusterAgentPolicy <name>`. */
  policy?: string;
  end?: string;
  bytesUp: number;
  bytesDown: number;
  durationMs: number;
}

/**
 * How a call ended. The first seven come from the sandbox itself; `overloaded` and
 * `executor-unavailable` are produced on the client side (or by the service refusing a call
 * before it started), so the gateway can tell "not run" from "ran and failed".
 */
export const SandboxOutcome = {
  Ok: 'ok',
  Error: 'error',
  Timeout: 'timeout',
  MemoryLimit: 'memory-limit',
  PidsLimit: 'pids-limit',
  OutputTruncated: 'output-truncated',
  SandboxViolation: 'sandbox-violation',
  Overloaded: 'overloaded',
  ExecutorUnavailable: 'executor-unavailable',
} as const;
export type SandboxOutcome = (typeof SandboxOutcome)[keyof typeof SandboxOutcome];
export const SANDBOX_OUTCOMES = Object.values(SandboxOutcome) as readonly SandboxOutcome[];

/**
 * Why a call was answered `overloaded` without being started, when it is known: the gateway's
 * fair queue (a caller's or server's share, the whole queue, the wait limit) or the executor at
 * its own concurrency limit. Recorded in the decision log and counted by reason.
 */
export const RefusalReason = {
  PrincipalShare: 'principal-share',
  ServerShare: 'server-share',
  QueueFull: 'queue-full',
  WaitTimeout: 'wait-timeout',
  ExecutorBusy: 'executor-busy',
} as const;
export type RefusalReason = (typeof RefusalReason)[keyof typeof RefusalReason];
export const REFUSAL_REASONS = Object.values(RefusalReason) as readonly RefusalReason[];
export function isRefusalReason(value: unknown): value is RefusalReason {
  return (REFUSAL_REASONS as readonly unknown[]).includes(value);
}

export interface TextContent {
  type: 'text';
  text: string;
}

/** What the gateway turns into an MCP CallToolResult. */
export interface ToolCallResult {
  outcome: SandboxOutcome;
  /** True for every outcome except `ok`. */
  isError: boolean;
  content: TextContent[];
  /** Set when the function returned a JSON object. */
  structuredContent?: Record<string, unknown>;
  durationMs: number;
  /** Bytes the sandbox wrote to stdout (before truncation). */
  outputBytes: number;
  /** Which executor ran it (pod name / host + sandbox kind), for the decision log. */
  executor: string;
  /** A short, client-safe explanation for non-ok outcomes; never contains host paths. */
  message?: string;
  /** For `overloaded`: which limit refused the call, when known. */
  refusal?: RefusalReason;
  /** Where the call's time went inside the executor (diagnostics and `make bench`). */
  timings?: CallTimings;
  /** Every egress attempt the call made (tools with `egress` only), in order. */
  egress?: EgressAttemptRecord[];
  /** Attempts beyond the first 64, counted but not listed in `egress`. */
  egressOmitted?: number;
  /**
   * Secret values found and redacted in the result and message, counted by the secretEnv
   * variable's name (never the value). Absent when nothing was redacted.
   */
  redactions?: Record<string, number>;
}

/**
 * One call's time inside the executor, in ms, each present where it was measured: getting a
 * sandbox (a warm take, or a cold start until the interpreter waits), handing the call into it,
 * the interpreter's work, the frame's way back, and reading the cgroup counters.
 */
export interface CallTimings {
  acquireMs?: number;
  handoffMs?: number;
  interpreterMs?: number;
  returnMs?: number;
  countersMs?: number;
}

export interface ToolExecutor {
  /**
   * Runs one call. Tool failures, limits and refusals come back as a ToolCallResult with
   * `isError`; it rejects only on programming errors (McpworksError InvalidInput/Internal).
   */
  execute(request: ToolCallRequest, signal?: AbortSignal): Promise<ToolCallResult>;
  close(): Promise<void>;
}

/** Absolute paths of the real interpreters (never a shim) used inside the sandbox. */
export interface RuntimePaths {
  python: string;
  node: string;
  bash: string;
}

export interface SandboxExecutorOptions {
  /** The nsjail binary. */
  nsjailPath: string;
  runtimes?: Partial<RuntimePaths>;
  /** Pre-started sandboxes kept ready per runtime and limit set; 0 disables the pool. */
  warmPoolSize?: number;
  /** Calls run at once; beyond that `execute` returns an `overloaded` result at once. */
  maxConcurrency?: number;
  /** Seccomp policy file (Kafel); defaults to the one shipped in sandbox-image/. */
  seccompPolicyPath?: string;
  /** Name reported in ToolCallResult.executor. */
  executorName?: string;
  /**
   * Where each runtime's read-only jail root is assembled at start (default: the OS temp
   * directory). On the runtimes' filesystem the files are hard links; elsewhere, copies.
   */
  runtimeRootParent?: string;
  /**
   * Roots prepared ahead of time (`mcpworks executor --prepare-runtime-roots`, at image build):
   * `<dir>/<runtime>` each. Checked at start against the host's runtimes (refused on any
   * difference); nothing is built or copied at start. Overrides runtimeRootParent.
   */
  runtimeRoots?: string;
  /**
   * A packages directory (`python/`, `node/`; src/executor/packages.ts) whose trees the python
   * and node roots carry read-only at /opt/mcpworks/packages; must exist when given. With
   * runtimeRoots, the prepared roots must have been built with the same directory.
   */
  packagesDir?: string;
  /**
   * nsjail enters the jail with chroot instead of pivot_root (`--no_pivotroot`): in pods whose
   * seccomp profile refuses pivot_root (RuntimeDefault). Needs CAP_SYS_CHROOT. Default false.
   */
  noPivotRoot?: boolean;
  /** Empty directory to mount a clean procfs on when /proc is masked (default /opt/mcpworks/proc). */
  cleanProcDir?: string;
  /**
   * Where tools' `secretEnv` values are read, per call (src/executor/secrets.ts). Absent: a call
   * of a tool that declares secretEnv fails closed before any sandbox starts.
   */
  secrets?: SecretSource;
  /**
   * CA bundle (PEM file) bound read-only into egress sandboxes, which their code trusts
   * (SSL_CERT_FILE, NODE_EXTRA_CA_CERTS). Default: the system bundle when present. Without one,
   * calls of tools with `egress` are refused (executor-unavailable); others are unaffected.
   */
  caBundle?: string;
  logger?: Logger;
  clock?: Clock;
}

/** The in-process executor: nsjail runner + warm pool. */
export interface SandboxExecutor extends ToolExecutor {
  /** Proves a sandbox can start here (namespaces, cgroups, seccomp); throws SandboxUnavailable. */
  probe(): Promise<void>;
  /** Calls currently running. */
  readonly inFlight: number;
}

/**
 * Builds the in-process executor. It fails closed: the returned promise rejects with
 * McpworksError(SandboxUnavailable, reason) when nsjail cannot start a sandbox with namespaces
 * and enforced cgroup limits on this machine.
 */
export type CreateSandboxExecutor = (options: SandboxExecutorOptions) => Promise<SandboxExecutor>;

export interface ExecutorClientOptions {
  /** Base URL of the executor service, e.g. http://executor.ns.svc:8081 */
  url: string;
  /** The per-server bearer token shared by gateway and executor (never the client's token). */
  token: string;
  /** Extra time over the tool's own timeout before the client gives up; default 5000 ms. */
  timeoutGraceMs?: number;
  logger?: Logger;
  clock?: Clock;
}

export type { Runtime };
