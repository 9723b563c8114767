/**
 * Closing an HTTP server without losing a request to a reset. `server.close()` cuts idle
 * keep-alive connections at once, and a client may be writing its next request on one at that
 * very moment: the request is lost, and a client cannot tell it never ran, so it must not send a
 * POST again. Instead, once closing begins every response (those still being prepared too)
 * carries `connection: close`, so a connection ends with the answer it carries; a client closes
 * its idle connections itself when the keep-alive timeout the server advertises runs out; only
 * what is left after that is cut.
 */
import type { Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export interface GracefulClose {
  /** From now on every response closes its connection. */
  beginClosing(): void;
  /**
   * Resolves when every connection is closed (running requests answered, idle ones closed by
   * their clients), or after `maxWaitMs` (default: the server's keep-alive timeout plus a
   * second, the longest a client that honours it keeps an idle connection), whichever is first.
   */
  connectionsClosed(maxWaitMs?: number): Promise<void>;
  readonly openConnections: number;
  /** Stops listening and cuts whatever connection is left. */
  closeNow(): Promise<void>;
}

/** The longest `connectionsClosed()` waits, for a server with the given keep-alive timeout. */
export const idleCloseWaitMs = (keepAliveTimeoutMs: number) => keepAliveTimeoutMs + 1000;
/** The same for a server with Node's default keep-alive timeout (5 s), as the executor runs. */
export const DEFAULT_IDLE_CLOSE_WAIT_MS = idleCloseWaitMs(5000);

/** Must be called before the server accepts connections. */
export function gracefulClose(server: Server): GracefulClose {
  const connections = new Set<Socket>();
  const unanswered = new Set<ServerResponse>();
  let closing = false;
  let allClosed: (() => void) | undefined;

  server.on('connection', (socket: Socket) => {
    connections.add(socket);
    socket.once('close', () => {
      connections.delete(socket);
      if (connections.size === 0) allClosed?.();
    });
  });
  // Ahead of the request handler, which may write its headers before returning.
  server.prependListener('request', (_req, res: ServerResponse) => {
    if (closing) {
      res.setHeader('connection', 'close');
      return;
    }
    unanswered.add(res);
    const settled = () => unanswered.delete(res);
    res.once('finish', settled);
    res.once('close', settled);
  });

  return {
    beginClosing() {
      closing = true;
      for (const res of unanswered) if (!res.headersSent) res.setHeader('connection', 'close');
      unanswered.clear();
    },
    connectionsClosed(maxWaitMs = idleCloseWaitMs(server.keepAliveTimeout)) {
      if (connections.size === 0) return Promise.resolve();
      return new Promise<void>((resolve) => {
        allClosed = resolve;
        setTimeout(resolve, maxWaitMs).unref();
      });
    },
    get openConnections() {
      return connections.size;
    },
    closeNow() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      return closed;
    },
  };
}
