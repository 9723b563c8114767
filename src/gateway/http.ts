/**
 * The HTTP listener's router: one or more gateway apps by path, plus the operational endpoints.
 *
 *   /mcp/<namespace>/<name>                          each app (and /mcp when there is exactly one)
 *   /.well-known/oauth-protected-resource<mcp path>  RFC 9728 metadata (public)
 *   /healthz, /readyz                                liveness / readiness (public)
 *   /metrics                                         Prometheus (public; only bounded labels,
 *                                                    no identities; see docs/adr/0011)
 *
 * Decision records cover the MCP paths (CORS preflights excepted: no credentials, no message);
 * health, metrics, metadata and unknown paths are not requests to an MCP server and are not
 * recorded.
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import type { Logger } from '../shared/logger.ts';
import { RESOURCE_METADATA_PREFIX, type GatewayApp } from './server.ts';

export interface RouterOptions {
  apps: readonly GatewayApp[];
  registry: Registry;
  logger: Logger;
  /** Readiness; defaults to always ready. */
  ready?: () => boolean;
}

export function mcpPathFor(serverKey: string): string {
  return `/mcp/${serverKey}`;
}

function text(
  res: ServerResponse,
  status: number,
  body: string,
  type = 'text/plain; charset=utf-8',
): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

export function createRouter(options: RouterOptions): RequestListener {
  const routes = new Map<string, GatewayApp>();
  for (const app of options.apps) routes.set(mcpPathFor(app.serverKey), app);
  if (options.apps.length === 1) routes.set('/mcp', options.apps[0]!);
  const ready = options.ready ?? (() => true);

  const route = async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?', 1)[0]!;
    const app = routes.get(path);
    if (app !== undefined) {
      return req.method === 'OPTIONS'
        ? app.handlePreflight(req, res)
        : app.handleMcp(req, res, path);
    }
    if (path === '/healthz') return text(res, 200, 'ok\n');
    if (path === '/readyz') return ready() ? text(res, 200, 'ok\n') : text(res, 503, 'not ready\n');
    if (path === '/metrics' && (req.method === 'GET' || req.method === 'HEAD')) {
      return text(res, 200, await options.registry.metrics(), options.registry.contentType);
    }
    if (path.startsWith(RESOURCE_METADATA_PREFIX) && req.method === 'GET') {
      const mcpPath = path.slice(RESOURCE_METADATA_PREFIX.length);
      const target = routes.get(mcpPath);
      if (target !== undefined) return target.handleResourceMetadata(req, res, mcpPath);
    }
    req.resume();
    return text(res, 404, 'not found\n');
  };

  return (req, res) => {
    route(req, res).catch((error: unknown) => {
      options.logger.error({ err: error }, 'unhandled request error');
      if (!res.headersSent) text(res, 500, 'internal error\n');
      else res.end();
    });
  };
}
