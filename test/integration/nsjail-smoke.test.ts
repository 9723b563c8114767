// A real nsjail runs real Python and Node.js in fresh namespaces, unprivileged, without network.
import assert from 'node:assert/strict';
import { readlinkSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { after, before, describe, test } from 'node:test';
import {
  NAMESPACES,
  NOBODY,
  findInterpreter,
  jailArgs,
  nodeMounts,
  pythonMounts,
  run,
} from '../harness/nsjail.ts';
import { resolveNsjail } from '../harness/paths.ts';

/** What the probe scripts report from inside the jail. */
interface Probe {
  uid: number;
  gid: number;
  pid: number;
  hostname: string;
  ns: Record<string, string>;
  interfaces: string[];
  connect: string;
  writeUsr: string;
}

// Both probes print the same JSON; argv[1] is the port of the test's TCP server on 127.0.0.1.
const PYTHON_PROBE = `
import json, os, socket, sys, errno
def attempt(fn):
    try:
        fn(); return 'ok'
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
lines = open('/proc/net/dev').read().splitlines()[2:]
print(json.dumps({
  'uid': os.getuid(), 'gid': os.getgid(), 'pid': os.getpid(), 'hostname': socket.gethostname(),
  'ns': {n: os.readlink('/proc/self/ns/' + n) for n in ${JSON.stringify(NAMESPACES)}},
  'interfaces': [l.split(':')[0].strip() for l in lines],
  'connect': attempt(lambda: socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=3)),
  'writeUsr': attempt(lambda: open('/usr/probe', 'w')),
}))
`;

const NODE_PROBE = `
const fs = require('node:fs'), os = require('node:os'), net = require('node:net');
const attempt = (fn) => { try { fn(); return 'ok'; } catch (e) { return e.code; } };
const connect = (port) => new Promise((resolve) => {
  const s = net.connect(port, '127.0.0.1');
  s.setTimeout(3000, () => { s.destroy(); resolve('ETIMEDOUT'); });
  s.on('connect', () => { s.destroy(); resolve('ok'); }).on('error', (e) => resolve(e.code));
});
connect(Number(process.argv[1])).then((c) => console.log(JSON.stringify({
  uid: process.getuid(), gid: process.getgid(), pid: process.pid, hostname: os.hostname(),
  ns: Object.fromEntries(${JSON.stringify(NAMESPACES)}.map((n) => [n, fs.readlinkSync('/proc/self/ns/' + n)])),
  interfaces: fs.readFileSync('/proc/net/dev', 'utf8').split('\\n').slice(2).filter(Boolean).map((l) => l.split(':')[0].trim()),
  connect: c,
  writeUsr: attempt(() => fs.writeFileSync('/usr/probe', 'x')),
})));
`;

let nsjail: string;
let python: string;
let node: string;
let server: Server;
let port: number;
let connections = 0;
const hostNamespaces = Object.fromEntries(
  NAMESPACES.map((n) => [n, readlinkSync(`/proc/self/ns/${n}`)]),
);

before(async () => {
  nsjail = resolveNsjail();
  python = findInterpreter('python3');
  node = findInterpreter('node');
  server = createServer((socket) => {
    connections++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as { port: number }).port;
});
after(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

async function probe(mounts: string[], command: string[]): Promise<Probe> {
  const res = await run(nsjail, jailArgs(mounts, [...command, String(port)]));
  assert.equal(
    res.code,
    0,
    `nsjail exited ${res.code}\nstdout: ${res.stdout}\nstderr: ${res.stderr}`,
  );
  return JSON.parse(res.stdout) as Probe;
}

for (const runtime of ['python3', 'node'] as const) {
  describe(`${runtime} inside nsjail`, () => {
    let inside: Probe;
    before(async () => {
      connections = 0;
      inside =
        runtime === 'python3'
          ? await probe(pythonMounts(python), [python, '-c', PYTHON_PROBE])
          : await probe(nodeMounts(node), [node, '-e', NODE_PROBE]);
    });

    test('runs as uid and gid 65534', () => {
      assert.equal(inside.uid, NOBODY);
      assert.equal(inside.gid, NOBODY);
    });

    for (const ns of NAMESPACES) {
      test(`runs in a fresh ${ns} namespace`, () => {
        assert.ok(inside.ns[ns], `no ${ns} namespace reported`);
        assert.notEqual(inside.ns[ns], hostNamespaces[ns]);
      });
    }

    test('is pid 1 of its pid namespace', () => {
      assert.equal(inside.pid, 1);
    });

    test('has its own hostname', () => {
      assert.equal(inside.hostname, 'mcpworks-smoke');
    });

    test('sees no network interface but loopback', () => {
      assert.deepEqual(inside.interfaces, ['lo']);
    });

    test('cannot reach a TCP port served on the host loopback', () => {
      assert.notEqual(inside.connect, 'ok');
      assert.equal(connections, 0, 'the host server saw a connection from the jail');
    });

    test('cannot write to its read-only binds', () => {
      assert.notEqual(inside.writeUsr, 'ok');
    });
  });
}

test('control: the same port is reachable without the jail', async () => {
  const res = await run(python, [
    '-c',
    'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3)',
    String(port),
  ]);
  assert.equal(res.code, 0, res.stderr);
});
