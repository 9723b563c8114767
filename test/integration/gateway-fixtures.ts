// Builders for in-process gateway tests: a snapshot, a stub authenticator (bearer token → agent),
// a stub policy engine (allow-list per agent), a stub executor that records what it was sent,
// and a started gateway on 127.0.0.1 with a memory decision sink.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServerSchema } from '../../src/api/v1alpha1/mcpserver.ts';
import type {
  ResolvedTool,
  ToolCallRequest,
  ToolCallResult,
  ToolExecutor,
} from '../../src/executor/types.ts';
import { agentPrincipal, ANONYMOUS_PRINCIPAL } from '../../src/gateway/auth/principal.ts';
import { authFailure, type Authenticator } from '../../src/gateway/auth/types.ts';
import {
  createDecisionRecorder,
  memoryDecisionSink,
} from '../../src/gateway/decisions/recorder.ts';
import { createRouter } from '../../src/gateway/http.ts';
import type { PolicyEngine } from '../../src/gateway/mcp.ts';
import {
  createGatewayApp,
  type GatewayApp,
  type GatewayAppOptions,
} from '../../src/gateway/server.ts';
import type { GatewayConfigSource, GatewaySnapshot } from '../../src/gateway/source/types.ts';
import { createGatewayMetrics } from '../../src/gateway/telemetry/metrics.ts';
import { systemClock } from '../../src/shared/clock.ts';
import { silentLogger } from '../../src/shared/logger.ts';

export const TOKENS: Record<string, string> = { 'token-alice': 'alice', 'token-bob': 'bob' };

/** Policy for the stub engine: agent → tools it may call. */
export type Grants = Record<string, string[]>;

export function tool(name: string): ResolvedTool {
  return {
    name,
    description: `the ${name} tool`,
    runtime: 'python',
    code: 'def main(args):\n  return args\n',
    inputSchema: { type: 'object', properties: { x: { type: 'number' } } },
    timeoutSeconds: 5,
    limits: { memoryMiB: 64, cpuMillicores: 500, pids: 8, maxOutputBytes: 4096, tmpfsMiB: 4 },
  };
}

export function snapshot(
  grants: Grants,
  revision = 1,
  options: { anonymous?: boolean } = {},
): GatewaySnapshot {
  const tools = [tool('echo'), tool('secret')];
  const server = McpServerSchema.parse({
    apiVersion: 'mcpworks.io/v1alpha1',
    kind: 'McpServer',
    metadata: { name: 'demo', namespace: 'team-a', uid: 'uid-1' },
    spec: {
      tools: tools.map(({ code, ...t }) => ({ ...t, code })),
      auth: {
        apiKeys: { secretRef: { name: 'keys' } },
        anonymous: { enabled: options.anonymous ?? false },
      },
    },
  });
  return {
    revision,
    server,
    tools,
    policySet: grants as unknown as GatewaySnapshot['policySet'],
    namespaceLabels: {},
  };
}

export function mutableSource(
  initial: GatewaySnapshot,
): GatewayConfigSource & { set(s: GatewaySnapshot): void } {
  let current = initial;
  const listeners = new Set<(s: GatewaySnapshot) => void>();
  return {
    current: () => current,
    onChange(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    set(s) {
      current = s;
      for (const fn of listeners) fn(s);
    },
  };
}

export const stubAuthenticatorFactory = (snap: GatewaySnapshot): Authenticator => ({
  async authenticate({ headers }) {
    const value = headers['authorization'];
    const auth = Array.isArray(value) ? value[0] : value;
    if (auth === undefined) {
      return snap.server.spec.auth.anonymous.enabled
        ? { ok: true, principal: ANONYMOUS_PRINCIPAL, method: 'anonymous', credential: {} }
        : authFailure('missing-credentials');
    }
    const agent = TOKENS[auth.replace(/^Bearer /, '')];
    if (agent === undefined) return authFailure('unknown-key', { method: 'api-key' });
    return {
      ok: true,
      principal: agentPrincipal(agent, ['team'], 'api-key'),
      method: 'api-key',
      credential: {},
    };
  },
});

export const stubPolicy: PolicyEngine = {
  decide(policySet, request) {
    const grants = policySet as unknown as Grants;
    const mine = grants[request.principal.name] ?? [];
    const allowed =
      request.method === 'tools/list' ? mine.length > 0 : mine.includes(request.tool ?? '');
    return allowed
      ? {
          effect: 'Allow',
          reason: 'granted',
          policies: ['AgentPolicy/team-a/p'],
          audit: [],
          rule: { kind: 'AgentPolicy', namespace: 'team-a', name: 'p', index: 0 },
        }
      : {
          effect: 'Deny',
          reason: 'no rule allows this call',
          policies: ['AgentPolicy/team-a/p'],
          audit: [],
        };
  },
  visibleTools(policySet, request, tools) {
    const grants = policySet as unknown as Grants;
    return tools.filter((t) => (grants[request.principal.name] ?? []).includes(t));
  },
  egressGuardrails() {
    return { denied: [], audit: [] };
  },
};

export function stubExecutor(
  behaviour: (req: ToolCallRequest) => Promise<ToolCallResult> | ToolCallResult = (req) => ({
    outcome: 'ok',
    isError: false,
    content: [{ type: 'text', text: JSON.stringify(req.arguments) }],
    structuredContent: req.arguments,
    durationMs: 1,
    outputBytes: 10,
    executor: 'stub',
  }),
): ToolExecutor & { requests: ToolCallRequest[] } {
  const requests: ToolCallRequest[] = [];
  return {
    requests,
    async execute(req) {
      requests.push(req);
      return behaviour(req);
    },
    async close() {},
  };
}

export interface StartedGateway {
  url: string;
  base: string;
  app: GatewayApp;
  records: ReturnType<typeof memoryDecisionSink>['records'];
  registry: Registry;
  executor: ReturnType<typeof stubExecutor>;
  source: ReturnType<typeof mutableSource>;
  close(): Promise<void>;
}

export async function startGateway(
  options: {
    grants?: Grants;
    executor?: ReturnType<typeof stubExecutor>;
    anonymous?: boolean;
  } & Partial<GatewayAppOptions> = {},
): Promise<StartedGateway> {
  const sink = memoryDecisionSink();
  const registry = new Registry();
  const source = mutableSource(
    snapshot(options.grants ?? { alice: ['echo'] }, 1, { anonymous: options.anonymous ?? false }),
  );
  const executor = options.executor ?? stubExecutor();
  const logger = silentLogger();
  const app = createGatewayApp({
    source,
    executor,
    authenticatorFactory: stubAuthenticatorFactory,
    policy: stubPolicy,
    recorder: createDecisionRecorder({ sinks: [sink], clock: systemClock, writerId: 'test' }),
    metrics: createGatewayMetrics(registry),
    clock: systemClock,
    logger,
    allowedHosts: ['127.0.0.1', 'localhost'],
    ...options,
  });
  const server: Server = createServer(createRouter({ apps: [app], registry, logger }));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: `${base}/mcp/team-a/demo`,
    base,
    app,
    records: sink.records,
    registry,
    executor,
    source,
    async close() {
      await app.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export async function connect(url: string, token?: string): Promise<Client> {
  const client = new Client({ name: 'test-agent', version: '1.0.0' });
  const headers: Record<string, string> =
    token === undefined ? {} : { authorization: `Bearer ${token}` };
  await client.connect(
    new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } }),
  );
  return client;
}

/** A raw JSON-RPC POST, for the attacks the SDK client would never send. */
export async function post(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; json: unknown }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      ...headers,
    },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, headers: res.headers, json };
}

export const INITIALIZE = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: {
    protocolVersion: '2025-06-18',
    capabilities: {},
    clientInfo: { name: 'raw', version: '1' },
  },
};
