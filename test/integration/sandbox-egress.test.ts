/**
 * Egress, the attack battery's part for tools that declare `egress`: the real nsjail sandbox,
 * the real egress proxy on the sandbox's own socket, the bootstrap's relay, and an HTTPS
 * upstream on a loopback address at port 443 with the fixture certificate (test/fixtures/egress),
 * which the executor binds in as the CA bundle. Names resolve through the TEST-ONLY resolver of
 * createSandboxExecutor; that upstream's address is the only non-public address let through.
 *
 * What the proxy refuses is refused *and recorded* (result.egress). What never reaches the proxy
 * (a direct connect, UDP, raw sockets, a name look-up) is refused by the sandbox itself; the
 * tool's runtime (the bootstrap) reports it, recorded as `not-proxied`.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createHttpsServer, type Server } from 'node:https';
import type { Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { Runtime } from '../../src/api/v1alpha1/mcpserver.ts';
import {
  createSandboxExecutor,
  DEFAULT_SECCOMP_POLICY,
  warmPoolOf,
} from '../../src/executor/sandbox-executor.ts';
import { nsjailForTests, toolCall, type CallOverrides } from '../../src/executor/testing.ts';
import type {
  EgressAttemptRecord,
  SandboxExecutor,
  ToolCallResult,
} from '../../src/executor/types.ts';

const fixture = (name: string) => new URL(`../fixtures/egress/${name}`, import.meta.url).pathname;

let executor: SandboxExecutor;
let upstream: Server;
let upstreamAddress = '';
let upstreamConnections = 0;
const requests: string[] = [];

const ALLOWED = [{ host: 'allowed.test' }];
const py = (imports: string, body: string) =>
  `${imports}\ndef main(args):\n${body.replace(/^/gm, '    ')}\n`;

async function call(
  runtime: Runtime,
  code: string,
  overrides: CallOverrides = {},
): Promise<ToolCallResult> {
  return executor.execute(toolCall(runtime, code, { timeoutSeconds: 10, ...overrides }));
}
const text = (result: ToolCallResult) => result.content.map((c) => c.text).join('');
const brief = (record: EgressAttemptRecord) => [
  record.host,
  record.port,
  record.allowed,
  record.reason,
];

/** Listens on 127.<a>.<b>.1:443, a loopback address no other test on this machine picks. */
async function listenOnLoopback443(server: Server): Promise<string> {
  for (let attempt = 0; attempt < 20; attempt += 1) {
    const address = `127.${10 + Math.floor(Math.random() * 240)}.${Math.floor(Math.random() * 250)}.1`;
    const ok = await new Promise<boolean>((resolve) => {
      const onError = () => resolve(false);
      server.once('error', onError);
      server.listen(443, address, () => {
        server.removeListener('error', onError);
        resolve(true);
      });
    });
    if (ok) return address;
  }
  throw new Error('no free loopback address for port 443');
}

before(async () => {
  upstream = createHttpsServer(
    { cert: readFileSync(fixture('server.crt')), key: readFileSync(fixture('server.key')) },
    (request, response) => {
      requests.push(`${request.headers.host ?? ''} ${request.url ?? ''}`);
      response.end(`hello from ${request.headers.host ?? '?'}`);
    },
  );
  upstream.on('connection', (_socket: Socket) => (upstreamConnections += 1));
  upstreamAddress = await listenOnLoopback443(upstream);
  executor = await createSandboxExecutor(
    { nsjailPath: nsjailForTests(), warmPoolSize: 1, caBundle: fixture('server.crt') },
    {
      egressResolve: async (host) => {
        if (host === 'private.test') return ['10.1.2.3'];
        return [upstreamAddress];
      },
      egressAllowedAddresses: [upstreamAddress],
    },
  );
  await executor.probe();
});

after(async () => {
  await executor?.close();
  await new Promise<void>((resolve) => (upstream ? upstream.close(() => resolve()) : resolve()));
});

describe('egress: a declared host is reached', () => {
  test('python urllib.request reaches allowed.test over HTTPS; the attempt is recorded', async () => {
    const r = await call(
      'python',
      py(
        'import urllib.request',
        'return urllib.request.urlopen("https://allowed.test/u", timeout=5).read().decode()',
      ),
      { egress: ALLOWED },
    );
    assert.equal(r.outcome, 'ok', text(r));
    assert.equal(text(r), 'hello from allowed.test');
    assert.equal(r.egress?.length, 1);
    const [record] = r.egress!;
    assert.deepEqual(brief(record!), ['allowed.test', 443, true, 'allowed']);
    assert.equal(record!.address, upstreamAddress);
    assert.equal(record!.sni, 'allowed.test');
    assert.ok(record!.bytesUp > 0 && record!.bytesDown > 0, JSON.stringify(record));
    assert.ok(record!.durationMs >= 0);
  });

  test('python http.client with set_tunnel (how requests tunnels) reaches allowed.test', async () => {
    const r = await call(
      'python',
      py(
        'import http.client, os, ssl, urllib.parse',
        [
          'proxy = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])',
          'c = http.client.HTTPSConnection(proxy.hostname, proxy.port, timeout=5, context=ssl.create_default_context())',
          'c.set_tunnel("allowed.test", 443)',
          'c.request("GET", "/tunnel")',
          'response = c.getresponse()',
          'return [response.status, response.read().decode()]',
        ].join('\n'),
      ),
      { egress: ALLOWED },
    );
    assert.equal(r.outcome, 'ok', text(r));
    assert.deepEqual(JSON.parse(text(r)), [200, 'hello from allowed.test']);
    assert.deepEqual(r.egress?.map(brief), [['allowed.test', 443, true, 'allowed']]);
  });

  test('node fetch reaches allowed.test (NODE_USE_ENV_PROXY, NODE_EXTRA_CA_CERTS)', async () => {
    const r = await call(
      'node',
      `async function main() { const response = await fetch('https://allowed.test/node'); return [response.status, await response.text()]; }`,
      { egress: ALLOWED },
    );
    assert.equal(r.outcome, 'ok', text(r));
    assert.deepEqual(JSON.parse(text(r)), [200, 'hello from allowed.test']);
    assert.equal(r.egress?.length, 1);
    assert.deepEqual(brief(r.egress![0]!), ['allowed.test', 443, true, 'allowed']);
    assert.ok(r.egress![0]!.bytesDown > 0);
  });

  test('node https.get reaches allowed.test too (NODE_USE_ENV_PROXY covers the https module)', async () => {
    const r = await call(
      'node',
      `const https = require('node:https');
       function main() { return new Promise((resolve, reject) => { https.get('https://allowed.test/https', (res) => { let body = ''; res.on('data', (d) => (body += d)); res.on('end', () => resolve([res.statusCode, body])); }).on('error', reject); }); }`,
      { egress: ALLOWED },
    );
    assert.equal(r.outcome, 'ok', text(r));
    assert.deepEqual(JSON.parse(text(r)), [200, 'hello from allowed.test']);
    assert.deepEqual(r.egress?.map(brief), [['allowed.test', 443, true, 'allowed']]);
  });
});

/** Python code that GETs `url` through the proxy and returns the error text (or the body). */
const fetchPython = (url: string) =>
  py(
    'import urllib.request',
    `try:\n    return urllib.request.urlopen(${JSON.stringify(url)}, timeout=5).read().decode()\nexcept Exception as e:\n    return "refused: " + str(e)`,
  );

describe('egress: refused by the proxy, and recorded', () => {
  const refusedCases: Array<[string, string, CallOverrides, string]> = [
    ['an undeclared host', 'https://other.test/', { egress: ALLOWED }, 'not-declared'],
    ['an undeclared port', 'https://allowed.test:8443/', { egress: ALLOWED }, 'port-not-declared'],
    ['a raw IP in CONNECT', 'https://1.1.1.1/', { egress: ALLOWED }, 'raw-ip'],
    [
      'a declared name resolving to a private address',
      'https://private.test/',
      { egress: [...ALLOWED, { host: 'private.test' }] },
      'private-address',
    ],
    [
      'a declared host a guardrail denies',
      'https://other.test/',
      {
        egress: [...ALLOWED, { host: 'other.test' }],
        egressDenied: [
          {
            hosts: ['other.test'],
            policy: 'ClusterAgentPolicy no-other',
            reason: 'test guardrail',
          },
        ],
      },
      'policy-denied',
    ],
  ];
  for (const [name, url, overrides, reason] of refusedCases) {
    test(`${name}: ${reason}, no connection upstream`, async () => {
      const before = upstreamConnections;
      const r = await call('python', fetchPython(url), overrides);
      assert.equal(r.outcome, 'ok', text(r));
      assert.match(text(r), /^refused: .*403/);
      assert.equal(r.egress?.length, 1, JSON.stringify(r.egress));
      const [record] = r.egress!;
      assert.equal(record!.allowed, false);
      assert.equal(record!.reason, reason);
      assert.equal(record!.bytesUp, 0);
      if (reason === 'policy-denied') {
        assert.equal(record!.policy, 'ClusterAgentPolicy no-other');
        assert.equal(record!.detail, 'test guardrail');
      }
      if (reason === 'private-address') assert.equal(record!.address, '10.1.2.3');
      assert.equal(upstreamConnections, before);
    });
  }

  test('a guardrail narrows only its hosts: the same call still reaches allowed.test', async () => {
    const r = await call(
      'python',
      py(
        'import urllib.request',
        [
          'out = []',
          'for url in ["https://other.test/", "https://allowed.test/still"]:',
          '    try:',
          '        out.append(urllib.request.urlopen(url, timeout=5).read().decode())',
          '    except Exception as e:',
          '        out.append("refused")',
          'return out',
        ].join('\n'),
      ),
      {
        egress: [...ALLOWED, { host: 'other.test' }],
        egressDenied: [
          { hosts: ['other.test'], policy: 'ClusterAgentPolicy no-other', reason: 'r' },
        ],
      },
    );
    assert.equal(r.outcome, 'ok', text(r));
    assert.deepEqual(JSON.parse(text(r)), ['refused', 'hello from allowed.test']);
    assert.deepEqual(r.egress?.map(brief), [
      ['other.test', 443, false, 'policy-denied'],
      ['allowed.test', 443, true, 'allowed'],
    ]);
  });

  test('a TLS server name other than the CONNECT host (domain fronting): sni-mismatch', async () => {
    const before = requests.length;
    const r = await call(
      'python',
      py(
        'import os, socket, ssl, urllib.parse',
        [
          'proxy = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])',
          's = socket.create_connection((proxy.hostname, proxy.port), timeout=5)',
          's.sendall(b"CONNECT allowed.test:443 HTTP/1.1\\r\\nHost: allowed.test:443\\r\\n\\r\\n")',
          'head = s.recv(4096).decode()',
          'try:',
          '    t = ssl.create_default_context().wrap_socket(s, server_hostname="other.test")',
          '    t.sendall(b"GET / HTTP/1.1\\r\\nHost: other.test\\r\\n\\r\\n")',
          '    return [head.split("\\r\\n")[0], t.recv(100).decode()]',
          'except (ssl.SSLError, OSError) as e:',
          '    return [head.split("\\r\\n")[0], "tls failed"]',
        ].join('\n'),
      ),
      { egress: [...ALLOWED, { host: 'other.test' }] },
    );
    assert.equal(r.outcome, 'ok', text(r));
    assert.deepEqual(JSON.parse(text(r)), ['HTTP/1.1 200 Connection Established', 'tls failed']);
    assert.equal(r.egress?.length, 1);
    assert.deepEqual(brief(r.egress![0]!), ['allowed.test', 443, false, 'sni-mismatch']);
    assert.equal(r.egress![0]!.sni, 'other.test');
    assert.equal(requests.length, before, 'no request reached the upstream');
  });
});

/** A sandbox-reported attempt (not-proxied), as the executor records it. */
const notProxied = (kind: string, host: string, port: number) => ({
  host,
  port,
  allowed: false,
  reason: 'not-proxied',
  detail: `${kind} without the proxy, refused by the sandbox (reported by the tool's runtime)`,
  bytesUp: 0,
  bytesDown: 0,
  durationMs: 0,
});

describe('egress: refused by the sandbox itself (never reaches the proxy; the runtime reports it)', () => {
  test('a direct TCP connect to a public IP fails: the jail has no route; recorded not-proxied', async () => {
    const r = await call(
      'python',
      py(
        'import socket',
        'socket.create_connection(("1.1.1.1", 443), timeout=3)\nreturn "connected"',
      ),
      { egress: ALLOWED },
    );
    assert.equal(r.outcome, 'error');
    assert.match(text(r), /unreachable|OSError|Errno 101/i);
    // create_connection looks the address up first (a numeric one resolves without a resolver).
    assert.deepEqual(r.egress, [
      notProxied('a name look-up', '1.1.1.1', 443),
      notProxied('a TCP connection', '1.1.1.1', 443),
    ]);
    const n = await call(
      'node',
      `const net = require('node:net');
       function main() { return new Promise((resolve, reject) => { const s = net.connect(443, '1.1.1.1'); s.on('error', reject); s.on('connect', () => resolve('connected')); }); }`,
      { egress: ALLOWED },
    );
    assert.equal(n.outcome, 'error');
    assert.match(text(n), /ENETUNREACH|unreachable/i);
    assert.deepEqual(n.egress, [notProxied('a TCP connection', '1.1.1.1', 443)]);
  });

  test('a name looked up without the proxy fails (no resolver inside); recorded not-proxied', async () => {
    const r = await call(
      'python',
      py('import socket', 'return socket.getaddrinfo("allowed.test", 443)[0][4][0]'),
      { egress: ALLOWED },
    );
    assert.equal(r.outcome, 'error');
    assert.match(text(r), /gaierror|Name or service not known|Temporary failure/i);
    assert.deepEqual(r.egress, [notProxied('a name look-up', 'allowed.test', 443)]);
  });

  test('what the runtime reports is bounded: 16 entries at most', async () => {
    const r = await call(
      'python',
      py(
        'import socket',
        [
          'for i in range(40):',
          '    try:',
          '        socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
          '    except PermissionError:',
          '        pass',
          'return "done"',
        ].join('\n'),
      ),
      { egress: ALLOWED },
    );
    assert.equal(r.outcome, 'ok', text(r));
    assert.equal(r.egress?.length, 16);
    assert.ok(r.egress?.every((a) => a.reason === 'not-proxied' && !a.allowed));
  });

  test('a UDP socket is refused (python and node)', async () => {
    const r = await call(
      'python',
      py('import socket', 'socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nreturn "udp"'),
      { egress: ALLOWED },
    );
    assert.equal(r.outcome, 'error');
    assert.match(text(r), /PermissionError|Operation not permitted/);
    assert.deepEqual(r.egress, [notProxied('a UDP socket', '', 0)]);
    const n = await call(
      'node',
      `const dgram = require('node:dgram');
       function main() { return new Promise((resolve, reject) => { const s = dgram.createSocket('udp4'); s.on('error', reject); s.send('x', 53, '1.1.1.1', (e) => e ? reject(e) : resolve('sent')); }); }`,
      { egress: ALLOWED },
    );
    assert.equal(n.outcome, 'error');
    assert.match(text(n), /EPERM|not permitted/);
    assert.deepEqual(n.egress, [notProxied('a UDP socket', '1.1.1.1', 53)]);
  });

  test('raw and packet sockets are refused, and so is a TCP socket of another protocol', async () => {
    const r = await call(
      'python',
      py(
        'import socket',
        [
          'out = []',
          'for family, kind, proto in [(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP), (socket.AF_PACKET, socket.SOCK_RAW, 0), (socket.AF_INET, socket.SOCK_STREAM, 132), (socket.AF_INET6, socket.SOCK_DGRAM, 0)]:',
          '    try:',
          '        socket.socket(family, kind, proto)',
          '        out.append("opened")',
          '    except PermissionError:',
          '        out.append("EPERM")',
          'return out',
        ].join('\n'),
      ),
      { egress: ALLOWED },
    );
    assert.equal(r.outcome, 'ok', text(r));
    assert.deepEqual(JSON.parse(text(r)), ['EPERM', 'EPERM', 'EPERM', 'EPERM']);
    assert.deepEqual(r.egress, [
      notProxied('a raw socket', '', 0),
      notProxied('a raw socket', '', 0),
      notProxied('a socket', '', 0), // SCTP: a stream socket, but not TCP
      notProxied('a UDP socket', '', 0),
    ]);
  });

  test('the socket directory is read-only inside: the proxy socket cannot be replaced', async () => {
    const r = await call(
      'python',
      py(
        'import os',
        [
          'out = []',
          'for op in [lambda: os.unlink("/run/mcpworks/egress.sock"), lambda: open("/run/mcpworks/x", "w"), lambda: open("/run/mcpworks/ca.crt", "w")]:',
          '    try:',
          '        op()',
          '        out.append("done")',
          '    except OSError as e:',
          '        out.append(e.__class__.__name__)',
          'return out',
        ].join('\n'),
      ),
      { egress: ALLOWED },
    );
    assert.equal(r.outcome, 'ok', text(r));
    assert.ok(
      (JSON.parse(text(r)) as string[]).every((outcome) => outcome !== 'done'),
      text(r),
    );
  });
});

describe('egress: sandboxes without egress stay without it', () => {
  test('a plain call after egress calls gets a plain sandbox (the warm pool keeps them apart)', async () => {
    await call('python', fetchPython('https://allowed.test/warm'), { egress: ALLOWED });
    await warmPoolOf(executor)?.whenFilled();
    const r = await call(
      'python',
      py(
        'import os, socket',
        [
          'out = [sorted(k for k in os.environ if "PROXY" in k.upper() or k.startswith("MCPWORKS")), os.listdir("/run/mcpworks")]',
          'try:',
          '    socket.create_connection(("127.0.0.1", 3128), timeout=2)',
          '    out.append("connected")',
          'except OSError as e:',
          '    out.append(e.__class__.__name__)',
          'return out',
        ].join('\n'),
      ),
    );
    assert.equal(r.outcome, 'ok', text(r));
    assert.deepEqual(JSON.parse(text(r)), [[], [], 'PermissionError']);
    assert.equal(r.egress, undefined);
  });
});

describe('egress: fails closed where it cannot be enforced', () => {
  test('a bash tool that declares egress is refused before any sandbox starts', async () => {
    // The schema's rule (CEL in the cluster) refuses it at the executor's edge; runOnce would
    // refuse it again were it to get past.
    await assert.rejects(
      executor.execute(toolCall('bash', 'echo hi', { egress: ALLOWED })),
      /invalid tool call request/,
    );
  });

  test('a custom seccomp policy without the socket rule: egress calls refused, others run', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcpworks-policy-'));
    const policy = join(dir, 'custom.kafel');
    writeFileSync(
      policy,
      readFileSync(DEFAULT_SECCOMP_POLICY, 'utf8').replace(
        'socket { family == AF_UNIX }',
        'socket { family == 1 }',
      ),
    );
    const custom = await createSandboxExecutor({
      nsjailPath: nsjailForTests(),
      warmPoolSize: 0,
      seccompPolicyPath: policy,
      caBundle: fixture('server.crt'),
    });
    try {
      await custom.probe();
      const refused = await custom.execute(
        toolCall('python', fetchPython('https://allowed.test/'), { egress: ALLOWED }),
      );
      assert.equal(refused.outcome, 'executor-unavailable');
      assert.match(refused.message ?? '', /seccomp policy has no egress variant/);
      const plain = await custom.execute(toolCall('python', 'def main(args):\n    return 1'));
      assert.equal(plain.outcome, 'ok');
    } finally {
      await custom.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('an egress sandbox that fails its self-test (an empty CA bundle): egress refused, others run', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcpworks-ca-'));
    const empty = join(dir, 'empty.pem');
    writeFileSync(empty, '');
    const custom = await createSandboxExecutor({
      nsjailPath: nsjailForTests(),
      warmPoolSize: 0,
      caBundle: empty,
    });
    try {
      await custom.probe();
      const refused = await custom.execute(
        toolCall('python', fetchPython('https://allowed.test/'), { egress: ALLOWED }),
      );
      assert.equal(refused.outcome, 'executor-unavailable');
      assert.match(refused.message ?? '', /egress sandbox self-test failed/);
      const plain = await custom.execute(toolCall('python', 'def main(args):\n    return 1'));
      assert.equal(plain.outcome, 'ok');
    } finally {
      await custom.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
