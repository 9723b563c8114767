/**
 * The egress proxy on real sockets: a real HTTPS server and a TCP echo server on 127.0.0.1 behind
 * it, clients speaking CONNECT to its unix socket (or TCP port) and TLS through the tunnel. Only
 * name resolution is a stub (test names to fixed addresses); 127.0.0.1 is let through with the
 * test-only `testOnlyAllowedAddresses` option, every other non-public address stays refused.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import {
  createServer as createTcpServer,
  type AddressInfo,
  type Server,
  type Socket,
} from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { after, afterEach, before, describe, test } from 'node:test';
import { isMcpworksError } from '../../shared/errors.ts';
import {
  createEgressProxy,
  type EgressAttempt,
  type EgressProxy,
  type EgressProxyOptions,
} from './proxy.ts';

const fixture = (name: string) =>
  readFileSync(new URL(`../../../test/fixtures/egress/${name}`, import.meta.url));
const cert = fixture('server.crt');
const key = fixture('server.key');

const upstreamSockets: Socket[] = [];
const https = createHttpsServer({ key, cert }, (request, response) => {
  response.end(`hello ${request.headers.host ?? ''}`);
});
https.on('connection', (socket: Socket) => upstreamSockets.push(socket));
const echo = createTcpServer((socket) => socket.pipe(socket));
let httpsPort = 0;
let echoPort = 0;
let closedPort = 0;

const NAMES: Record<string, string[]> = {
  'allowed.test': ['127.0.0.1'],
  'other.test': ['127.0.0.1'],
  'api.wild.test': ['127.0.0.1'],
  'echo.test': ['127.0.0.1'],
  'meta.test': ['169.254.169.254'],
  'private.test': ['10.0.0.5', '::ffff:127.0.0.2'],
  'mixed.test': ['10.0.0.5', '127.0.0.1'],
};
const resolve = async (host: string) => {
  const addresses = NAMES[host];
  if (addresses === undefined) throw new Error(`getaddrinfo ENOTFOUND ${host}`);
  return addresses;
};

const listen = async (server: Server) => {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
};

let dir = '';
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'egress-'));
  httpsPort = await listen(https);
  echoPort = await listen(echo);
  const spare = createTcpServer();
  closedPort = await listen(spare);
  spare.close();
});
after(() => {
  https.close();
  echo.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Started {
  proxy: EgressProxy;
  attempts: EgressAttempt[];
  socketPath: string;
  /** Records an attempt (also usable as another proxy's recorder). */
  record(attempt: EgressAttempt): void;
  /** Resolves once `count` attempts have been reported. */
  reported(count: number): Promise<EgressAttempt[]>;
}
let current: Started | undefined;
let serial = 0;

async function start(overrides: Partial<EgressProxyOptions> = {}): Promise<Started> {
  const attempts: EgressAttempt[] = [];
  const waiters: (() => void)[] = [];
  const record = (attempt: EgressAttempt) => {
    attempts.push(attempt);
    for (const wake of waiters.splice(0)) wake();
  };
  const proxy = createEgressProxy({
    rules: [
      { host: 'allowed.test', ports: [httpsPort] },
      { host: '*.wild.test', ports: [httpsPort] },
      { host: 'echo.test', ports: [echoPort] },
      { host: 'mixed.test', ports: [echoPort] },
      { host: 'meta.test', ports: [httpsPort] },
      { host: 'private.test', ports: [httpsPort] },
      { host: 'missing.test', ports: [httpsPort] },
      { host: 'closed.test', ports: [closedPort] },
    ],
    resolve: async (host) => (host === 'closed.test' ? ['127.0.0.1'] : resolve(host)),
    tlsPorts: [httpsPort],
    testOnlyAllowedAddresses: ['127.0.0.1'],
    onAttempt: (attempt) => record(attempt),
    ...overrides,
  });
  const socketPath = join(dir, `proxy-${serial++}.sock`);
  await proxy.listen({ path: socketPath });
  const reported = async (count: number) => {
    while (attempts.length < count) await new Promise<void>((wake) => waiters.push(wake));
    return attempts;
  };
  current = { proxy, attempts, socketPath, record, reported };
  return current;
}

afterEach(async () => {
  await current?.proxy.close();
  current = undefined;
});

interface Connected {
  status: number;
  headers: IncomingHttpHeaders;
  socket: Socket;
  head: Buffer;
}

function connectThrough(
  target: { socketPath: string } | { port: number },
  authority: string,
): Promise<Connected> {
  return new Promise((resolveConnect, reject) => {
    const request = httpRequest({
      ...('socketPath' in target
        ? { socketPath: target.socketPath }
        : { host: '127.0.0.1', port: target.port }),
      method: 'CONNECT',
      path: authority,
    });
    request.once('connect', (response, socket: Socket, head: Buffer) => {
      resolveConnect({ status: response.statusCode ?? 0, headers: response.headers, socket, head });
    });
    request.once('error', reject);
    request.end();
  });
}

async function readAll(socket: Socket, head: Buffer = Buffer.alloc(0)): Promise<string> {
  const chunks: Buffer[] = [head];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  // The proxy closing a tunnel is what most tests wait for: a write racing it fails (EPIPE),
  // which `once(socket, 'close')` would turn into a rejection. Wait for the close alone.
  socket.on('error', () => undefined);
  if (!socket.destroyed) await new Promise((resolve) => socket.once('close', resolve));
  return Buffer.concat(chunks).toString('utf8');
}

/** A refused CONNECT: its status, reason header and body. */
async function refused(started: Started, authority: string) {
  const connected = await connectThrough({ socketPath: started.socketPath }, authority);
  const body = await readAll(connected.socket, connected.head);
  return { status: connected.status, reason: connected.headers['x-egress-reason'], body };
}

/** An HTTPS GET through an established tunnel; rejects when the TLS handshake does not complete. */
function httpsGet(socket: Socket, servername: string, host = servername): Promise<string> {
  return new Promise((resolveGet, reject) => {
    const tls = tlsConnect({
      socket,
      servername,
      ca: cert,
      ...(servername === '' ? { checkServerIdentity: () => undefined } : {}),
    });
    const chunks: Buffer[] = [];
    let secure = false;
    tls.on('secureConnect', () => {
      secure = true;
      tls.write(`GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    });
    tls.on('data', (chunk: Buffer) => chunks.push(chunk));
    tls.on('error', reject);
    tls.on('close', () => {
      if (secure) resolveGet(Buffer.concat(chunks).toString('utf8'));
      else reject(new Error('tunnel closed before the TLS handshake completed'));
    });
  });
}

describe('egress proxy: allowed tunnels', () => {
  test('a declared host reaches the HTTPS server; the attempt names address, SNI and exact byte counts', async () => {
    const started = await start();
    const before = upstreamSockets.length;
    const connected = await connectThrough(
      { socketPath: started.socketPath },
      'allowed.test:' + httpsPort,
    );
    assert.equal(connected.status, 200);
    const response = await httpsGet(connected.socket, 'allowed.test');
    assert.match(response, /^HTTP\/1\.1 200 OK/);
    assert.match(response, /hello allowed\.test$/);
    const [attempt] = await started.reported(1);
    const upstream = upstreamSockets[before]!;
    assert.equal(upstreamSockets.length, before + 1);
    assert.deepEqual(
      { ...attempt, durationMs: 0 },
      {
        host: 'allowed.test',
        port: httpsPort,
        address: '127.0.0.1',
        sni: 'allowed.test',
        allowed: true,
        reason: 'allowed',
        end: 'closed',
        bytesUp: upstream.bytesRead,
        bytesDown: upstream.bytesWritten,
        durationMs: 0,
      },
    );
    assert.ok(attempt!.bytesUp > 0 && attempt!.bytesDown > 0);
    assert.ok(attempt!.durationMs >= 0);
  });

  test('a wildcard rule covers a subdomain, in any letter case', async () => {
    const started = await start();
    const connected = await connectThrough(
      { socketPath: started.socketPath },
      'API.Wild.Test:' + httpsPort,
    );
    assert.equal(connected.status, 200);
    assert.match(await httpsGet(connected.socket, 'api.wild.test'), /hello api\.wild\.test$/);
    const [attempt] = await started.reported(1);
    assert.equal(attempt!.host, 'api.wild.test');
    assert.equal(attempt!.allowed, true);
  });

  test('a non-TLS port tunnels raw bytes and counts them exactly (proxy on a TCP port)', async () => {
    const started = await start();
    const tcp = createEgressProxy({
      rules: [{ host: 'echo.test', ports: [echoPort] }],
      resolve,
      testOnlyAllowedAddresses: ['127.0.0.1'],
      onAttempt: started.record,
    });
    const address = (await tcp.listen({ port: 0 })) as AddressInfo;
    try {
      const connected = await connectThrough({ port: address.port }, `echo.test:${echoPort}`);
      assert.equal(connected.status, 200);
      connected.socket.end('x'.repeat(10_000));
      assert.equal(await readAll(connected.socket, connected.head), 'x'.repeat(10_000));
      const [attempt] = await started.reported(1);
      assert.equal(attempt!.allowed, true);
      assert.equal(attempt!.end, 'closed');
      assert.equal(attempt!.sni, undefined);
      assert.equal(attempt!.bytesUp, 10_000);
      assert.equal(attempt!.bytesDown, 10_000);
    } finally {
      await tcp.close();
    }
  });

  test('a name resolving to private and public addresses is connected to a public one only', async () => {
    const started = await start();
    const connected = await connectThrough(
      { socketPath: started.socketPath },
      `mixed.test:${echoPort}`,
    );
    assert.equal(connected.status, 200);
    connected.socket.end('ping');
    assert.equal(await readAll(connected.socket, connected.head), 'ping');
    const [attempt] = await started.reported(1);
    assert.equal(attempt!.address, '127.0.0.1');
    assert.equal(attempt!.allowed, true);
  });
});

describe('egress proxy: refusals', () => {
  test('an undeclared host is refused with 403 and never reaches the server', async () => {
    const started = await start();
    const before = upstreamSockets.length;
    const result = await refused(started, `other.test:${httpsPort}`);
    assert.equal(result.status, 403);
    assert.equal(result.reason, 'not-declared');
    assert.match(result.body, /egress to other\.test:\d+ refused: not-declared/);
    const [attempt] = await started.reported(1);
    assert.deepEqual(
      { ...attempt, durationMs: 0 },
      {
        host: 'other.test',
        port: httpsPort,
        allowed: false,
        reason: 'not-declared',
        bytesUp: 0,
        bytesDown: 0,
        durationMs: 0,
      },
    );
    assert.equal(upstreamSockets.length, before);
  });

  test('a guardrail denial refuses a declared host with 403 policy-denied, naming the policy', async () => {
    const started = await start({
      denied: [
        {
          hosts: ['allowed.test'],
          policy: 'ClusterAgentPolicy no-allowed',
          reason: 'test guardrail',
        },
      ],
    });
    const before = upstreamSockets.length;
    const result = await refused(started, `allowed.test:${httpsPort}`);
    assert.equal(result.status, 403);
    assert.equal(result.reason, 'policy-denied');
    assert.match(result.body, /policy-denied by ClusterAgentPolicy no-allowed/);
    const [attempt] = await started.reported(1);
    assert.deepEqual(
      { ...attempt, durationMs: 0 },
      {
        host: 'allowed.test',
        port: httpsPort,
        allowed: false,
        reason: 'policy-denied',
        policy: 'ClusterAgentPolicy no-allowed',
        detail: 'test guardrail',
        bytesUp: 0,
        bytesDown: 0,
        durationMs: 0,
      },
    );
    assert.equal(upstreamSockets.length, before);
  });

  test('a declared host on an undeclared port is refused', async () => {
    const started = await start();
    const result = await refused(started, `allowed.test:${echoPort}`);
    assert.equal(result.status, 403);
    assert.equal(result.reason, 'port-not-declared');
    assert.equal((await started.reported(1))[0]!.reason, 'port-not-declared');
  });

  test('raw IP targets are refused, v4 and v6', async () => {
    const started = await start();
    for (const authority of [`127.0.0.1:${httpsPort}`, `[::1]:${httpsPort}`]) {
      const result = await refused(started, authority);
      assert.equal(result.status, 403, authority);
      assert.equal(result.reason, 'raw-ip', authority);
    }
    const attempts = await started.reported(2);
    assert.deepEqual(
      attempts.map((attempt) => [attempt.host, attempt.reason, attempt.allowed]),
      [
        ['127.0.0.1', 'raw-ip', false],
        ['[::1]', 'raw-ip', false],
      ],
    );
  });

  test('a declared name resolving to the metadata address is refused (private-address)', async () => {
    const started = await start();
    const result = await refused(started, `meta.test:${httpsPort}`);
    assert.equal(result.status, 403);
    assert.equal(result.reason, 'private-address');
    const [attempt] = await started.reported(1);
    assert.equal(attempt!.address, '169.254.169.254');
    assert.equal(attempt!.detail, '169.254.169.254 is metadata');
  });

  test('a declared name resolving only to private addresses is refused, v4-mapped forms included', async () => {
    const started = await start();
    const result = await refused(started, `private.test:${httpsPort}`);
    assert.equal(result.reason, 'private-address');
    const [attempt] = await started.reported(1);
    assert.equal(attempt!.detail, '10.0.0.5 is private');
  });

  test('a name that does not resolve is a 502 resolution-failed', async () => {
    const started = await start();
    const result = await refused(started, `missing.test:${httpsPort}`);
    assert.equal(result.status, 502);
    assert.equal(result.reason, 'resolution-failed');
    assert.match((await started.reported(1))[0]!.detail ?? '', /ENOTFOUND/);
  });

  test('a closed port is a 502 connect-failed', async () => {
    const started = await start();
    const result = await refused(started, `closed.test:${closedPort}`);
    assert.equal(result.status, 502);
    assert.equal(result.reason, 'connect-failed');
    const [attempt] = await started.reported(1);
    assert.equal(attempt!.allowed, false);
    assert.match(attempt!.detail ?? '', /ECONNREFUSED/);
  });

  test('malformed CONNECT targets are a 400', async () => {
    const started = await start();
    const result = await refused(started, 'allowed.test');
    assert.equal(result.status, 400);
    assert.equal(result.reason, 'bad-request');
    assert.equal((await started.reported(1))[0]!.reason, 'bad-request');
  });

  test('plain HTTP proxy requests are refused with 405 and recorded', async () => {
    const started = await start();
    const response = await new Promise<{ status: number; reason: unknown }>(
      (resolveRequest, reject) => {
        const request = httpRequest(
          {
            socketPath: started.socketPath,
            path: 'http://allowed.test/x',
            headers: { host: 'allowed.test' },
          },
          (res) => {
            res.resume();
            resolveRequest({ status: res.statusCode ?? 0, reason: res.headers['x-egress-reason'] });
          },
        );
        request.on('error', reject);
        request.end();
      },
    );
    assert.deepEqual(response, { status: 405, reason: 'method-not-allowed' });
    const [attempt] = await started.reported(1);
    assert.deepEqual(
      [attempt!.host, attempt!.port, attempt!.allowed, attempt!.reason, attempt!.detail],
      ['allowed.test', 80, false, 'method-not-allowed', 'GET'],
    );
  });
  test('upgrade requests (WebSocket through the proxy) are refused with 405 and recorded', async () => {
    const started = await start();
    const status = await new Promise<number>((resolveRequest, reject) => {
      const request = httpRequest({
        socketPath: started.socketPath,
        path: 'http://allowed.test/ws',
        headers: { host: 'allowed.test', connection: 'Upgrade', upgrade: 'websocket' },
      });
      request.once('response', (res) => {
        res.resume();
        resolveRequest(res.statusCode ?? 0);
      });
      request.once('upgrade', (res) => resolveRequest(res.statusCode ?? 0));
      request.on('error', reject);
      request.end();
    });
    assert.equal(status, 405);
    const [attempt] = await started.reported(1);
    assert.deepEqual([attempt!.host, attempt!.reason], ['allowed.test', 'method-not-allowed']);
  });
});

describe('egress proxy: the TLS server name', () => {
  test('a ClientHello naming another host is refused and nothing reaches the server', async () => {
    const started = await start();
    const before = upstreamSockets.length;
    const connected = await connectThrough(
      { socketPath: started.socketPath },
      `allowed.test:${httpsPort}`,
    );
    assert.equal(connected.status, 200);
    await assert.rejects(httpsGet(connected.socket, 'other.test'));
    const [attempt] = await started.reported(1);
    assert.equal(attempt!.reason, 'sni-mismatch');
    assert.equal(attempt!.allowed, false);
    assert.equal(attempt!.sni, 'other.test');
    assert.equal(attempt!.detail, 'other.test');
    assert.equal(attempt!.bytesUp, 0);
    const upstream = upstreamSockets[before]!;
    upstream.on('error', () => undefined); // a reset from the proxy's side is fine here
    if (!upstream.destroyed) await new Promise((resolve) => upstream.once('close', resolve));
    assert.equal(upstream.bytesRead, 0);
  });

  test('a ClientHello without a server name is refused', async () => {
    const started = await start();
    const connected = await connectThrough(
      { socketPath: started.socketPath },
      `allowed.test:${httpsPort}`,
    );
    await assert.rejects(httpsGet(connected.socket, '', 'allowed.test'));
    assert.equal((await started.reported(1))[0]!.reason, 'sni-missing');
  });

  test('plain text on a TLS port is refused', async () => {
    const started = await start();
    const connected = await connectThrough(
      { socketPath: started.socketPath },
      `allowed.test:${httpsPort}`,
    );
    connected.socket.write('GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n');
    assert.equal(await readAll(connected.socket, connected.head), '');
    assert.equal((await started.reported(1))[0]!.reason, 'not-tls');
  });

  test('no ClientHello within the hello timeout closes the tunnel', async () => {
    const started = await start({ helloTimeoutMs: 50 });
    const connected = await connectThrough(
      { socketPath: started.socketPath },
      `allowed.test:${httpsPort}`,
    );
    await readAll(connected.socket, connected.head);
    assert.equal((await started.reported(1))[0]!.reason, 'hello-timeout');
  });
});

describe('egress proxy: limits', () => {
  test('tunnels beyond maxTunnels are refused with 503 while one is open', async () => {
    const started = await start({ maxTunnels: 1 });
    const first = await connectThrough({ socketPath: started.socketPath }, `echo.test:${echoPort}`);
    assert.equal(first.status, 200);
    assert.equal(started.proxy.activeTunnels, 1);
    const second = await refused(started, `echo.test:${echoPort}`);
    assert.equal(second.status, 503);
    assert.equal(second.reason, 'too-many-tunnels');
    first.socket.end();
    await readAll(first.socket, first.head);
    const attempts = await started.reported(2);
    assert.deepEqual(
      attempts.map((attempt) => [attempt.reason, attempt.allowed]),
      [
        ['too-many-tunnels', false],
        ['allowed', true],
      ],
    );
    assert.equal(started.proxy.activeTunnels, 0);
  });

  test('an idle tunnel is closed after the idle timeout', async () => {
    const started = await start({ idleTimeoutMs: 50 });
    const connected = await connectThrough(
      { socketPath: started.socketPath },
      `echo.test:${echoPort}`,
    );
    await readAll(connected.socket, connected.head);
    const [attempt] = await started.reported(1);
    assert.equal(attempt!.allowed, true);
    assert.equal(attempt!.end, 'idle-timeout');
  });

  test('a tunnel is closed at the duration limit however busy it is', async () => {
    const started = await start({ maxDurationMs: 200 });
    const connected = await connectThrough(
      { socketPath: started.socketPath },
      `echo.test:${echoPort}`,
    );
    const ticker = setInterval(() => connected.socket.write('tick'), 10);
    try {
      await readAll(connected.socket, connected.head);
    } finally {
      clearInterval(ticker);
    }
    const [attempt] = await started.reported(1);
    assert.equal(attempt!.end, 'duration-limit');
    assert.ok(attempt!.bytesUp > 0);
  });

  test('closing the proxy closes open tunnels and has reported them once when it resolves', async () => {
    const started = await start();
    const connected = await connectThrough(
      { socketPath: started.socketPath },
      `echo.test:${echoPort}`,
    );
    const closed = readAll(connected.socket, connected.head);
    await started.proxy.close();
    // The executor builds the call's record right after close(): nothing may arrive later.
    assert.equal(started.attempts.length, 1);
    await closed;
    assert.deepEqual(
      started.attempts.map((attempt) => [attempt.reason, attempt.end]),
      [['allowed', 'proxy-closed']],
    );
  });
  test('closing the proxy while it waits for the ClientHello closes the tunnel without an HTTP reply in it', async () => {
    const started = await start();
    const connected = await connectThrough(
      { socketPath: started.socketPath },
      `allowed.test:${httpsPort}`,
    );
    assert.equal(connected.status, 200);
    const inside = readAll(connected.socket, connected.head);
    await started.proxy.close();
    assert.equal(await inside, '');
    assert.deepEqual(
      started.attempts.map((attempt) => [attempt.reason, attempt.allowed]),
      [['proxy-closed', false]],
    );
  });
});

describe('egress proxy: options', () => {
  const base = { resolve, onAttempt: () => undefined };
  test('bad rules are refused when the proxy is created', () => {
    assert.throws(
      () => createEgressProxy({ ...base, rules: [{ host: '10.0.0.1' }] }),
      (error: unknown) =>
        isMcpworksError(error, 'InvalidInput') && /IP address/.test(error.message),
    );
  });

  test('bad limits are refused when the proxy is created', () => {
    assert.throws(
      () => createEgressProxy({ ...base, rules: [], maxTunnels: 0 }),
      (error: unknown) =>
        isMcpworksError(error, 'InvalidInput') && /maxTunnels/.test(error.message),
    );
  });

  test('a recorder that throws does not break the proxy', async () => {
    let calls = 0;
    const started = await start({
      onAttempt: () => {
        calls += 1;
        throw new Error('recorder down');
      },
    });
    assert.equal((await refused(started, `other.test:${httpsPort}`)).status, 403);
    assert.equal((await refused(started, `other.test:${httpsPort}`)).status, 403);
    assert.equal(calls, 2);
  });
});

describe('egress proxy: every attempt is recorded exactly once', () => {
  test('a mix of allowed, refused and failed attempts gives one record each', async () => {
    const started = await start();
    const ok = await connectThrough(
      { socketPath: started.socketPath },
      `allowed.test:${httpsPort}`,
    );
    await httpsGet(ok.socket, 'allowed.test');
    await refused(started, `other.test:${httpsPort}`);
    await refused(started, `meta.test:${httpsPort}`);
    await refused(started, `closed.test:${closedPort}`);
    const mismatch = await connectThrough(
      { socketPath: started.socketPath },
      `allowed.test:${httpsPort}`,
    );
    await assert.rejects(httpsGet(mismatch.socket, 'other.test'));
    await started.reported(5);
    await started.proxy.close();
    assert.deepEqual(started.attempts.map((attempt) => attempt.reason).sort(), [
      'allowed',
      'connect-failed',
      'not-declared',
      'private-address',
      'sni-mismatch',
    ]);
  });
});
