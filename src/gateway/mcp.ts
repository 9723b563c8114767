/**
 * The MCP protocol side of the gateway: an SDK `Server` whose handlers authorize every call
 * through the policy engine and run allowed calls in the executor. One instance per session;
 * the request's context (principal, snapshot) reaches the handlers through the SDK's
 * `authInfo.extra`, never through shared mutable state.
 *
 * Error mapping (ADR docs/adr/0011-gateway-endpoint.md): a policy denial and every sandbox failure
 * are tool results with `isError: true` (the model can read them and adapt); protocol problems
 * (unknown tool, malformed params) are JSON-RPC errors; internal faults are JSON-RPC internal
 * errors with no details.
 */
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import {
  CallToolRequestSchema,
  ErrorCode as RpcErrorCode,
  ListToolsRequestSchema,
  McpError,
  type CallToolResult,
  type Tool as McpTool,
} from '@modelcontextprotocol/sdk/types.js';
import {
  isRefusalReason,
  type ResolvedTool,
  type ToolCallResult,
  type ToolExecutor,
} from '../executor/types.ts';
import type { EgressGuardrails } from './policy/engine.ts';
import type { Logger } from '../shared/logger.ts';
import type { ArgumentValidators } from './arguments.ts';
import { callerKey } from './auth/principal.ts';
import type { RequestContext } from './context.ts';
import { recordedEgress, redactionCounts } from './decisions/egress.ts';
import type { Decision, PolicyRequest } from './policy/types.ts';
import type { EventSink, ObjectReference } from './telemetry/events.ts';
import { ReasonCode, type GatewayMetrics } from './telemetry/metrics.ts';
import type { GatewaySnapshot } from './source/types.ts';

/**
 * The policy engine as the gateway uses it: `{ decide, visibleTools, egressGuardrails }` from
 * src/gateway/policy/engine.ts in production; tests may pass a stub.
 */
export interface PolicyEngine {
  decide(policySet: GatewaySnapshot['policySet'], request: PolicyRequest): Decision;
  /** The hosts cluster guardrails forbid this tool (ToolCallRequest.egressDenied). */
  egressGuardrails(
    policySet: GatewaySnapshot['policySet'],
    server: PolicyRequest['server'],
    tool: string,
  ): EgressGuardrails;
  /** Names of `tools` the request's principal may call (tools/list filtering). */
  visibleTools(
    policySet: GatewaySnapshot['policySet'],
    request: PolicyRequest,
    tools: readonly string[],
  ): string[];
}

export interface ProtocolDeps {
  executor: ToolExecutor;
  policy: PolicyEngine;
  /** The tools' inputSchemas, compiled once per snapshot revision (./arguments.ts). */
  arguments: ArgumentValidators;
  metrics: GatewayMetrics;
  events?: EventSink;
  logger: Logger;
  version: string;
}

const CONTEXT_KEY = 'mcpworksContext';

/** What the HTTP layer hands the SDK transport as `req.auth`: no token, only our context. */
export function authInfoFor(ctx: RequestContext): AuthInfo {
  return {
    token: '',
    clientId: ctx.principal?.name ?? '',
    scopes: [],
    extra: { [CONTEXT_KEY]: ctx },
  };
}

function contextOf(extra: { authInfo?: AuthInfo }): RequestContext {
  const ctx = extra.authInfo?.extra?.[CONTEXT_KEY] as RequestContext | undefined;
  // Unreachable through the HTTP layer; refusing is the safe answer if it ever happens.
  if (ctx?.principal === undefined)
    throw new McpError(RpcErrorCode.InternalError, 'internal error');
  return ctx;
}

const serverRefs = new WeakMap<GatewaySnapshot, PolicyRequest['server']>();

/**
 * The policy engine's view of the server, one frozen object per snapshot: the engine caches its
 * per-server index by this object's identity, so a new one per request would miss every time.
 */
export function serverRef(snapshot: GatewaySnapshot): PolicyRequest['server'] {
  let ref = serverRefs.get(snapshot);
  if (ref === undefined) {
    const meta = snapshot.server.metadata;
    ref = Object.freeze({
      namespace: meta.namespace ?? 'default',
      name: meta.name,
      labels: Object.freeze({ ...meta.labels }),
      namespaceLabels: Object.freeze({ ...snapshot.namespaceLabels }),
    });
    serverRefs.set(snapshot, ref);
  }
  return ref;
}

const declaredToolSets = new WeakMap<GatewaySnapshot, ReadonlySet<string>>();

/** The names a snapshot declares, computed once per snapshot (metrics bound tool labels by it). */
export function declaredTools(snapshot: GatewaySnapshot): ReadonlySet<string> {
  let names = declaredToolSets.get(snapshot);
  if (names === undefined) {
    names = new Set(snapshot.tools.map((t) => t.name));
    declaredToolSets.set(snapshot, names);
  }
  return names;
}

/** The McpServer as the object a gateway Event is about. */
function serverObject(snapshot: GatewaySnapshot): ObjectReference {
  const meta = snapshot.server.metadata;
  return {
    apiVersion: snapshot.server.apiVersion,
    kind: 'McpServer',
    name: meta.name,
    namespace: meta.namespace ?? 'default',
    ...(meta.uid === undefined ? {} : { uid: meta.uid }),
  };
}

function publicTool(tool: ResolvedTool): McpTool {
  return {
    name: tool.name,
    description: tool.description,
    inputSchema: { ...tool.inputSchema, type: 'object' } as McpTool['inputSchema'],
  };
}

function toCallToolResult(result: ToolCallResult): CallToolResult {
  const content =
    result.content.length > 0
      ? result.content
      : [
          {
            type: 'text' as const,
            text: result.message ?? (result.isError ? `tool failed: ${result.outcome}` : ''),
          },
        ];
  const out: CallToolResult = { content, isError: result.isError };
  if (result.structuredContent !== undefined && !result.isError)
    out.structuredContent = result.structuredContent;
  return out;
}

const FAILURE_EVENT_OUTCOMES = new Set([
  'timeout',
  'memory-limit',
  'pids-limit',
  'sandbox-violation',
  'executor-unavailable',
]);

/** Longest host an Event message quotes (a DNS name is at most 253 characters). */
const EVENT_HOST_MAX = 253;

/**
 * The call's egress attempts and redactions: onto the record (ctx), into the metrics, and each
 * refused attempt as an `EgressDenied` Event on the McpServer (aggregated and rate-limited like
 * every gateway Event). Counts and names only: never a secret or a variable's value. Not also on
 * the ClusterAgentPolicy that refused it: a gateway's Role lets it create Events only in its own
 * namespace, and refused writes would spend the rate limit the McpServer's Events need.
 */
function observeEgressAndRedactions(
  deps: ProtocolDeps,
  ctx: RequestContext,
  snapshot: GatewaySnapshot,
  toolLabel: string,
  result: ToolCallResult,
): void {
  const egress = recordedEgress(result.egress);
  if (egress.all.length > 0) {
    ctx.egress = egress;
    for (const attempt of egress.all) {
      deps.metrics.egressAttempt({
        server: ctx.serverKey,
        tool: toolLabel,
        allowed: attempt.allowed,
        reason: attempt.reason,
      });
      if (attempt.allowed) continue;
      const by = attempt.policy === undefined ? '' : ` by ${printable(attempt.policy, 300)}`;
      deps.events?.observe({
        regarding: serverObject(snapshot),
        type: 'Warning',
        reason: 'EgressDenied',
        message: `tool ${toolLabel} was refused ${printable(attempt.host, EVENT_HOST_MAX)}:${attempt.port}: ${printable(attempt.reason, 64)}${by}`,
      });
    }
  }
  const redactions = redactionCounts(result.redactions);
  if (redactions !== undefined) {
    ctx.redactions = redactions;
    const total = Object.values(redactions).reduce((sum, count) => sum + count, 0);
    deps.metrics.secretRedactions({ server: ctx.serverKey, tool: toolLabel }, total);
  }
}

/** Text the tool's code chose (a host), safe to quote in an Event: printable ASCII only, bounded. */
function printable(text: string, max: number): string {
  const clean = text.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > max ? `${clean.slice(0, max)}...` : clean;
}

export function createProtocolServer(deps: ProtocolDeps, name: string): Server {
  const server = new Server(
    { name, version: deps.version },
    { capabilities: { tools: { listChanged: false } } },
  );

  server.setRequestHandler(ListToolsRequestSchema, (_request, extra) => {
    const ctx = contextOf(extra);
    const snapshot = ctx.snapshot;
    const principal = ctx.principal!;
    const request: PolicyRequest = {
      server: serverRef(snapshot),
      principal: { ...principal, groups: [...principal.groups] },
      method: 'tools/list',
    };
    // A listing is a decision too: which policies let this caller see anything. A caller no
    // policy allows any tool gets an empty list, recorded as a (default) Deny.
    const decision = deps.policy.decide(snapshot.policySet, request);
    ctx.decision = decision;
    ctx.reasonCode =
      decision.effect === 'Allow'
        ? ReasonCode.PolicyAllow
        : decision.rule === undefined
          ? ReasonCode.DefaultDeny
          : ReasonCode.PolicyDeny;
    if (decision.effect !== 'Allow') {
      ctx.outcome = 'denied';
      return { tools: [] };
    }
    const names = new Set(
      deps.policy.visibleTools(
        snapshot.policySet,
        request,
        snapshot.tools.map((t) => t.name),
      ),
    );
    return { tools: snapshot.tools.filter((t) => names.has(t.name)).map(publicTool) };
  });

  server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
    const ctx = contextOf(extra);
    const { snapshot } = ctx;
    const principal = ctx.principal!;
    const toolName = request.params.name;
    const args = request.params.arguments ?? {};
    ctx.tool = toolName.slice(0, 256); // the log never holds more of a caller-chosen name
    ctx.arguments = args;
    const toolLabel = deps.metrics.toolLabel(toolName, declaredTools(snapshot));

    // Authorize before looking the tool up: a caller denied a tool learns nothing about whether
    // it exists.
    const decision = deps.policy.decide(snapshot.policySet, {
      server: serverRef(snapshot),
      principal: { ...principal, groups: [...principal.groups] },
      method: 'tools/call',
      tool: toolName,
      arguments: args,
    });
    ctx.decision = decision;
    if (decision.effect !== 'Allow') {
      ctx.reasonCode = decision.rule === undefined ? ReasonCode.DefaultDeny : ReasonCode.PolicyDeny;
      ctx.outcome = 'denied';
      deps.events?.observe({
        regarding: serverObject(snapshot),
        type: 'Warning',
        reason: 'ToolCallDenied',
        message: `${principal.name} was denied tool ${toolLabel}: ${decision.reason}`,
      });
      if (decision.rule !== undefined) {
        // The policy that said no hears about it too (kubectl describe agentpolicy ...).
        deps.events?.observe({
          regarding: {
            apiVersion: snapshot.server.apiVersion,
            kind: decision.rule.kind,
            name: decision.rule.name,
            ...(decision.rule.namespace === undefined
              ? {}
              : { namespace: decision.rule.namespace }),
          },
          type: 'Warning',
          reason: 'ToolCallDenied',
          message: `rule ${decision.rule.index} denied ${principal.name} tool ${toolLabel} on ${ctx.serverKey}`,
        });
      }
      return {
        content: [{ type: 'text', text: `denied by policy: ${decision.reason}` }],
        isError: true,
      };
    }
    ctx.reasonCode = ReasonCode.PolicyAllow;
    const tool = snapshot.tools.find((t) => t.name === toolName);
    if (tool === undefined) {
      ctx.reasonCode = ReasonCode.UnknownTool;
      ctx.outcome = 'invalid-request';
      throw new McpError(RpcErrorCode.InvalidParams, `Unknown tool: ${toolName}`);
    }
    // After authorization and the lookup, before the sandbox: a call its schema refuses is
    // answered here and never started.
    const checked = deps.arguments.check(snapshot, toolName, args);
    if (!checked.ok) {
      if (checked.reason === 'invalid-arguments') {
        ctx.reasonCode = ReasonCode.InvalidArguments;
        ctx.outcome = 'invalid-arguments';
        return {
          content: [{ type: 'text', text: `invalid arguments: ${checked.message}` }],
          isError: true,
        };
      }
      // The schema itself is broken (logged once per configuration): fail closed, and tell
      // the McpServer's owners where they look (aggregated like every gateway Event).
      ctx.reasonCode = ReasonCode.ToolMisconfigured;
      ctx.outcome = 'internal-error';
      deps.events?.observe({
        regarding: serverObject(snapshot),
        type: 'Warning',
        reason: 'ToolSchemaInvalid',
        message: `tool ${toolLabel} is refused: its inputSchema does not compile (${checked.message})`,
      });
      return {
        content: [
          {
            type: 'text',
            text: 'tool unavailable: its inputSchema is invalid (the server operator must fix it)',
          },
        ],
        isError: true,
      };
    }
    // Egress guardrails (ClusterAgentPolicy egressDeny) travel with every call; the executor's
    // proxy refuses their hosts whatever the tool declares. A guardrail the engine cannot read
    // refuses tools with egress outright (fail closed): nothing says which hosts it forbids.
    const guardrails = deps.policy.egressGuardrails(
      snapshot.policySet,
      serverRef(snapshot),
      toolName,
    );
    if (guardrails.refuseEgress !== undefined && (tool.egress?.length ?? 0) > 0) {
      const reason = `tool ${toolLabel} declares egress and is refused: ${guardrails.refuseEgress}`;
      ctx.decision = { effect: 'Deny', reason, policies: decision.policies, audit: decision.audit };
      ctx.reasonCode = ReasonCode.EgressGuardrailInvalid;
      ctx.outcome = 'denied';
      deps.events?.observe({
        regarding: serverObject(snapshot),
        type: 'Warning',
        reason: 'ToolCallDenied',
        message: `${principal.name} was denied tool ${toolLabel}: ${reason}`,
      });
      return { content: [{ type: 'text', text: `denied by policy: ${reason}` }], isError: true };
    }
    const meta = snapshot.server.metadata;
    const call = deps.executor.execute(
      {
        callId: ctx.decisionId,
        server: { namespace: meta.namespace ?? 'default', name: meta.name },
        caller: callerKey(principal),
        tool,
        arguments: args,
        egressDenied: guardrails.denied,
      },
      extra.signal,
    );
    ctx.pending = call.catch(() => undefined);
    let result: ToolCallResult;
    try {
      result = await call;
    } catch (error) {
      ctx.outcome = 'internal-error';
      ctx.reasonCode = ReasonCode.InternalError;
      deps.logger.error(
        { err: error, decisionId: ctx.decisionId, tool: toolName },
        'executor failed',
      );
      throw new McpError(RpcErrorCode.InternalError, 'internal error');
    }
    ctx.outcome = result.outcome;
    ctx.outputBytes = result.outputBytes;
    ctx.executor = result.executor;
    if (result.outcome === 'overloaded' && isRefusalReason(result.refusal)) {
      ctx.refusal = result.refusal;
      deps.metrics.queueRefusal({ server: ctx.serverKey, reason: result.refusal });
    }
    deps.metrics.sandboxOutcome({
      server: ctx.serverKey,
      tool: toolLabel,
      outcome: result.outcome,
    });
    observeEgressAndRedactions(deps, ctx, snapshot, toolLabel, result);
    if (FAILURE_EVENT_OUTCOMES.has(result.outcome)) {
      deps.events?.observe({
        regarding: serverObject(snapshot),
        type: 'Warning',
        reason: 'ToolCallFailed',
        message: `tool ${toolLabel} ended with ${result.outcome}`,
      });
    }
    return toCallToolResult(result);
  });

  return server;
}
