/**
 * The egress proxy: an HTTP CONNECT proxy that lets a sandboxed tool reach only the hosts and
 * ports it declared. It resolves names itself, connects only to public addresses (never
 * re-resolving), checks the TLS server name on TLS ports, and reports every attempt exactly once
 * through `onAttempt`. The decisions live in allowlist.ts, addresses.ts and sni.ts; this file
 * only does the I/O. See docs/adr/0019-egress-proxy.md.
 */
import { promises as dns } from 'node:dns';
import { createServer, STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect as tcpConnect, type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ErrorCode, McpworksError } from '../../shared/errors.ts';
import { systemClock, type Clock } from '../../shared/clock.ts';
import { silentLogger, type Logger } from '../../shared/logger.ts';
import { classifyAddress } from './addresses.ts';
import {
  EgressReason,
  decideEgress,
  normaliseDenials,
  parseConnectAuthority,
  parseEgressRules,
  type EgressRule,
} from './allowlist.ts';
import { MAX_CLIENT_HELLO_BYTES, parseClientHello } from './sni.ts';

/** How an opened tunnel ended. */
export type TunnelEnd = 'closed' | 'idle-timeout' | 'duration-limit' | 'error' | 'proxy-closed';

/**
 * One connection attempt, reported once. `allowed` is true when a tunnel to the destination was
 * opened and the client's bytes were forwarded; false when the proxy refused (a policy `reason`)
 * or could not open it (`resolution-failed`, `connect-failed`, `client-closed`, ...).
 */
export interface EgressAttempt {
  host: string;
  port: number;
  /** The address connected to (or, for `private-address`, the first one refused). */
  address?: string;
  /** The TLS server name the client sent, on TLS ports. */
  sni?: string;
  allowed: boolean;
  reason: EgressReason;
  /** A short human explanation (never the client's bytes). */
  detail?: string;
  /** For `policy-denied`: the guardrail that refused it (`ClusterAgentPolicy <name>`). */
  policy?: string;
  end?: TunnelEnd;
  bytesUp: number;
  bytesDown: number;
  durationMs: number;
}

export type Resolver = (host: string) => Promise<string[]>;

export interface EgressProxyOptions {
  /** The tool's egress rules; validated and normalised by the factory. */
  rules: unknown;
  onAttempt: (attempt: EgressAttempt) => void;
  /**
   * Guardrails for this call (ToolCallRequest.egressDenied): a matching host is refused
   * `policy-denied` even when the rules declare it.
   */
  denied?: ReadonlyArray<{ hosts: readonly string[]; policy: string; reason: string }>;
  /** Name resolution; default: every address the system resolver returns. */
  resolve?: Resolver;
  /** Ports whose tunnels must start with a TLS ClientHello naming the CONNECT host. */
  tlsPorts?: readonly number[];
  /** Tunnels open (or being opened) at once; more are refused with 503. */
  maxTunnels?: number;
  /** A tunnel with no bytes either way for this long is closed. */
  idleTimeoutMs?: number;
  /** No tunnel lives longer than this, counted from the CONNECT. */
  maxDurationMs?: number;
  /** Resolution and TCP connect each get this long. */
  connectTimeoutMs?: number;
  /** The ClientHello must arrive within this long after the tunnel is established. */
  helloTimeoutMs?: number;
  clock?: Clock;
  logger?: Logger;
  /**
   * TEST ONLY. Exact addresses treated as public although they are not (tests reach a server on
   * 127.0.0.1). Deliberately a constructor option with no configuration or flag that sets it:
   * production wiring must never pass it.
   */
  testOnlyAllowedAddresses?: readonly string[];
}

export interface EgressProxy {
  /** Listens on a unix socket path or a TCP port (host defaults to 127.0.0.1). */
  listen(target: { path: string } | { port: number; host?: string }): Promise<string | AddressInfo>;
  /** Stops accepting, closes every tunnel (reported with end `proxy-closed`). */
  close(): Promise<void>;
  readonly activeTunnels: number;
}

export const EGRESS_DEFAULTS = {
  tlsPorts: [443] as readonly number[],
  maxTunnels: 16,
  idleTimeoutMs: 60_000,
  maxDurationMs: 300_000,
  connectTimeoutMs: 10_000,
  helloTimeoutMs: 10_000,
};

const systemResolver: Resolver = async (host) =>
  (await dns.lookup(host, { all: true, verbatim: true })).map((entry) => entry.address);

function positiveInt(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new McpworksError(
      ErrorCode.InvalidInput,
      `egress proxy: ${name} must be a positive integer`,
    );
  }
  return value;
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

function connectTo(address: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect({ host: address, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`connect to ${address} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      socket.setNoDelay(true);
      resolve(socket);
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    });
  });
}

function refusal(status: number, reason: EgressReason, message: string): string {
  const body = `${message}\n`;
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n` +
    `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
    `X-Egress-Reason: ${reason}\r\nConnection: close\r\n\r\n${body}`
  );
}

const REFUSAL_STATUS: Partial<Record<EgressReason, number>> = {
  'bad-request': 400,
  'invalid-host': 400,
  'raw-ip': 403,
  'not-declared': 403,
  'policy-denied': 403,
  'port-not-declared': 403,
  'private-address': 403,
  'resolution-failed': 502,
  'connect-failed': 502,
  'too-many-tunnels': 503,
  'duration-limit': 504,
  'proxy-closed': 503,
};

/** How long close() waits for aborted tunnels to report. */
const CLOSE_DRAIN_MS = 2000;

interface Tunnel {
  abort(end: TunnelEnd, reason: EgressReason): void;
}

/** An attempt before anything of it is known: refused as a bad request unless it gets further. */
function badRequestAttempt(): EgressAttempt {
  return {
    host: '',
    port: 0,
    allowed: false,
    reason: EgressReason.BadRequest,
    bytesUp: 0,
    bytesDown: 0,
    durationMs: 0,
  };
}

export function createEgressProxy(options: EgressProxyOptions): EgressProxy {
  const rules: EgressRule[] = parseEgressRules(options.rules);
  const denials = normaliseDenials(options.denied ?? []);
  const resolve = options.resolve ?? systemResolver;
  const tlsPorts = new Set(options.tlsPorts ?? EGRESS_DEFAULTS.tlsPorts);
  type Limit =
    'maxTunnels' | 'idleTimeoutMs' | 'maxDurationMs' | 'connectTimeoutMs' | 'helloTimeoutMs';
  const limit = (name: Limit) => positiveInt(name, options[name] ?? EGRESS_DEFAULTS[name]);
  const maxTunnels = limit('maxTunnels');
  const idleTimeoutMs = limit('idleTimeoutMs');
  const maxDurationMs = limit('maxDurationMs');
  const connectTimeoutMs = limit('connectTimeoutMs');
  const helloTimeoutMs = limit('helloTimeoutMs');
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? silentLogger();
  const testOnlyAllowed = new Set(options.testOnlyAllowedAddresses ?? []);
  const tunnels = new Set<Tunnel>();
  /** close() waits on these until every tunnel has been reported. */
  const drainWaiters: Array<() => void> = [];
  let closing = false;

  const report = (attempt: EgressAttempt) => {
    try {
      options.onAttempt(attempt);
    } catch (error) {
      logger.warn({ err: error }, 'egress attempt recorder failed');
    }
    const { host, port, allowed, reason, end } = attempt;
    logger.debug({ host, port, allowed, reason, end }, 'egress attempt');
  };

  const isAllowedAddress = (address: string) =>
    testOnlyAllowed.has(address) || classifyAddress(address).public;

  function handleConnect(request: IncomingMessage, client: Duplex, head: Buffer): void {
    const started = clock.monotonicMs();
    const attempt = badRequestAttempt();
    let upstream: Socket | undefined;
    /** The 200 went out: from here on a refusal can only close the tunnel. */
    let responded = false;
    let established = false;
    let finished = false;
    const timers: NodeJS.Timeout[] = [];

    const finish = (fields: Partial<EgressAttempt>) => {
      if (finished) return;
      finished = true;
      for (const timer of timers) clearTimeout(timer);
      tunnels.delete(tunnel);
      if (tunnels.size === 0) for (const wake of drainWaiters.splice(0)) wake();
      Object.assign(attempt, fields);
      attempt.durationMs = Math.max(0, clock.monotonicMs() - started);
      report(attempt);
    };
    const refuse = (reason: EgressReason, message: string, detail?: string) => {
      const status = REFUSAL_STATUS[reason];
      if (!responded && status !== undefined && client.writable) {
        client.end(refusal(status, reason, message));
      } else {
        client.destroy();
      }
      upstream?.destroy();
      finish({ allowed: false, reason, ...(detail === undefined ? {} : { detail }) });
    };
    const tunnel: Tunnel = {
      abort(end, reason) {
        if (established && !finished) {
          client.destroy();
          upstream?.destroy();
          finish({ allowed: true, reason: EgressReason.Allowed, end });
        } else {
          refuse(reason, `egress to ${attempt.host}:${attempt.port} refused: ${reason}`);
        }
      },
    };

    client.on('error', () => {
      if (!established) refuse(EgressReason.ClientClosed, 'client connection failed');
    });
    client.once('close', () => {
      if (!established) refuse(EgressReason.ClientClosed, 'client went away');
    });

    if (closing || tunnels.size >= maxTunnels) {
      const reason = closing ? EgressReason.ProxyClosed : EgressReason.TooManyTunnels;
      tunnels.add(tunnel);
      refuse(
        reason,
        closing ? 'egress proxy is closing' : `too many tunnels (limit ${maxTunnels})`,
      );
      return;
    }
    tunnels.add(tunnel);
    timers.push(
      setTimeout(() => tunnel.abort('duration-limit', EgressReason.DurationLimit), maxDurationMs),
    );

    const target = parseConnectAuthority(request.url ?? '');
    if (target === undefined) {
      refuse(EgressReason.BadRequest, 'CONNECT target must be host:port');
      return;
    }
    attempt.host = target.host.toLowerCase();
    attempt.port = target.port;
    const decision = decideEgress(rules, target.host, target.port, denials);
    attempt.host = decision.host.toLowerCase();
    const label = `${attempt.host}:${attempt.port}`;
    if (decision.reason === 'policy-denied') {
      attempt.policy = decision.policy;
      refuse(
        decision.reason,
        `egress to ${label} refused: policy-denied by ${decision.policy}`,
        decision.detail,
      );
      return;
    }
    if (!decision.allowed) {
      refuse(decision.reason, `egress to ${label} refused: ${decision.reason}`);
      return;
    }

    void (async () => {
      let addresses: string[];
      try {
        addresses = await withTimeout(resolve(decision.host), connectTimeoutMs, 'resolution');
        if (addresses.length === 0) throw new Error('no addresses');
      } catch (error) {
        if (!finished) {
          const detail = error instanceof Error ? error.message : String(error);
          refuse(
            EgressReason.ResolutionFailed,
            `egress to ${label}: cannot resolve ${attempt.host}`,
            detail,
          );
        }
        return;
      }
      if (finished) return;
      const usable = addresses.filter(isAllowedAddress);
      if (usable.length === 0) {
        const first = addresses[0]!;
        const cls = classifyAddress(first);
        const range = cls.public ? 'public' : cls.range;
        attempt.address = first;
        refuse(
          EgressReason.PrivateAddress,
          `egress to ${label} refused: private-address (${attempt.host} resolves only to non-public addresses)`,
          `${first} is ${range}`,
        );
        return;
      }
      let lastError = 'no address';
      for (const address of usable) {
        try {
          const socket = await connectTo(address, target.port, connectTimeoutMs);
          if (finished) {
            socket.destroy();
            return;
          }
          upstream = socket;
          attempt.address = address;
          break;
        } catch (error) {
          lastError = error instanceof Error ? error.message : String(error);
          if (finished) return;
        }
      }
      if (upstream === undefined) {
        refuse(EgressReason.ConnectFailed, `egress to ${label}: cannot connect`, lastError);
        return;
      }
      const up = upstream;
      up.on('error', () => undefined);
      up.once('close', () => {
        if (!established)
          refuse(EgressReason.ConnectFailed, `egress to ${label}: connection closed`);
      });
      responded = true;
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (tlsPorts.has(target.port)) {
        checkHello(up, decision.host, label);
      } else {
        open(up, head);
      }
    })();

    function checkHello(up: Socket, host: string, label: string): void {
      let buffered = head;
      const helloTimer = setTimeout(
        () => refuse(EgressReason.HelloTimeout, `egress to ${label}: no TLS ClientHello`),
        helloTimeoutMs,
      );
      timers.push(helloTimer);
      const onData = (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        examine();
      };
      const examine = () => {
        const hello = parseClientHello(buffered);
        if (hello.kind === 'incomplete') {
          if (buffered.length > MAX_CLIENT_HELLO_BYTES) {
            stop();
            refuse(EgressReason.NotTls, `egress to ${label}: ClientHello too large`);
          }
          return;
        }
        stop();
        if (hello.kind !== 'client-hello') {
          const detail = hello.kind === 'malformed' ? hello.detail : undefined;
          refuse(EgressReason.NotTls, `egress to ${label}: not a TLS ClientHello`, detail);
        } else if (hello.serverName === undefined) {
          refuse(
            EgressReason.SniMissing,
            `egress to ${label}: TLS ClientHello without a server name`,
          );
        } else if (hello.serverName.replace(/\.$/, '') !== host) {
          attempt.sni = hello.serverName;
          refuse(
            EgressReason.SniMismatch,
            `egress to ${label}: TLS server name differs`,
            hello.serverName,
          );
        } else {
          attempt.sni = hello.serverName;
          open(up, buffered);
        }
      };
      const stop = () => {
        clearTimeout(helloTimer);
        client.pause();
        client.removeListener('data', onData);
      };
      client.on('data', onData);
      if (buffered.length > 0) examine();
    }

    function open(up: Socket, first: Buffer): void {
      established = true;
      let end: TunnelEnd = 'closed';
      const idle = setTimeout(() => {
        end = 'idle-timeout';
        client.destroy();
        up.destroy();
      }, idleTimeoutMs);
      timers.push(idle);
      tunnel.abort = (how) => {
        end = how;
        client.destroy();
        up.destroy();
      };
      // The duration timer was armed at CONNECT; from here on it closes the tunnel.
      const fail = () => {
        end = end === 'closed' ? 'error' : end;
        client.destroy();
        up.destroy();
      };
      client.on('error', fail);
      up.on('error', fail);
      if (first.length > 0) {
        attempt.bytesUp += first.length;
        up.write(first);
      }
      client.on('data', (chunk: Buffer) => {
        attempt.bytesUp += chunk.length;
        idle.refresh();
      });
      up.on('data', (chunk: Buffer) => {
        attempt.bytesDown += chunk.length;
        idle.refresh();
      });
      client.pipe(up);
      up.pipe(client);
      let open = 2;
      const closed = (other: Duplex) => () => {
        // One side is gone: let the other flush what it holds, then close it.
        if (other.writableFinished || other.destroyed) other.destroy();
        else {
          other.once('finish', () => other.destroy());
          other.end();
        }
        open -= 1;
        if (open === 0) finish({ allowed: true, reason: EgressReason.Allowed, end });
      };
      for (const [side, other] of [
        [client, up],
        [up, client],
      ] as const) {
        if (side.closed) closed(other)();
        else side.once('close', closed(other));
      }
    }
  }

  /** Plain-HTTP proxy requests (and upgrades) are not forwarded: 405, and recorded. */
  function reportPlainHttp(request: IncomingMessage): void {
    let host = '';
    let port = 0;
    try {
      const url = new URL(request.url ?? '');
      host = url.hostname.toLowerCase();
      port = Number(url.port) || (url.protocol === 'https:' ? 443 : 80);
    } catch {
      // Not an absolute URI: nothing to name.
    }
    report({
      host,
      port,
      allowed: false,
      reason: EgressReason.MethodNotAllowed,
      detail: request.method ?? '',
      bytesUp: 0,
      bytesDown: 0,
      durationMs: 0,
    });
  }
  const PLAIN_HTTP_REFUSED = 'this egress proxy only tunnels with CONNECT (use HTTPS)';

  function handleRequest(request: IncomingMessage, response: ServerResponse): void {
    response.writeHead(405, {
      'content-type': 'text/plain; charset=utf-8',
      allow: 'CONNECT',
      'x-egress-reason': EgressReason.MethodNotAllowed,
      connection: 'close',
    });
    response.end(`${PLAIN_HTTP_REFUSED}\n`);
    reportPlainHttp(request);
  }

  function handleUpgrade(request: IncomingMessage, socket: Duplex): void {
    socket.on('error', () => undefined);
    socket.end(refusal(405, EgressReason.MethodNotAllowed, PLAIN_HTTP_REFUSED));
    reportPlainHttp(request);
  }

  const server = createServer({ requestTimeout: 30_000, headersTimeout: 10_000 });
  server.on('connect', handleConnect);
  server.on('request', handleRequest);
  server.on('upgrade', handleUpgrade);
  server.on('clientError', (_error, socket) => {
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    socket.end(refusal(400, EgressReason.BadRequest, 'malformed proxy request'));
    report(badRequestAttempt());
  });

  return {
    get activeTunnels() {
      return tunnels.size;
    },
    listen(target) {
      return new Promise((resolveListen, reject) => {
        server.once('error', reject);
        const done = () => {
          server.removeListener('error', reject);
          const address = server.address();
          resolveListen(address ?? '');
        };
        if ('path' in target) server.listen({ path: target.path }, done);
        else server.listen({ port: target.port, host: target.host ?? '127.0.0.1' }, done);
      });
    },
    async close() {
      closing = true;
      const closed = new Promise<void>((resolveClose) => server.close(() => resolveClose()));
      server.closeAllConnections();
      for (const tunnel of [...tunnels]) tunnel.abort('proxy-closed', EgressReason.ProxyClosed);
      await closed;
      // An aborted tunnel reports when both of its sockets have closed (a tick later): close()
      // resolves only once every attempt is reported, so a caller's record is complete. Bounded,
      // in case a socket never emits its close.
      if (tunnels.size > 0) {
        await new Promise<void>((resolveDrain) => {
          const timer = setTimeout(resolveDrain, CLOSE_DRAIN_MS);
          drainWaiters.push(() => {
            clearTimeout(timer);
            resolveDrain();
          });
        });
      }
    },
  };
}
