// The recording HTTPS and HTTP servers of the egress world: each connection and request is
// recorded (synchronously, before the response is sent) and answered by a WorldApp. The world
// (egress-world-inside.ts) runs them in its own namespaces; the real-node tests run them in the
// test process on the outside addresses the node harness gives the host (startOutsideServers).
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import {
  WORLD,
  WORLD_CERT,
  WORLD_KEY,
  type RecordedRequest,
  type WorldApp,
  type WorldEvent,
} from './egress-world.ts';

const MAX_BODY = 64 * 1024;

export const echoApp: WorldApp = (request) => ({
  status: 200,
  body: { world: true, method: request.method, host: request.host, path: request.path },
});

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      if (size < MAX_BODY) chunks.push(chunk);
      size += chunk.length;
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8').slice(0, MAX_BODY)));
    req.on('error', reject);
  });
}

/** Records what `server` gets and answers each request with `app`. */
export function serveRecording(
  server: Server,
  protocol: 'https' | 'http',
  app: WorldApp,
  record: (e: WorldEvent) => void,
): void {
  server.on('connection', (socket: Socket) => {
    record({
      kind: 'connection',
      protocol,
      localAddress: socket.localAddress ?? '',
      localPort: socket.localPort ?? 0,
      remoteAddress: socket.remoteAddress ?? '',
    });
  });
  server.on('request', (req: IncomingMessage, res) => {
    void (async () => {
      const socket = req.socket;
      const request: RecordedRequest = {
        kind: 'request',
        protocol,
        localAddress: socket.localAddress ?? '',
        localPort: socket.localPort ?? 0,
        ...(protocol === 'https'
          ? { servername: ((socket as TLSSocket).servername as string | false) || '' }
          : {}),
        method: req.method ?? '',
        host: req.headers.host ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body: await readBody(req),
      };
      record(request);
      let response;
      try {
        response = await app(request);
      } catch (err) {
        response = { status: 500, body: { error: String(err) } };
      }
      const body =
        typeof response.body === 'string' ? response.body : JSON.stringify(response.body ?? {});
      res.writeHead(response.status, {
        'content-type': typeof response.body === 'string' ? 'text/plain' : 'application/json',
        ...response.headers,
      });
      res.end(body);
    })();
  });
}

/** The world's HTTPS server (its fixture certificate) and HTTP server, not yet listening. */
export function recordingServers(
  app: WorldApp,
  record: (e: WorldEvent) => void,
): { https: Server; http: Server } {
  const https = createHttpsServer({ cert: readFileSync(WORLD_CERT), key: readFileSync(WORLD_KEY) });
  const http = createHttpServer();
  serveRecording(https, 'https', app, record);
  serveRecording(http, 'http', app, record);
  return { https, http };
}

export const listen = (server: Server, port: number, host = '0.0.0.0') =>
  new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });

export interface OutsideServers {
  /** Everything recorded so far, in order. */
  events(): WorldEvent[];
  requests(): RecordedRequest[];
  close(): Promise<void>;
}

/**
 * The world's servers in this process, on the world's HTTPS and HTTP ports of each of
 * `addresses` (which must be the host's: see `outsideAddresses` of startNodeCluster).
 */
export async function startOutsideServers(
  addresses: readonly string[],
  app: WorldApp = echoApp,
): Promise<OutsideServers> {
  const events: WorldEvent[] = [];
  const servers: Server[] = [];
  const close = async () => {
    await Promise.all(
      servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.closeAllConnections();
            s.close(() => resolve());
          }),
      ),
    );
  };
  try {
    for (const address of addresses) {
      const { https, http } = recordingServers(app, (e) => events.push(e));
      servers.push(https, http);
      await listen(https, WORLD.httpsPort, address);
      await listen(http, WORLD.httpPort, address);
    }
  } catch (err) {
    await close();
    throw err;
  }
  return {
    events: () => [...events],
    requests: () => events.filter((e): e is RecordedRequest => e.kind === 'request'),
    close,
  };
}
