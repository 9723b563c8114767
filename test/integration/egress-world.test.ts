// The egress tests' outside world (test/harness/egress-world.ts): its names resolve inside and
// nowhere else, its HTTPS server is reachable by name and records what reaches it, and nothing
// of it is left on the host afterwards. This file runs itself inside a world (see
// runTestFileInWorld): outside, one test per world run; inside, the checks of the world itself.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { promises as dns } from 'node:dns';
import { readFileSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  insideEgressWorld,
  runInEgressWorld,
  runTestFileInWorld,
  specResultLines,
  specTotals,
  WORLD,
  WORLD_CA,
  worldHostsFile,
  worldLeftovers,
  worldNsswitch,
  type RecordedRequest,
} from '../harness/egress-world.ts';

const world = insideEgressWorld();
const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const WORLD_NAMES = [WORLD.apiHost, WORLD.otherHost, WORLD.privateHost, WORLD.loopbackHost];

/** GET https://<host><path> trusting the world's CA; resolves with status and body. */
function get(host: string, path: string, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = httpsRequest(
      { host, path, headers, ca: readFileSync(WORLD_CA), timeout: 10_000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** The error code of a TCP connect to address:port (or 'connected'). */
function tcpConnect(address: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: address, port, timeout: 5000 });
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve('timeout');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

if (!world) {
  test('the world files: every name on its own line, only files for host names', () => {
    const hosts = worldHostsFile();
    for (const name of WORLD_NAMES) assert.match(hosts, new RegExp(`^\\S+ ${name}$`, 'm'));
    const nsswitch = worldNsswitch('passwd: files\nhosts: files mdns4_minimal dns\ngroup: files\n');
    assert.equal(nsswitch, 'passwd: files\ngroup: files\nhosts: files\n');
  });

  test("specTotals reads the spec reporter's last totals, -1 for a missing one", () => {
    const output = 'ℹ tests 3\nℹ pass 1\n  ℹ fail 9\nℹ fail 2\nℹ skipped 0\n';
    assert.deepEqual(specTotals(output), {
      tests: 3,
      pass: 1,
      fail: 2,
      skipped: 0,
      todo: -1,
      cancelled: -1,
    });
  });

  test('the checks of the world pass inside one, and it leaves nothing on the host', async (t) => {
    const run = await runTestFileInWorld(fileURLToPath(import.meta.url));
    for (const line of specResultLines(run.output)) t.diagnostic(line.trim());
    assert.equal(run.code, 0, run.output);
    const totals = specTotals(run.output);
    assert.ok(totals.pass > 0, run.output);
    assert.deepEqual(
      { ...totals, pass: 0, tests: 0 },
      { tests: 0, pass: 0, fail: 0, skipped: 0, todo: 0, cancelled: 0 },
    );
    assert.equal(totals.pass, totals.tests);
    assert.deepEqual(worldLeftovers(run), []);
    // What the inner tests sent is what the host-side run reports too.
    const authorized = run.events.find(
      (e): e is RecordedRequest => e.kind === 'request' && e.path === '/harness/authorized',
    );
    assert.equal(authorized?.headers.authorization, 'Bearer world-test-token');
  });

  test("the world's names do not resolve to its addresses outside it", async () => {
    for (const name of WORLD_NAMES) {
      const addresses = await dns
        .lookup(name, { all: true })
        .then((all) => all.map((a) => a.address))
        .catch((): string[] => []);
      for (const address of [WORLD.apiAddress, WORLD.otherAddress, WORLD.privateAddress]) {
        assert.ok(!addresses.includes(address), `${name} resolved to ${address} on the host`);
      }
    }
    assert.doesNotMatch(readFileSync('/etc/hosts', 'utf8'), /example\.com/);
  });

  test('processes a command leaves behind are killed when it exits', async () => {
    const run = await runInEgressWorld('sh', ['-c', 'sleep 600 & sleep 600 & echo started']);
    assert.equal(run.code, 0, run.output);
    assert.match(run.output, /started/);
    assert.deepEqual(worldLeftovers(run), []);
  });

  test('a world that outlives its timeout is killed, and still leaves nothing', async () => {
    const run = await runInEgressWorld('sleep', ['600'], { timeoutMs: 2000 });
    assert.equal(run.timedOut, true);
    assert.notEqual(run.code, 0);
    assert.deepEqual(worldLeftovers(run), []);
  });

  test('worldLeftovers is not blind: it reports live processes, a changed /etc/hosts, a left dir', async () => {
    const run = await runInEgressWorld('true', []);
    assert.deepEqual(worldLeftovers(run), []);
    // The same run, as if its namespaces were this process's and the host had been changed.
    const self = {
      net: readlinkSync('/proc/self/ns/net'),
      mnt: readlinkSync('/proc/self/ns/mnt'),
    };
    const problems = worldLeftovers({
      ...run,
      namespaces: self,
      before: { ...run.before, hosts: run.before.hosts + '203.0.114.10 tickets.example.com\n' },
      dir: tmpdir(),
    });
    assert.equal(problems.length, 4, problems.join('; '));
    assert.match(problems.join('; '), new RegExp(`processes left in ${escape(self.net)}`));
    assert.match(problems.join('; '), /\/etc\/hosts changed/);
    assert.match(problems.join('; '), new RegExp(`${escape(tmpdir())} left`));
  });

  test("a command's exit status is the world's", async () => {
    const run = await runInEgressWorld('sh', ['-c', 'exit 7']);
    assert.equal(run.code, 7);
    assert.deepEqual(worldLeftovers(run), []);
  });
} else {
  test('each world name resolves to its address', async () => {
    const expected: Record<string, string> = {
      [WORLD.apiHost]: WORLD.apiAddress,
      [WORLD.otherHost]: WORLD.otherAddress,
      [WORLD.privateHost]: WORLD.privateAddress,
      [WORLD.loopbackHost]: WORLD.loopbackAddress,
    };
    for (const [name, address] of Object.entries(expected)) {
      const all = await dns.lookup(name, { all: true });
      assert.deepEqual(
        all.map((a) => a.address),
        [address],
      );
    }
  });

  test('a name the world does not know does not resolve (no host resolver behind it)', async () => {
    await assert.rejects(dns.lookup('unknown.example.com'), { code: 'ENOTFOUND' });
  });

  test('the HTTPS server answers by name with the CA-signed certificate and records the request', async () => {
    const before = world.requests().length;
    const res = await get(WORLD.apiHost, '/harness/authorized', {
      authorization: 'Bearer world-test-token',
    });
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(res.body), {
      world: true,
      method: 'GET',
      host: WORLD.apiHost,
      path: '/harness/authorized',
    });
    const [seen, extra] = world.requests().slice(before);
    assert.equal(extra, undefined);
    assert.equal(seen?.protocol, 'https');
    assert.equal(seen?.servername, WORLD.apiHost);
    assert.equal(seen?.localAddress, WORLD.apiAddress);
    assert.equal(seen?.localPort, 443);
    assert.equal(seen?.headers.authorization, 'Bearer world-test-token');
  });

  test('the server listens on every world address, private and loopback ones too', async () => {
    // So that an attempt the egress proxy lets through would be recorded, whatever it targets.
    for (const host of [WORLD.otherHost, WORLD.privateHost, WORLD.loopbackHost]) {
      const res = await get(host, `/harness/${host}`);
      assert.equal(res.status, 200, host);
    }
    const hosts = world.requests().map((r) => `${r.localAddress} ${r.host}`);
    assert.ok(hosts.includes(`${WORLD.privateAddress} ${WORLD.privateHost}`), hosts.join());
    assert.ok(hosts.includes(`${WORLD.loopbackAddress} ${WORLD.loopbackHost}`), hosts.join());
  });

  test('plain HTTP on port 80 is served and recorded as http', async () => {
    const res = await fetch(`http://${WORLD.otherHost}/harness/plain`);
    assert.equal(res.status, 200);
    await res.text();
    const seen = world.requests().find((r) => r.path === '/harness/plain');
    assert.equal(seen?.protocol, 'http');
    assert.equal(seen?.host, WORLD.otherHost);
  });

  test('a bare TCP connection is recorded even when it sends nothing', async () => {
    const before = world.events().length;
    assert.equal(await tcpConnect(WORLD.otherAddress, 443), 'connected');
    const deadline = Date.now() + 5000;
    while (world.events().length === before && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const [event] = world.events().slice(before);
    assert.equal(event?.kind, 'connection');
    assert.equal(event?.localAddress, WORLD.otherAddress);
  });

  test('UDP datagrams to the world are recorded', async () => {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve, reject) =>
      socket.send('probe', WORLD.udpPort, WORLD.apiAddress, (err) =>
        err ? reject(err) : resolve(),
      ),
    );
    socket.close();
    const deadline = Date.now() + 5000;
    while (!world.events().some((e) => e.kind === 'udp') && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(world.events().some((e) => e.kind === 'udp' && e.bytes === 5));
  });

  test('there is no route out of the world', async () => {
    assert.equal(await tcpConnect('192.0.2.1', 443), 'ENETUNREACH');
  });

  test('the world has its own network: lo and the world interface only', () => {
    const links = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' });
    const names = [...links.matchAll(/^\d+: ([^:@]+)/gm)].map((m) => m[1]).sort();
    assert.deepEqual(names, ['lo', WORLD.interface, WORLD.peer].sort());
  });
}
