import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Route = () => Promise<{ status: number; body: string; contentType?: string }>;

/**
 * `:8080`, `127.0.0.1:0`, `0.0.0.0:9090`, or `0` (disabled), as controller-runtime's
 * `--metrics-bind-address` reads it.
 */
export function parseBindAddress(value: string): { host: string; port: number } | undefined {
  if (value === '0' || value === '') return undefined;
  const colon = value.lastIndexOf(':');
  if (colon < 0) throw new Error(`bind address ${JSON.stringify(value)} must be [host]:port or 0`);
  const host = value.slice(0, colon) || '0.0.0.0';
  const port = Number(value.slice(colon + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`bind address ${JSON.stringify(value)} has no valid port`);
  return { host, port };
}

/** A small GET-only HTTP server for probes and metrics; unknown paths are 404. */
export async function startHttpServer(
  bind: { host: string; port: number },
  routes: Record<string, Route>,
): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const route = req.method === 'GET' ? routes[path] : undefined;
    if (!route) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    route().then(
      (r) => res.writeHead(r.status, { 'content-type': r.contentType ?? 'text/plain' }).end(r.body),
      () => res.writeHead(500, { 'content-type': 'text/plain' }).end('internal error\n'),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(bind.port, bind.host, () => resolve());
  });
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
