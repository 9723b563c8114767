// End to end, in the egress world (test/harness/egress-world.ts): `mcpworks serve` runs
// examples/tools-api as shipped, the official SDK client is the agent, and the world's HTTPS
// server plays the ticket service (tickets-api.ts). Both example tools reach the API with the
// token from their secretEnv; the token reaches the outside and never the agent; every other
// way out (another host, names resolving to private or loopback addresses, a raw IP, a socket
// or a datagram without the proxy, a tool without egress) fails, and the world saw nothing of it.
// Outside a world this file runs itself inside one (runTestFileInWorld).
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import {
  insideEgressWorld,
  runTestFileInWorld,
  specResultLines,
  specTotals,
  WORLD,
  WORLD_CA,
  worldLeftovers,
  type WorldEvent,
} from '../harness/egress-world.ts';
import type { DecisionRecord } from '../../src/gateway/decisions/record.ts';
import { eventually } from '../harness/wait.ts';
import { connectClient, startServe, waitForDecisions, type RunningServe } from './serve-harness.ts';
import { EXAMPLE_DIR, exampleToken, KNOWN_TICKET, NEW_TICKET_ID } from './tickets-api.ts';

const world = insideEgressWorld();
const TICKETS_API = fileURLToPath(new URL('./tickets-api.ts', import.meta.url));

/** The agent key published in examples/tools-api/api-keys.yaml. */
async function exampleAgentKey(): Promise<string> {
  const text = await readFile(join(EXAMPLE_DIR, 'api-keys.yaml'), 'utf8');
  const key = /Authorization: Bearer (mcpw_\S+)/.exec(text)?.[1];
  if (!key) throw new Error('examples/tools-api/api-keys.yaml publishes no key');
  return key;
}

const TOKEN_SECRET = {
  name: 'TICKET_API_TOKEN',
  secretKeyRef: { name: 'ticket-api-token', key: 'token' },
};

const PY_FETCH = `
import os, urllib.request
def main(args):
    request = urllib.request.Request(args["url"], headers={"Authorization": "Bearer " + os.environ.get("TICKET_API_TOKEN", "")})
    with urllib.request.urlopen(request, timeout=10) as response:
        return {"status": response.status, "body": response.read().decode()}
`;

// fetch hides why it failed in `cause`; the probe puts it in the message, and fails on an HTTP
// error status as urllib does.
const NODE_FETCH = `
async function main(args) {
  let response;
  try {
    response = await fetch(args.url, {
      headers: { authorization: 'Bearer ' + (process.env.TICKET_API_TOKEN ?? '') },
      signal: AbortSignal.timeout(10000),
    });
  } catch (err) {
    const why = [];
    for (let e = err; e; e = e.cause) why.push((e.code ? e.code + ' ' : '') + e.message);
    throw new Error(why.join(' <- '));
  }
  const body = await response.text();
  if (!response.ok) throw new Error('HTTP ' + response.status + ': ' + body);
  return { status: response.status, body };
}
`;

// How `requests` tunnels: http.client to the proxy with set_tunnel (CONNECT), TLS inside.
const PY_TUNNEL = `
import http.client, os, ssl, urllib.parse
def main(args):
    url = urllib.parse.urlsplit(args["url"])
    proxy = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])
    if url.scheme == "https":
        conn = http.client.HTTPSConnection(proxy.hostname, proxy.port, timeout=10, context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(proxy.hostname, proxy.port, timeout=10)
    conn.set_tunnel(url.hostname, url.port or (443 if url.scheme == "https" else 80))
    conn.request("GET", url.path or "/", headers={"Authorization": "Bearer " + os.environ.get("TICKET_API_TOKEN", "")})
    response = conn.getresponse()
    body = response.read().decode()
    if response.status >= 400:
        raise RuntimeError("HTTP %d: %s" % (response.status, body))
    return {"status": response.status, "body": body}
`;

// Domain fronting: CONNECT to the allowed host, then a TLS ClientHello naming another one.
const FRONTING = `
import os, socket, ssl, urllib.parse
def main(args):
    proxy = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])
    s = socket.create_connection((proxy.hostname, proxy.port), timeout=10)
    target = args["connect"] + ":443"
    s.sendall(("CONNECT %s HTTP/1.1\\r\\nHost: %s\\r\\n\\r\\n" % (target, target)).encode())
    status = s.recv(4096).decode(errors="replace").split("\\r\\n")[0]
    if " 200 " not in status:
        return {"connect": status, "tls": "not tried"}
    try:
        t = ssl.create_default_context().wrap_socket(s, server_hostname=args["sni"])
        t.sendall(("GET /fronted HTTP/1.1\\r\\nHost: %s\\r\\nConnection: close\\r\\n\\r\\n" % args["sni"]).encode())
        return {"connect": status, "tls": "ok", "response": t.recv(4096).decode(errors="replace")[:200]}
    except (OSError, ssl.SSLError) as e:
        return {"connect": status, "tls": type(e).__name__}
`;

// Connects without the proxy: a TCP socket and a UDP datagram straight to the API's address.
const RAW_SOCKETS = `
import errno, socket
def attempt(fn):
    try:
        fn()
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e))
def tcp(address, port):
    s = socket.create_connection((address, port), timeout=5)
    s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
    s.close()
def udp(address, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"probe", (address, port))
    s.close()
def main(args):
    return {
        "tcp": attempt(lambda: tcp(args["address"], 443)),
        "udp": attempt(lambda: udp(args["address"], 53)),
    }
`;

// A careless tool: returns the secret as it is, base64- and URL-encoded, or fails with it.
const LEAK_TOKEN = `
import base64, os, urllib.parse
def main(args):
    token = os.environ["TICKET_API_TOKEN"]
    if args.get("fail"):
        raise RuntimeError("the API refused token " + token)
    return {
        "raw": token,
        "base64": base64.b64encode(token.encode()).decode(),
        "url": urllib.parse.quote("token=" + token + "&x=1"),
        "sentence": "I used " + token + " for that",
    }
`;

/**
 * Test-only tools beside the example, on their own McpServer with the example's agent key: the
 * fetchers are allowed the API host and the two names that resolve inside (so that a refusal
 * there is the proxy's address check, not the allowlist).
 */
function probeManifests(): string {
  const insideNames = [WORLD.apiHost, WORLD.privateHost, WORLD.loopbackHost].map((host) => ({
    host,
    ports: [443],
  }));
  const object = { type: 'object', additionalProperties: true };
  const tool = (name: string, runtime: string, code: string, extra: object = {}) => ({
    name,
    description: `egress probe ${name}`,
    runtime,
    inputSchema: object,
    timeoutSeconds: 20,
    code,
    ...extra,
  });
  const server = {
    apiVersion: 'mcpworks.io/v1alpha1',
    kind: 'McpServer',
    metadata: { name: 'egress-probe', namespace: 'support' },
    spec: {
      auth: { apiKeys: { secretRef: { name: 'tickets-api-keys' } } },
      tools: [
        tool('py_fetch', 'python', PY_FETCH, { egress: insideNames, secretEnv: [TOKEN_SECRET] }),
        tool('node_fetch', 'node', NODE_FETCH, { egress: insideNames, secretEnv: [TOKEN_SECRET] }),
        tool('py_tunnel', 'python', PY_TUNNEL, { egress: insideNames, secretEnv: [TOKEN_SECRET] }),
        tool('fronting', 'python', FRONTING, { egress: [{ host: WORLD.apiHost }] }),
        tool('raw_sockets', 'python', RAW_SOCKETS, { egress: [{ host: WORLD.apiHost }] }),
        tool('no_egress_fetch', 'python', PY_FETCH),
        tool('leak_token', 'python', LEAK_TOKEN, { secretEnv: [TOKEN_SECRET] }),
        // Declares the second public host too: only the cluster guardrail below forbids it.
        tool('guarded_fetch', 'python', PY_FETCH, {
          egress: [{ host: WORLD.apiHost }, { host: WORLD.otherHost }],
          secretEnv: [TOKEN_SECRET],
        }),
      ],
    },
  };
  const guardrail = {
    apiVersion: 'mcpworks.io/v1alpha1',
    kind: 'ClusterAgentPolicy',
    metadata: { name: 'no-billing' },
    spec: {
      servers: { names: ['egress-probe'] },
      egressDeny: [
        {
          hosts: [WORLD.otherHost],
          tools: ['guarded_*'],
          reason: 'tools never talk to the billing system',
        },
      ],
    },
  };
  const policy = {
    apiVersion: 'mcpworks.io/v1alpha1',
    kind: 'AgentPolicy',
    metadata: { name: 'support-bot-probes', namespace: 'support' },
    spec: {
      servers: { names: ['egress-probe'] },
      rules: [
        {
          effect: 'Allow',
          subjects: [{ kind: 'Agent', name: 'support-bot' }],
          tools: ['*'],
          reason: 'the egress tests probe every way out',
        },
      ],
    },
  };
  return [server, policy, guardrail].map((o) => stringify(o)).join('---\n');
}

if (!world) {
  test('the example and the egress attacks, in a world of their own, leave nothing behind', async (t) => {
    const run = await runTestFileInWorld(fileURLToPath(import.meta.url), { app: TICKETS_API });
    for (const line of specResultLines(run.output)) t.diagnostic(line.trim());
    const totals = specTotals(run.output);
    assert.equal(run.code, 0, run.output);
    assert.ok(totals.pass > 0 && totals.pass === totals.tests, run.output);
    assert.deepEqual([totals.fail, totals.skipped, totals.todo, totals.cancelled], [0, 0, 0, 0]);
    assert.deepEqual(worldLeftovers(run), []);
    // The outside only ever heard from the example's two tools, at the API host, with the token.
    const requests = run.events.filter((e) => e.kind === 'request');
    assert.ok(requests.length >= 2, JSON.stringify(run.events));
    for (const r of requests) {
      assert.equal(r.servername, WORLD.apiHost, JSON.stringify(r));
      assert.equal(r.localAddress, WORLD.apiAddress, JSON.stringify(r));
    }
  });
} else {
  const inside = world;
  let serve: RunningServe;
  let client: Client;
  let probes: Client;
  const token = exampleToken();

  before(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mcpworks-tools-api-'));
    for (const name of await readdir(EXAMPLE_DIR)) {
      if (name.endsWith('.yaml') && name !== 'kustomization.yaml') {
        await copyFile(join(EXAMPLE_DIR, name), join(dir, name));
      }
    }
    await writeFile(join(dir, 'probes.yaml'), probeManifests());
    serve = await startServe([dir], ['--ca-bundle', WORLD_CA]);
    const key = await exampleAgentKey();
    client = await connectClient(`${serve.base}/mcp/support/tickets`, key);
    probes = await connectClient(`${serve.base}/mcp/support/egress-probe`, key);
  });
  after(async () => {
    await client?.close();
    await probes?.close();
    await serve?.stop();
  });

  /** Calls a tool and returns its result and the world events it caused. */
  /**
   * Calls a tool; returns its result, the world events it caused and its decision record (the
   * first tools/call record of that tool written after the call started).
   */
  async function call(
    on: Client,
    name: string,
    args: Record<string, unknown>,
  ): Promise<{
    result: Awaited<ReturnType<Client['callTool']>>;
    events: WorldEvent[];
    record: DecisionRecord;
  }> {
    const before = inside.events().length;
    const recordsBefore = (await serve.decisions()).length;
    const result = await on.callTool({ name, arguments: args });
    const events = inside.events().slice(before);
    const record = await eventually(
      `the decision record of ${name}`,
      async () =>
        (await serve.decisions())
          .slice(recordsBefore)
          .find((r) => r.method === 'tools/call' && r.tool === name),
      { timeoutMs: 20_000, intervalMs: 50 },
    );
    return { result, events, record };
  }

  const text = (result: Awaited<ReturnType<Client['callTool']>>) => JSON.stringify(result);

  test('the agent sees the two example tools', async () => {
    const names = (await client.listTools()).tools.map((t) => t.name).sort();
    assert.deepEqual(names, ['create_ticket', 'get_ticket']);
  });

  test('get_ticket (python, urllib) reaches the API with the token and returns the ticket', async () => {
    const { result, events, record } = await call(client, 'get_ticket', { id: KNOWN_TICKET.id });
    assert.equal(result.isError, false, text(result));
    assert.deepEqual(result.structuredContent, KNOWN_TICKET);
    const requests = events.filter((e) => e.kind === 'request');
    assert.equal(requests.length, 1, JSON.stringify(events));
    const [seen] = requests;
    assert.equal(seen!.method, 'GET');
    assert.equal(seen!.path, `/api/v1/tickets/${KNOWN_TICKET.id}`);
    assert.equal(seen!.servername, WORLD.apiHost);
    assert.equal(seen!.localAddress, WORLD.apiAddress);
    // The secret reached the tool and, through it, the outside.
    assert.equal(seen!.headers.authorization, `Bearer ${token}`);
    assert.ok(!text(result).includes(token));
    // The record lists the one tunnel, to the pinned public address, with bytes both ways.
    assert.equal(record.outcome, 'ok');
    assert.equal(record.egress?.length, 1, JSON.stringify(record.egress));
    const [attempt] = record.egress!;
    assert.equal(attempt!.host, WORLD.apiHost);
    assert.equal(attempt!.port, 443);
    assert.equal(attempt!.address, WORLD.apiAddress);
    assert.equal(attempt!.allowed, true);
    assert.equal(attempt!.reason, 'allowed');
    assert.ok(attempt!.bytesUp > 0 && attempt!.bytesDown > 0, JSON.stringify(attempt));
    assert.equal(record.redactions, undefined);
  });

  test('create_ticket (node, fetch) reaches the API with the token and returns the new id', async () => {
    const { result, events } = await call(client, 'create_ticket', {
      title: 'Printer on fire',
      description: 'third floor',
    });
    assert.equal(result.isError, false, text(result));
    assert.deepEqual(result.structuredContent, { id: NEW_TICKET_ID, status: 'open' });
    const requests = events.filter((e) => e.kind === 'request');
    assert.equal(requests.length, 1, JSON.stringify(events));
    const [seen] = requests;
    assert.equal(seen!.method, 'POST');
    assert.equal(seen!.path, '/api/v1/tickets');
    assert.equal(seen!.servername, WORLD.apiHost);
    assert.equal(seen!.headers.authorization, `Bearer ${token}`);
    assert.deepEqual(JSON.parse(seen!.body), {
      title: 'Printer on fire',
      description: 'third floor',
    });
    assert.ok(!text(result).includes(token));
  });

  test('a tool error from the API (404) reaches the agent as an error, without the token', async () => {
    const { result, events } = await call(client, 'get_ticket', { id: 'TCK-9' });
    assert.equal(result.isError, true, text(result));
    assert.match(text(result), /answered 404 for TCK-9/);
    assert.equal(events.filter((e) => e.kind === 'request').length, 1);
    assert.ok(!text(result).includes(token));
  });

  test('a tool that returns the token: every form of it is redacted before the agent sees it', async () => {
    const { result, record } = await call(probes, 'leak_token', {});
    assert.equal(result.isError, false, text(result));
    const forms = [
      token,
      Buffer.from(token).toString('base64'),
      encodeURIComponent(token),
      encodeURIComponent(`token=${token}&x=1`),
    ];
    for (const form of forms) assert.ok(!text(result).includes(form), `${form} in ${text(result)}`);
    assert.match(text(result), /I used \[REDACTED:TICKET_API_TOKEN\] for that/);
    // Counted by name: at least the four leaked fields (raw, base64, inside the URL, sentence).
    assert.deepEqual(Object.keys(record.redactions ?? {}), ['TICKET_API_TOKEN']);
    assert.ok(record.redactions!.TICKET_API_TOKEN! >= 4, JSON.stringify(record.redactions));
  });

  test('a tool that fails with the token in its message: the error is redacted too', async () => {
    const { result } = await call(probes, 'leak_token', { fail: true });
    assert.equal(result.isError, true, text(result));
    assert.match(text(result), /the API refused token/);
    assert.ok(!text(result).includes(token), text(result));
  });

  test('a ClusterAgentPolicy guardrail refuses a host the tool declares; the rest of its egress works', async () => {
    const denied = await call(probes, 'guarded_fetch', {
      url: `https://${WORLD.otherHost}/invoices`,
    });
    assert.equal(denied.result.isError, true, text(denied.result));
    assert.match(text(denied.result), /403/);
    assert.deepEqual(denied.events, [], 'the billing host heard nothing');
    const [attempt] = denied.record.egress ?? [];
    assert.equal(attempt?.host, WORLD.otherHost, JSON.stringify(denied.record.egress));
    assert.equal(attempt?.allowed, false);
    assert.equal(attempt?.reason, 'policy-denied');
    assert.equal(attempt?.policy, 'ClusterAgentPolicy no-billing');
    const allowed = await call(probes, 'guarded_fetch', {
      url: `https://${WORLD.apiHost}/api/v1/tickets/${KNOWN_TICKET.id}`,
    });
    assert.equal(allowed.result.isError, false, text(allowed.result));
    assert.equal(allowed.events.filter((e) => e.kind === 'request').length, 1);
  });

  for (const fetcher of ['py_fetch', 'node_fetch', 'py_tunnel']) {
    test(`${fetcher}: the allowed host works through the same proxy (control)`, async () => {
      const { result, events } = await call(probes, fetcher, {
        url: `https://${WORLD.apiHost}/api/v1/tickets/${KNOWN_TICKET.id}`,
      });
      assert.equal(result.isError, false, text(result));
      assert.match(text(result), /VPN drops every 20 minutes/);
      assert.equal(events.filter((e) => e.kind === 'request').length, 1);
    });

    // The proxy answers a refused CONNECT with 403 and a plain-HTTP request with 405: the
    // failure must be the proxy's refusal, not the absence of any network. For http://, urllib
    // sends the request itself to the proxy (405); fetch and set_tunnel open a tunnel to port
    // 80, which no rule declares (403).
    const plainHttp: [RegExp, string] =
      fetcher === 'py_fetch' ? [/405/, 'method-not-allowed'] : [/403/, 'port-not-declared'];
    const refused: [what: string, url: string, status: RegExp, reason: string][] = [
      [
        'a host the tool did not declare',
        `https://${WORLD.otherHost}/steal`,
        /403/,
        'not-declared',
      ],
      [
        'an allowed name that resolves to a private address',
        `https://${WORLD.privateHost}/`,
        /403/,
        'private-address',
      ],
      [
        'an allowed name that resolves to loopback',
        `https://${WORLD.loopbackHost}/`,
        /403/,
        'private-address',
      ],
      [
        'a raw IP address',
        `https://${WORLD.apiAddress}/api/v1/tickets/${KNOWN_TICKET.id}`,
        /403/,
        'raw-ip',
      ],
      [
        'plain http to the allowed host',
        `http://${WORLD.apiHost}/api/v1/tickets/${KNOWN_TICKET.id}`,
        ...plainHttp,
      ],
    ];
    for (const [what, url, status, reason] of refused) {
      test(`${fetcher}: ${what} is refused by the proxy (${reason}), recorded, and the outside hears nothing`, async () => {
        const { result, events, record } = await call(probes, fetcher, { url });
        assert.equal(result.isError, true, text(result));
        assert.match(text(result), status);
        assert.deepEqual(events, []);
        assert.ok(!text(result).includes(token));
        assert.deepEqual(
          record.egress?.map((a) => [a.allowed, a.reason, a.bytesUp]),
          [[false, reason, 0]],
          JSON.stringify(record.egress),
        );
      });
    }
  }

  test('domain fronting: a tunnel to the allowed host carrying a TLS hello for another is cut', async () => {
    const { result, events, record } = await call(probes, 'fronting', {
      connect: WORLD.apiHost,
      sni: WORLD.otherHost,
    });
    assert.equal(result.isError, false, text(result));
    const outcome = result.structuredContent as { connect: string; tls: string };
    assert.match(outcome.connect, / 200 /);
    assert.notEqual(outcome.tls, 'ok', text(result));
    // The proxy may have opened TCP to the pinned address; nothing was forwarded over it.
    for (const e of events) {
      assert.equal(e.kind, 'connection', JSON.stringify(events));
      assert.equal(e.localAddress, WORLD.apiAddress);
    }
    assert.deepEqual(
      record.egress?.map((a) => [a.host, a.allowed, a.reason]),
      [[WORLD.apiHost, false, 'sni-mismatch']],
      JSON.stringify(record.egress),
    );
  });

  test('a TCP socket or a UDP datagram that bypasses the proxy gets nowhere', async () => {
    const { result, events, record } = await call(probes, 'raw_sockets', {
      address: WORLD.apiAddress,
    });
    assert.equal(result.isError, false, text(result));
    const outcome = result.structuredContent as { tcp: string; udp: string };
    assert.notEqual(outcome.tcp, 'ok', text(result));
    assert.notEqual(outcome.udp, 'ok', text(result));
    assert.deepEqual(events, []);
    // Refused by the sandbox, never reaching the proxy; the tool's runtime reported what it
    // tried: the look-up create_connection makes first, the connection, the refused UDP socket.
    assert.deepEqual(
      record.egress?.map((a) => [a.host, a.port, a.allowed, a.reason]),
      [
        [WORLD.apiAddress, 443, false, 'not-proxied'],
        [WORLD.apiAddress, 443, false, 'not-proxied'],
        ['', 0, false, 'not-proxied'],
      ],
      JSON.stringify(record.egress),
    );
  });

  test('a tool without egress has no network at all, even to the API host', async () => {
    const { result, events } = await call(probes, 'no_egress_fetch', {
      url: `https://${WORLD.apiHost}/api/v1/tickets/${KNOWN_TICKET.id}`,
    });
    assert.equal(result.isError, true, text(result));
    assert.deepEqual(events, []);
  });

  test('the decision log records the calls as the example README says, and never holds the token', async () => {
    const records = await waitForDecisions(serve, 1);
    const calls = records.filter((r) => r.method === 'tools/call');
    for (const tool of ['get_ticket', 'create_ticket', 'leak_token', 'py_fetch', 'node_fetch']) {
      assert.ok(
        calls.some((r) => r.tool === tool && r.effect === 'Allow'),
        `no Allow record for ${tool}`,
      );
    }
    const tickets = calls.filter((r) => r.tool === 'get_ticket' && r.server === 'support/tickets');
    assert.deepEqual(
      tickets.map((r) => r.outcome),
      ['ok', 'error'],
    );
    const [first] = tickets;
    assert.equal(first!.principal?.name, 'support-bot');
    assert.deepEqual(first!.principal?.groups, ['support']);
    assert.equal(first!.principal?.authMethod, 'api-key');
    assert.deepEqual(first!.rule, {
      kind: 'AgentPolicy',
      namespace: 'support',
      name: 'support-bot-tickets',
      index: 0,
    });
    const log = await readFile(serve.decisionLog, 'utf8');
    assert.ok(!log.includes(token), 'the token is in the decision log');
    assert.ok(!log.includes(Buffer.from(token).toString('base64')));
    assert.ok(!serve.stderr().includes(token), 'the token is in the log');
  });

  test('a title over 200 characters is denied by the example policy and never runs', async () => {
    const { result, events } = await call(client, 'create_ticket', { title: 'x'.repeat(201) });
    assert.equal(result.isError, true, text(result));
    assert.deepEqual(events, []);
    const records = await waitForDecisions(serve, 1);
    const last = records.findLast((r) => r.tool === 'create_ticket');
    assert.equal(last?.effect, 'Deny');
    assert.equal(last?.outcome, 'denied');
  });
}
