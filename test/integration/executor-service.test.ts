/**
 * `mcpworks executor` as the pods run it: a real process, real nsjail, real HTTP on loopback,
 * and the gateway's client against it.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createExecutorClient } from '../../src/executor/client.ts';
import { nsjailForTests, toolCall } from '../../src/executor/testing.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const TOKEN = 'executor-test-token-0123456789abcdef';
const SECRET_V1 = 'svc-secret-value-one';
const SECRET_V2 = 'svc-secret-value-two';

interface Running {
  child: ChildProcess;
  url: string;
  exited: Promise<number | null>;
  stderr: () => string;
}

function startExecutor(args: string[], env: Record<string, string>): Promise<Running> {
  const child = spawn(
    process.execPath,
    [MAIN, 'executor', '--host', '127.0.0.1', '--port', '0', ...args],
    {
      env: { PATH: process.env['PATH'] ?? '', MCPWORKS_LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on [^:]+:(\d+)/.exec(out);
      if (m) resolve({ child, url: `http://127.0.0.1:${m[1]}`, exited, stderr: () => err });
    });
    void exited.then((code) =>
      reject(new Error(`executor exited (${code}) before listening: ${err}`)),
    );
  });
}

async function waitReady(url: string): Promise<void> {
  for (let i = 0; i < 200; i += 1) {
    const r = await fetch(`${url}/readyz`).catch(() => undefined);
    if (r?.status === 200) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('executor never became ready');
}

/** Polls the executor's own gauge instead of guessing how long a request takes to arrive. */
async function waitInFlight(url: string, n: number): Promise<void> {
  for (let i = 0; i < 400; i += 1) {
    const text = await (await fetch(`${url}/metrics`)).text();
    if (new RegExp(`^mcpworks_executor_calls_in_flight ${n}$`, 'm').test(text)) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`never saw ${n} call(s) in flight`);
}

async function waitNotReady(url: string): Promise<void> {
  for (let i = 0; i < 400; i += 1) {
    const r = await fetch(`${url}/readyz`).catch(() => undefined);
    if (r === undefined || r.status === 503) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error('readiness never dropped');
}

function post(url: string, body: unknown, token?: string): Promise<Response> {
  return fetch(`${url}/v1/calls`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify(body),
  });
}

const quick = () => toolCall('bash', 'echo hi');
const slow = (seconds: number) =>
  toolCall('bash', `sleep ${seconds}; echo done`, { timeoutSeconds: 10 });

let nsjail: string;
let workDir: string;
before(() => {
  nsjail = nsjailForTests();
  workDir = mkdtempSync(join(tmpdir(), 'mcpworks-executor-svc-'));
});
after(() => rmSync(workDir, { recursive: true, force: true }));

describe('start-up', () => {
  test('refuses to start without a token', async () => {
    const child = spawn(
      process.execPath,
      [MAIN, 'executor', '--port', '0', '--host', '127.0.0.1'],
      {
        env: { PATH: process.env['PATH'] ?? '', MCPWORKS_NSJAIL: nsjail },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.equal(code, 2);
    assert.match(err, /refusing to start without a gateway token/);
  });

  test('refuses to start when --secrets-dir is not a directory', async () => {
    const file = join(workDir, 'not-a-dir');
    writeFileSync(file, '');
    const child = spawn(
      process.execPath,
      [MAIN, 'executor', '--port', '0', '--host', '127.0.0.1', '--secrets-dir', file],
      {
        env: {
          PATH: process.env['PATH'] ?? '',
          MCPWORKS_NSJAIL: nsjail,
          MCPWORKS_EXECUTOR_TOKEN: TOKEN,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.equal(code, 2);
    assert.match(err, /--secrets-dir .* is not a directory/);
  });

  test('refuses to start when nsjail is missing', async () => {
    const child = spawn(
      process.execPath,
      [MAIN, 'executor', '--port', '0', '--nsjail', '/nonexistent/nsjail'],
      {
        env: { PATH: process.env['PATH'] ?? '', MCPWORKS_EXECUTOR_TOKEN: TOKEN },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.equal(code, 1);
    assert.match(err, /sandbox is unavailable/);
  });

  test('refuses to start when --ca-bundle names a file that is not there', async () => {
    const child = spawn(
      process.execPath,
      [MAIN, 'executor', '--port', '0', '--ca-bundle', join(workDir, 'no-such-bundle.pem')],
      {
        env: {
          PATH: process.env['PATH'] ?? '',
          MCPWORKS_EXECUTOR_TOKEN: TOKEN,
          MCPWORKS_NSJAIL: nsjail,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.equal(code, 1);
    assert.match(err, /CA bundle is not readable/);
  });
});

describe('a running executor', () => {
  let running: Running;
  before(async () => {
    const tokenFile = join(workDir, 'token');
    writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    mkdirSync(join(workDir, 'secrets', 'api'), { recursive: true });
    writeFileSync(join(workDir, 'secrets', 'api', 'token'), SECRET_V1);
    running = await startExecutor(
      [
        '--token-file',
        tokenFile,
        '--max-concurrency',
        '1',
        '--warm-pool-size',
        '1',
        '--secrets-dir',
        join(workDir, 'secrets'),
        // the flag the pods get; the fixture bundle is as good as any here
        '--ca-bundle',
        fileURLToPath(new URL('../fixtures/egress/server.crt', import.meta.url)),
      ],
      // the token also in the environment: the sandbox must see neither
      { MCPWORKS_NSJAIL: nsjail, MCPWORKS_EXECUTOR_TOKEN: TOKEN },
    );
    await waitReady(running.url);
  });
  after(async () => {
    running?.child.kill('SIGTERM'); // a drained stop also removes its cgroups
    await running?.exited;
  });

  test('/healthz answers without a token', async () => {
    assert.equal((await fetch(`${running.url}/healthz`)).status, 200);
  });

  test('a call without a token is 401', async () => {
    const r = await post(running.url, quick());
    assert.equal(r.status, 401);
    assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer/);
  });

  test('a call with a wrong token is 401', async () => {
    assert.equal((await post(running.url, quick(), 'wrong-token-wrong-token-wrong')).status, 401);
  });

  test('a call with the right token runs in the sandbox', async () => {
    const r = await post(running.url, quick(), TOKEN);
    assert.equal(r.status, 200);
    const body = (await r.json()) as { outcome: string; content: Array<{ text: string }> };
    assert.equal(body.outcome, 'ok');
    assert.equal(body.content[0]?.text, 'hi\n');
  });

  test("a tool can read neither the executor's token file nor its environment", async () => {
    const code = [
      'import os, glob',
      'def main(args):',
      '    found = []',
      '    for path in [args["file"]] + glob.glob("/proc/*/environ"):',
      '        try:',
      '            found.append(open(path, "rb").read().decode("latin-1"))',
      '        except OSError:',
      '            pass',
      '    return {"env": dict(os.environ), "found": found}',
    ].join('\n');
    const r = await post(
      running.url,
      toolCall('python', code, { args: { file: join(workDir, 'token') } }),
      TOKEN,
    );
    const text = await r.text();
    assert.equal(r.status, 200);
    assert.match(text, /"outcome":"ok"/);
    assert.ok(!text.includes(TOKEN), 'the token leaked into the sandbox');
  });

  test('--secrets-dir: a tool reads its secretEnv per call, leaks come back redacted, no log holds it', async () => {
    const leak = toolCall(
      'python',
      'import os\ndef main(args):\n    return {"v": os.environ["API_TOKEN"]}',
      {
        secretEnv: { API_TOKEN: { name: 'api', key: 'token' } },
      },
    );
    const first = (await (await post(running.url, leak, TOKEN)).json()) as {
      structuredContent: unknown;
      redactions: unknown;
    };
    assert.deepEqual(first.structuredContent, { v: '[REDACTED:API_TOKEN]' });
    assert.deepEqual(first.redactions, { API_TOKEN: 1 });
    // Rotation: the file changes, the next call has the new value (seen through its length).
    writeFileSync(join(workDir, 'secrets', 'api', 'token'), `${SECRET_V2}-longer`);
    const length = toolCall('bash', 'printf %s "${#API_TOKEN}"', {
      secretEnv: { API_TOKEN: { name: 'api', key: 'token' } },
    });
    const second = (await (await post(running.url, length, TOKEN)).json()) as {
      content: { text: string }[];
    };
    assert.equal(second.content[0]?.text, String(`${SECRET_V2}-longer`.length));
    const missing = toolCall('bash', 'echo ran', {
      secretEnv: { API_TOKEN: { name: 'api', key: 'absent' } },
    });
    const refused = (await (await post(running.url, missing, TOKEN)).json()) as {
      outcome: string;
      message: string;
    };
    assert.equal(refused.outcome, 'error');
    assert.equal(
      refused.message,
      'secretEnv API_TOKEN: key "absent" of Secret test/api is missing',
    );
    for (const value of [SECRET_V1, SECRET_V2]) assert.ok(!running.stderr().includes(value));
  });

  test('an invalid body is 400 with the reason', async () => {
    const r = await post(running.url, { callId: 'x' }, TOKEN);
    assert.equal(r.status, 400);
    assert.match(((await r.json()) as { error: { message: string } }).error.message, /server|tool/);
  });

  test("egress through the service: the client's guardrails are honoured, every attempt comes back", async () => {
    const client = createExecutorClient({ url: running.url, token: TOKEN });
    const code = [
      'import urllib.request',
      'def main(args):',
      '    out = []',
      '    for url in ["https://api.example.com/", "https://undeclared.example.org/"]:',
      '        try:',
      '            urllib.request.urlopen(url, timeout=5)',
      '            out.append("reached")',
      '        except Exception as e:',
      '            out.append("refused")',
      '    return out',
    ].join('\n');
    const r = await client.execute(
      toolCall('python', code, {
        egress: [{ host: 'api.example.com' }],
        egressDenied: [
          { hosts: ['*.example.com'], policy: 'ClusterAgentPolicy no-example', reason: 'test' },
        ],
      }),
    );
    assert.equal(r.outcome, 'ok', JSON.stringify(r));
    assert.deepEqual(JSON.parse(r.content[0]!.text), ['refused', 'refused']);
    assert.deepEqual(
      r.egress?.map((a) => [a.host, a.port, a.allowed, a.reason, a.policy]),
      [
        ['api.example.com', 443, false, 'policy-denied', 'ClusterAgentPolicy no-example'],
        ['undeclared.example.org', 443, false, 'not-declared', undefined],
      ],
    );
    await client.close();
  });

  test('beyond the concurrency limit a call is refused with 429 at once', async () => {
    const first = post(running.url, slow(1), TOKEN);
    await waitInFlight(running.url, 1);
    const refused = await post(running.url, quick(), TOKEN);
    assert.equal(refused.status, 429);
    assert.equal(refused.headers.get('retry-after'), '1');
    assert.equal((await first).status, 200);
  });

  test('the gateway client maps 429 to an overloaded result and does not retry', async () => {
    const client = createExecutorClient({ url: running.url, token: TOKEN });
    const first = client.execute(slow(1));
    await waitInFlight(running.url, 1);
    const refused = await client.execute(quick());
    assert.equal(refused.outcome, 'overloaded');
    assert.equal(refused.isError, true);
    assert.equal(refused.refusal, 'executor-busy');
    assert.equal((await first).outcome, 'ok');
    const metrics = await (await fetch(`${running.url}/metrics`)).text();
    const rejected = /mcpworks_executor_requests_rejected_total\{reason="overloaded"\} (\d+)/.exec(
      metrics,
    );
    assert.equal(rejected?.[1], '2'); // this test's one refusal plus the previous test's: no retry
    await client.close();
  });

  test('/metrics carries the executor metrics', async () => {
    const text = await (await fetch(`${running.url}/metrics`)).text();
    assert.match(
      text,
      /mcpworks_executor_calls_total\{runtime="bash",outcome="ok",sandbox="(warm|cold)"\} \d+/,
    );
    assert.match(text, /mcpworks_executor_ready 1/);
  });
});

describe('shutdown', () => {
  test('SIGTERM drains: the running call finishes, readiness drops, the process exits 0', async () => {
    const running = await startExecutor(['--warm-pool-size', '0'], {
      MCPWORKS_NSJAIL: nsjail,
      MCPWORKS_EXECUTOR_TOKEN: TOKEN,
    });
    await waitReady(running.url);
    const inFlight = post(running.url, slow(1), TOKEN);
    await waitInFlight(running.url, 1);
    running.child.kill('SIGTERM');
    await waitNotReady(running.url);
    const during = await post(running.url, quick(), TOKEN).catch(() => undefined);
    assert.ok(
      during === undefined || during.status === 503,
      `status during drain: ${during?.status}`,
    );
    const response = await inFlight;
    assert.equal(response.status, 200);
    assert.equal(((await response.json()) as { outcome: string }).outcome, 'ok');
    assert.equal(await running.exited, 0);
  });
});

describe('client', () => {
  test('sends the per-server executor token and never anything else of the caller', async () => {
    let seen: IncomingHttpHeaders | undefined;
    const fake = createServer((req, res) => {
      seen = req.headers;
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          outcome: 'ok',
          isError: false,
          content: [{ type: 'text', text: 'x' }],
          durationMs: 1,
          outputBytes: 1,
          executor: 'fake',
        }),
      );
    });
    await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
    const port = (fake.address() as { port: number }).port;
    const client = createExecutorClient({ url: `http://127.0.0.1:${port}`, token: TOKEN });
    const r = await client.execute(quick());
    assert.equal(r.outcome, 'ok');
    assert.equal(seen?.authorization, `Bearer ${TOKEN}`);
    assert.equal(seen?.cookie, undefined);
    await new Promise<void>((resolve) => fake.close(() => resolve()));
  });

  /** A loopback server answering with `answer(n)` for its n-th request (from 1); counts them. */
  async function scripted(
    answer: (n: number, res: import('node:http').ServerResponse) => void,
    port = 0,
  ) {
    let requests = 0;
    const server = createServer((req, res) => {
      requests += 1;
      req.resume();
      req.on('end', () => answer(requests, res));
    });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    return {
      port: (server.address() as { port: number }).port,
      requests: () => requests,
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    };
  }
  const okAnswer = (res: import('node:http').ServerResponse) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        outcome: 'ok',
        isError: false,
        content: [{ type: 'text', text: 'ran' }],
        durationMs: 1,
        outputBytes: 3,
        executor: 'fake',
      }),
    );
  };

  test('a 503 (draining, not ready: the call was not started) is sent again, to the next pod', async () => {
    const fake = await scripted((n, res) => {
      if (n === 1) {
        res.writeHead(503).end('draining\n');
      } else okAnswer(res);
    });
    const client = createExecutorClient({ url: `http://127.0.0.1:${fake.port}`, token: TOKEN });
    const r = await client.execute(quick());
    assert.equal(r.outcome, 'ok');
    assert.equal(fake.requests(), 2);
    await fake.close();
  });

  test('a refused connection is sent again; an executor that keeps refusing is unavailable', async () => {
    const probe = await scripted(() => undefined);
    const port = probe.port;
    await probe.close();
    // Nothing listens on `port` for the first attempt; the listener is up before the retry.
    let late: Awaited<ReturnType<typeof scripted>> | undefined;
    const starting = new Promise<void>((resolve) =>
      setTimeout(() => {
        void scripted((_n, res) => okAnswer(res), port).then((server) => {
          late = server;
          resolve();
        });
      }, 10),
    );
    const client = createExecutorClient({ url: `http://127.0.0.1:${port}`, token: TOKEN });
    const r = await client.execute(quick());
    await starting;
    assert.equal(r.outcome, 'ok');
    assert.equal(late?.requests(), 1);
    await late?.close();

    const always = await scripted((_n, res) => res.writeHead(503).end('not ready\n'));
    const refused = await createExecutorClient({
      url: `http://127.0.0.1:${always.port}`,
      token: TOKEN,
    }).execute(quick());
    assert.equal(refused.outcome, 'executor-unavailable');
    assert.equal(always.requests(), 3, 'the first send and two retries, no more');
    await always.close();
  });

  test('a connection reset after the executor read the call is never sent again (it may have run)', async () => {
    const fake = await scripted((_n, res) => res.socket?.destroy());
    const client = createExecutorClient({ url: `http://127.0.0.1:${fake.port}`, token: TOKEN });
    const r = await client.execute(quick());
    assert.equal(r.outcome, 'executor-unavailable');
    assert.equal(fake.requests(), 1);
    await fake.close();
  });

  test('redaction counts are passed on; an answer with malformed counts is refused', async () => {
    let redactions: unknown = { API_TOKEN: 2 };
    const fake = createServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          outcome: 'ok',
          isError: false,
          content: [{ type: 'text', text: '[REDACTED:API_TOKEN]' }],
          durationMs: 1,
          outputBytes: 1,
          executor: 'fake',
          redactions,
        }),
      );
    });
    await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
    const port = (fake.address() as { port: number }).port;
    const client = createExecutorClient({ url: `http://127.0.0.1:${port}`, token: TOKEN });
    assert.deepEqual((await client.execute(quick())).redactions, { API_TOKEN: 2 });
    for (const bad of [{ API_TOKEN: 'x' }, { 'not a name': 1 }, { API_TOKEN: 0 }, [1]]) {
      redactions = bad;
      const r = await client.execute(quick());
      assert.equal(r.outcome, 'executor-unavailable', JSON.stringify(bad));
      assert.equal(r.message, 'the executor sent a malformed answer');
    }
    await new Promise<void>((resolve) => fake.close(() => resolve()));
  });

  test('an unreachable executor is executor-unavailable, not an exception', async () => {
    const client = createExecutorClient({ url: 'http://127.0.0.1:1', token: TOKEN });
    const r = await client.execute(quick());
    assert.equal(r.outcome, 'executor-unavailable');
  });
});
