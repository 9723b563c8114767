/**
 * createGatewayApp: one McpServer's MCP endpoint over Streamable HTTP. Order of checks for every
 * request: Host / Origin (DNS rebinding) → no credentials in the query → authentication → body
 * limit and JSON → session (bound to the principal) → the SDK transport, whose handlers authorize
 * each tool call (./mcp.ts). Whatever happens, the request ends with exactly one decision record
 * (./context.ts), written after the tool call is over so it carries the post-conditions.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { ToolExecutor } from '../executor/types.ts';
import type { Clock } from '../shared/clock.ts';
import type { Logger } from '../shared/logger.ts';
import { createArgumentValidators } from './arguments.ts';
import { protectedResourceMetadata, wwwAuthenticate } from './auth/challenge.ts';
import type { Authenticator } from './auth/types.ts';
import { readJsonBody } from './body.ts';
import {
  gatewayDecision,
  newRequestContext,
  toDecisionEntry,
  type RequestContext,
} from './context.ts';
import type { DecisionRecorder } from './decisions/recorder.ts';
import {
  authInfoFor,
  createProtocolServer,
  declaredTools,
  type PolicyEngine,
  type ProtocolDeps,
} from './mcp.ts';
import { checkHost, checkOrigin, checkQuery, type OriginPolicy } from './origin.ts';
import { checkRequestShape } from './request-shape.ts';
import {
  DEFAULT_SESSION_LIMITS,
  SessionTable,
  newSessionId,
  principalKey,
  type SessionLimits,
} from './sessions.ts';
import { serverKeyOf, type GatewayConfigSource, type GatewaySnapshot } from './source/types.ts';
import type { EventSink } from './telemetry/events.ts';
import { ReasonCode, type GatewayMetrics } from './telemetry/metrics.ts';

export interface GatewayLimits {
  /** Largest request body accepted (413 beyond); default 1 MiB. */
  maxBodyBytes: number;
  sessions: SessionLimits;
}

export const DEFAULT_LIMITS: GatewayLimits = {
  maxBodyBytes: 1024 * 1024,
  sessions: DEFAULT_SESSION_LIMITS,
};

export interface GatewayAppOptions {
  source: GatewayConfigSource;
  executor: ToolExecutor;
  /** Builds the authenticator for one snapshot; called once per snapshot revision. */
  authenticatorFactory: (snapshot: GatewaySnapshot) => Authenticator;
  policy: PolicyEngine;
  recorder: DecisionRecorder;
  metrics: GatewayMetrics;
  events?: EventSink;
  clock: Clock;
  logger: Logger;
  /** Browser origins allowed besides loopback ones. */
  allowedOrigins?: readonly string[];
  /** Host header values accepted; undefined accepts any (behind a Service). */
  allowedHosts?: readonly string[];
  limits?: Partial<GatewayLimits>;
  /**
   * `stateful` (default): MCP sessions bound to the principal, held in this process. `stateless`:
   * no session ids, a fresh protocol server per request, nothing kept between requests; use it
   * when several replicas serve one McpServer without session affinity. GET streams and DELETE
   * are then 405, as the spec allows.
   */
  sessionMode?: 'stateful' | 'stateless';
  /** `scheme://host[:port]` clients use, for the resource metadata; default: from the Host header. */
  publicBaseUrl?: string;
  version?: string;
}

export interface GatewayApp {
  readonly serverKey: string;
  readonly sessionCount: number;
  /** Serves the MCP endpoint; `mcpPath` is the path the client used (`/mcp/ns/name` or `/mcp`). */
  handleMcp(req: IncomingMessage, res: ServerResponse, mcpPath: string): Promise<void>;
  /** RFC 9728 protected-resource metadata for `mcpPath` (public, as the RFC intends). */
  handleResourceMetadata(req: IncomingMessage, res: ServerResponse, mcpPath: string): void;
  /**
   * CORS preflight (OPTIONS) for the MCP path: 204 for an allowed Origin and Host, else 403. It
   * carries no credentials and no MCP message, so it is not a decision record.
   */
  handlePreflight(req: IncomingMessage, res: ServerResponse): void;
  close(): Promise<void>;
}

export const RESOURCE_METADATA_PREFIX = '/.well-known/oauth-protected-resource';

/**
 * CORS for browser clients on an allowed origin (the Origin guard ran first). Bearer tokens, no
 * cookies: CORS only lets the page read answers to requests it could already send.
 */
function setCorsHeaders(req: IncomingMessage, res: ServerResponse): void {
  const origin = header(req, 'origin');
  if (origin === undefined) return;
  res.setHeader('access-control-allow-origin', origin);
  res.setHeader('vary', 'Origin');
  res.setHeader(
    'access-control-expose-headers',
    'Mcp-Session-Id, WWW-Authenticate, Mcp-Protocol-Version',
  );
}

const PREFLIGHT_HEADERS = {
  'access-control-allow-methods': 'GET, POST, DELETE',
  'access-control-allow-headers':
    'Authorization, Content-Type, Accept, Mcp-Session-Id, Mcp-Protocol-Version, Last-Event-ID',
  'access-control-max-age': '600',
};

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

/**
 * Requests the gateway serves without a policy decision: the session's handshake and liveness,
 * notifications and the client's responses (JSON-RPC messages with no method), and the HTTP
 * GET stream and DELETE of a session. tools/list and tools/call are decided by policy; any other
 * method is not served.
 */
function isUngovernedMethod(method: string | undefined): boolean {
  if (method === undefined) return true;
  return UNGOVERNED_METHODS.has(method) || method.startsWith('notifications/');
}
const UNGOVERNED_METHODS = new Set(['initialize', 'ping', 'response', 'GET', 'DELETE']);

/** How the gateway ends a request the SDK will never answer. */
interface EarlyEnd {
  outcome: 'cancelled' | 'session-closed';
  code: number;
  message: string;
}
const SESSION_CLOSED: EarlyEnd = {
  outcome: 'session-closed',
  code: -32000,
  message: 'the session was closed while the request ran',
};
const CANCELLED: EarlyEnd = {
  outcome: 'cancelled',
  code: -32800,
  message: 'request cancelled by the client (notifications/cancelled)',
};

/**
 * The JSON-RPC requests in flight per session transport. The SDK maps responses by request id
 * and silently drops a pending one when its id is reused, when the client cancels it, or when
 * the session closes; the HTTP request would then never end and never be recorded. Here a
 * reused id is refused at once, and a cancelled request or one whose session closed is answered
 * with a JSON-RPC error, so every request ends with exactly one record that says what happened.
 */
class InFlightRequests {
  readonly #byTransport = new WeakMap<object, Map<string, (end: EarlyEnd) => void>>();
  readonly #refuseDuplicate: (ctx: RequestContext, reason: string) => void;

  constructor(refuseDuplicate: (ctx: RequestContext, reason: string) => void) {
    this.#refuseDuplicate = refuseDuplicate;
  }

  async handle(
    transport: object,
    ctx: RequestContext,
    res: ServerResponse,
    body: unknown,
    forward: () => Promise<void>,
  ): Promise<void> {
    const message = (body ?? {}) as { id?: unknown; method?: unknown; params?: unknown };
    const flights = this.#flights(transport);
    if (message.method === 'notifications/cancelled') {
      await forward();
      const requestId = (message.params as { requestId?: unknown } | undefined)?.requestId;
      flights.get(flightKey(requestId))?.(CANCELLED);
      return;
    }
    if (typeof message.method !== 'string' || message.id === undefined || message.id === null) {
      return forward();
    }
    const key = flightKey(message.id);
    if (flights.has(key)) {
      const reason = `Invalid Request: a request with id ${key.slice(0, 64)} is still in flight in this session`;
      this.#refuseDuplicate(ctx, reason);
      return sendJson(res, 200, {
        jsonrpc: '2.0',
        id: jsonRpcId(message.id),
        error: { code: -32600, message: reason },
      });
    }
    let endEarly!: (end: EarlyEnd) => void;
    const ended = new Promise<EarlyEnd>((resolve) => (endEarly = resolve));
    flights.set(key, endEarly);
    try {
      const early = await Promise.race([forward().then(() => undefined), ended]);
      if (early !== undefined && !res.headersSent) {
        ctx.endedEarly = early.outcome;
        sendJson(res, 200, {
          jsonrpc: '2.0',
          id: jsonRpcId(message.id),
          error: { code: early.code, message: early.message },
        });
      }
    } finally {
      if (flights.get(key) === endEarly) flights.delete(key);
    }
  }

  endAll(transport: object, end: EarlyEnd): void {
    const flights = this.#byTransport.get(transport);
    if (flights === undefined) return;
    for (const settle of [...flights.values()]) settle(end);
  }

  #flights(transport: object): Map<string, (end: EarlyEnd) => void> {
    let flights = this.#byTransport.get(transport);
    if (flights === undefined) {
      flights = new Map();
      this.#byTransport.set(transport, flights);
    }
    return flights;
  }
}

/** JSON-RPC ids `1` and `"1"` are different requests: key them by their JSON text. */
function flightKey(id: unknown): string {
  return typeof id === 'string' || typeof id === 'number' ? JSON.stringify(id) : '';
}

/** The id to answer with: the request's own when it is a valid JSON-RPC id, else null. */
function jsonRpcId(id: unknown): string | number | null {
  return typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id)) ? id : null;
}

function rpcError(
  res: ServerResponse,
  status: number,
  code: number,
  message: string,
  headers?: Record<string, string>,
) {
  sendJson(res, status, { jsonrpc: '2.0', error: { code, message }, id: null }, headers);
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export function createGatewayApp(options: GatewayAppOptions): GatewayApp {
  const limits: GatewayLimits = {
    maxBodyBytes: options.limits?.maxBodyBytes ?? DEFAULT_LIMITS.maxBodyBytes,
    sessions: { ...DEFAULT_LIMITS.sessions, ...options.limits?.sessions },
  };
  if (!(limits.maxBodyBytes > 0))
    throw new RangeError('createGatewayApp: limits.maxBodyBytes must be positive');
  const { source, clock, metrics, recorder } = options;
  const logger = options.logger.child({ component: 'gateway' });
  const originPolicy: OriginPolicy = {
    allowedOrigins: options.allowedOrigins ?? [],
    ...(options.allowedHosts === undefined ? {} : { allowedHosts: options.allowedHosts }),
  };
  const initial = source.current();
  const serverKey = serverKeyOf(initial);
  const sessions = new SessionTable(limits.sessions);
  const inFlight = new InFlightRequests((ctx, reason) =>
    deny(ctx, ReasonCode.InvalidRequest, reason, 'duplicate-id'),
  );
  const stateless = options.sessionMode === 'stateless';
  // Schemas compile when a configuration arrives, so a broken one is logged then, not on a call.
  const argumentValidators = createArgumentValidators(logger);
  argumentValidators.for(initial);
  const unsubscribe = source.onChange((snapshot) => argumentValidators.for(snapshot));
  const deps: ProtocolDeps = {
    executor: options.executor,
    policy: options.policy,
    arguments: argumentValidators,
    metrics,
    logger,
    version: options.version ?? '0.1.0',
    ...(options.events === undefined ? {} : { events: options.events }),
  };

  let authenticator: { revision: number; value: Authenticator } | undefined;
  const authenticatorFor = (snapshot: GatewaySnapshot): Authenticator => {
    if (authenticator?.revision !== snapshot.revision) {
      authenticator = {
        revision: snapshot.revision,
        value: options.authenticatorFactory(snapshot),
      };
    }
    return authenticator.value;
  };
  const reportSessions = () => metrics.sessionsOpen(serverKey, sessions.size);
  const sweeper = setInterval(
    () => {
      if (sessions.sweep(clock.monotonicMs()) > 0) reportSessions();
    },
    Math.min(60_000, Math.max(1_000, limits.sessions.idleTimeoutMs / 4)),
  );
  sweeper.unref();

  const baseUrl = (req: IncomingMessage) =>
    options.publicBaseUrl ?? `http://${header(req, 'host') ?? '127.0.0.1'}`;
  const metadataUrl = (req: IncomingMessage, mcpPath: string) =>
    `${baseUrl(req)}${RESOURCE_METADATA_PREFIX}${mcpPath}`;

  const deny = (
    ctx: RequestContext,
    reasonCode: ReasonCode,
    reason: string,
    outcome: RequestContext['outcome'],
  ) => {
    ctx.decision = gatewayDecision('Deny', reason);
    ctx.reasonCode = reasonCode;
    ctx.outcome = outcome;
  };

  const finish = (ctx: RequestContext, res: ServerResponse) => {
    if (ctx.finished) return;
    ctx.finished = true;
    if (ctx.decision === undefined) {
      if (ctx.method === 'tools/call' || ctx.method === 'tools/list') {
        // The handler never ran: the SDK refused the request before authorization.
        deny(ctx, ReasonCode.InvalidRequest, `invalid ${ctx.method} request`, 'invalid-request');
      } else if (!isUngovernedMethod(ctx.method)) {
        // The SDK answered Method not found: nothing was allowed, so the record says so.
        deny(
          ctx,
          ReasonCode.MethodNotFound,
          `method "${ctx.method}" is not served by this gateway`,
          'invalid-request',
        );
      } else {
        ctx.decision = gatewayDecision('Allow', `authenticated ${ctx.method} request`);
        ctx.reasonCode = ReasonCode.Authenticated;
        if (res.statusCode >= 400) ctx.outcome = 'invalid-request';
      }
    }
    const durationMs = clock.monotonicMs() - ctx.startedMs;
    const recordArguments = ctx.snapshot.server.spec.audit.recordArguments;
    try {
      recorder.record(toDecisionEntry(ctx, durationMs, recordArguments));
    } catch (error) {
      // Never zero records: write the request again without what the client sent as arguments.
      logger.error(
        { err: error, decisionId: ctx.decisionId },
        'decision record failed; recording it without arguments',
      );
      const bare = toDecisionEntry({ ...ctx, arguments: undefined }, durationMs, false);
      delete bare.argumentsSha256;
      recorder.record({ ...bare, reason: `${bare.reason} (arguments could not be recorded)` });
    }
    const declared = declaredTools(ctx.snapshot);
    metrics.decision({
      server: serverKey,
      tool: metrics.toolLabel(ctx.tool, declared),
      effect: ctx.decision!.effect === 'Allow' ? 'allow' : 'deny',
      reasonCode: ctx.reasonCode ?? ReasonCode.InternalError,
    });
    metrics.requestDuration({ server: serverKey, method: ctx.method }, durationMs / 1000);
  };

  const serve = async (
    ctx: RequestContext,
    req: IncomingMessage,
    res: ServerResponse,
    mcpPath: string,
  ) => {
    for (const guard of [
      checkHost(header(req, 'host'), originPolicy),
      checkOrigin(header(req, 'origin'), originPolicy),
    ]) {
      if (!guard.ok) {
        const code =
          guard.code === 'host_rejected' ? ReasonCode.HostRejected : ReasonCode.OriginRejected;
        deny(ctx, code, guard.message, 'invalid-request');
        return rpcError(res, 403, -32000, guard.message);
      }
    }
    setCorsHeaders(req, res);
    const url = new URL(req.url ?? '/', 'http://gateway.invalid');
    const query = checkQuery(url.searchParams);
    if (!query.ok) {
      deny(ctx, ReasonCode.CredentialInQuery, query.message, 'invalid-request');
      return rpcError(res, 400, -32000, query.message);
    }

    const auth = await authenticatorFor(ctx.snapshot).authenticate({
      // Node keeps only the first of repeated Authorization headers in req.headers; a proxy in
      // front may pick another one, so the credential parser must see them all (and refuse).
      headers: { ...req.headers, authorization: req.headersDistinct.authorization },
      url: req.url ?? '/',
    });
    if (!auth.ok) {
      ctx.authFailure = auth;
      metrics.authFailure({ method: auth.method, reason: auth.reason });
      const code = auth.status === 403 ? ReasonCode.InsufficientScope : ReasonCode.Unauthenticated;
      deny(ctx, code, auth.message, 'unauthenticated');
      const challenge: Record<string, string> =
        auth.status === 400
          ? {}
          : {
              'www-authenticate': wwwAuthenticate(
                metadataUrl(req, mcpPath),
                auth,
                ctx.snapshot.server.spec.auth.oidc?.requiredScopes,
              ),
            };
      req.resume();
      return rpcError(res, auth.status, -32000, auth.message, challenge);
    }
    ctx.principal = auth.principal;
    ctx.authMethod = auth.method;
    const principal = auth.principal;

    const method = req.method ?? 'GET';
    if (method !== 'POST' && method !== 'GET' && method !== 'DELETE') {
      deny(ctx, ReasonCode.MethodNotAllowed, 'method not allowed', 'invalid-request');
      return rpcError(res, 405, -32000, 'Method not allowed', { allow: 'GET, POST, DELETE' });
    }

    let body: unknown;
    if (method === 'POST') {
      const read = await readJsonBody(req, limits.maxBodyBytes);
      if (!read.ok) {
        const code =
          read.code === 'body_too_large'
            ? ReasonCode.BodyTooLarge
            : read.code === 'too_deep' || read.code === 'unfaithful_json'
              ? ReasonCode.InvalidRequest
              : ReasonCode.ParseError;
        deny(ctx, code, read.message, 'invalid-request');
        return rpcError(
          res,
          read.status,
          read.code === 'parse_error' ? -32700 : -32600,
          read.message,
        );
      }
      body = read.value;
      if (
        typeof body !== 'object' ||
        body === null ||
        Array.isArray(body) ||
        (body as { jsonrpc?: unknown }).jsonrpc !== '2.0'
      ) {
        deny(
          ctx,
          ReasonCode.InvalidRequest,
          'Invalid Request: one JSON-RPC 2.0 message per request',
          'invalid-request',
        );
        return rpcError(res, 400, -32600, 'Invalid Request: one JSON-RPC 2.0 message per request');
      }
      const message = body as { method?: unknown; params?: { name?: unknown } };
      ctx.method = typeof message.method === 'string' ? message.method.slice(0, 128) : 'response';
      if (ctx.method === 'tools/call' && typeof message.params?.name === 'string') {
        ctx.tool = message.params.name.slice(0, 128);
      }
      const shape = checkRequestShape(body as Parameters<typeof checkRequestShape>[0]);
      if (!shape.ok) {
        deny(ctx, ReasonCode.InvalidRequest, shape.message, 'invalid-request');
        return sendJson(res, 200, {
          jsonrpc: '2.0',
          id: jsonRpcId((body as { id: unknown }).id),
          error: { code: -32602, message: shape.message },
        });
      }
    }

    (req as IncomingMessage & { auth?: unknown }).auth = authInfoFor(ctx);
    const sessionHeader = header(req, 'mcp-session-id');

    if (stateless) {
      if (method !== 'POST') {
        deny(
          ctx,
          ReasonCode.MethodNotAllowed,
          'method not allowed without sessions',
          'invalid-request',
        );
        return rpcError(res, 405, -32000, 'Method not allowed: this server is stateless', {
          allow: 'POST',
        });
      }
      const protocol = createProtocolServer(deps, `mcpworks:${serverKey}`);
      const transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: undefined,
        enableJsonResponse: true,
      });
      try {
        await protocol.connect(transport);
        await transport.handleRequest(req, res, body);
      } finally {
        await protocol.close();
      }
      return;
    }

    if (method === 'POST' && ctx.method === 'initialize' && sessionHeader === undefined) {
      if (!sessions.makeRoom(principal)) {
        deny(ctx, ReasonCode.SessionLimit, 'too many open sessions', 'overloaded');
        return rpcError(res, 503, -32000, 'Service Unavailable: too many open sessions', {
          'retry-after': '5',
        });
      }
      const protocol = createProtocolServer(deps, `mcpworks:${serverKey}`);
      const transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: newSessionId,
        enableJsonResponse: true,
        onsessioninitialized: (id) => {
          sessions.add({
            id,
            principalKey: principalKey(principal),
            transport,
            server: protocol,
            lastActiveMs: clock.monotonicMs(),
          });
          reportSessions();
        },
        onsessionclosed: (id) => {
          sessions.remove(id);
          reportSessions();
        },
      });
      transport.onclose = () => {
        if (transport.sessionId !== undefined) sessions.remove(transport.sessionId);
        reportSessions();
        // The SDK drops the pending responses of a closed transport: end them here.
        inFlight.endAll(transport, SESSION_CLOSED);
      };
      await protocol.connect(transport);
      await transport.handleRequest(req, res, body);
      const id = transport.sessionId;
      // Initialization that failed (bad params, wrong Accept) leaves no session behind.
      if (id === undefined || !sessions.has(id)) await protocol.close();
      else ctx.sessionId = id;
      return;
    }

    if (sessionHeader === undefined) {
      deny(
        ctx,
        ReasonCode.InvalidRequest,
        'Bad Request: Mcp-Session-Id header is required',
        'invalid-request',
      );
      return rpcError(res, 400, -32000, 'Bad Request: Mcp-Session-Id header is required');
    }
    const session = sessions.lookup(sessionHeader, principal, clock.monotonicMs());
    if (session === undefined) {
      deny(ctx, ReasonCode.SessionNotFound, 'Session not found', 'invalid-request');
      return rpcError(res, 404, -32001, 'Session not found');
    }
    ctx.sessionId = session.id;
    await inFlight.handle(session.transport, ctx, res, body, () =>
      session.transport.handleRequest(req, res, body),
    );
  };

  return {
    serverKey,
    get sessionCount() {
      return sessions.size;
    },
    async handleMcp(req, res, mcpPath) {
      const ctx = newRequestContext(
        source.current(),
        serverKey,
        clock.monotonicMs(),
        req.method ?? 'GET',
      );
      try {
        await serve(ctx, req, res, mcpPath);
      } catch (error) {
        logger.error({ err: error, decisionId: ctx.decisionId }, 'request failed');
        if (ctx.outcome === undefined || ctx.outcome === 'ok') {
          deny(ctx, ReasonCode.InternalError, 'internal error', 'internal-error');
        }
        rpcError(res, 500, -32603, 'Internal error');
      } finally {
        if (ctx.pending !== undefined) await ctx.pending;
        finish(ctx, res);
      }
    },
    handlePreflight(req, res) {
      req.resume();
      const host = checkHost(header(req, 'host'), originPolicy);
      const origin = checkOrigin(header(req, 'origin'), originPolicy);
      if (!host.ok || !origin.ok) {
        res.writeHead(403, { 'content-type': 'text/plain; charset=utf-8' });
        res.end('forbidden\n');
        return;
      }
      setCorsHeaders(req, res);
      res.writeHead(204, PREFLIGHT_HEADERS);
      res.end();
    },
    handleResourceMetadata(req, res, mcpPath) {
      const snapshot = source.current();
      const auth = snapshot.server.spec.auth;
      const metadata = protectedResourceMetadata({
        resource: `${baseUrl(req)}${mcpPath}`,
        authorizationServers: auth.oidc === undefined ? [] : [auth.oidc.issuer],
        ...(auth.oidc?.requiredScopes === undefined
          ? {}
          : { scopesSupported: auth.oidc.requiredScopes }),
        resourceName: `MCPWorks ${serverKey}`,
      });
      sendJson(res, 200, metadata);
    },
    async close() {
      clearInterval(sweeper);
      unsubscribe();
      sessions.closeAll();
      reportSessions();
    },
  };
}
