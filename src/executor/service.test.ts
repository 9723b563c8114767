import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createExecutorMetrics } from './metrics.ts';
import { bearerMatches, createExecutorService, type ExecutorService } from './service.ts';
import { toolCall } from './testing.ts';
import type { ToolCallResult, ToolExecutor } from './types.ts';

const TOKEN = 'unit-test-token-0123456789';
const OK: ToolCallResult = {
  outcome: 'ok',
  isError: false,
  content: [{ type: 'text', text: 'x' }],
  durationMs: 1,
  outputBytes: 1,
  executor: 'fake/warm',
};

/** An executor whose calls finish when the test says so. */
function gatedExecutor() {
  const gates: Array<() => void> = [];
  const executor: ToolExecutor = {
    execute: () => new Promise((resolve) => gates.push(() => resolve(OK))),
    close: async () => undefined,
  };
  return {
    executor,
    releaseAll: () => gates.splice(0).forEach((g) => g()),
    pending: () => gates.length,
  };
}

describe('bearerMatches', () => {
  const expected = createHash('sha256').update(TOKEN).digest();
  test('accepts the exact token', () =>
    assert.equal(bearerMatches(`Bearer ${TOKEN}`, expected), true));
  test('rejects a missing header', () => assert.equal(bearerMatches(undefined, expected), false));
  test('rejects another scheme', () =>
    assert.equal(bearerMatches(`Basic ${TOKEN}`, expected), false));
  test('rejects a prefix of the token', () =>
    assert.equal(bearerMatches(`Bearer ${TOKEN.slice(0, -1)}`, expected), false));
});

describe('executor service', () => {
  let service: ExecutorService;
  let url: string;
  const gate = gatedExecutor();
  const post = (token?: string) =>
    fetch(`${url}/v1/calls`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      body: JSON.stringify(toolCall('python', 'def main(a):\n    return 1')),
    });

  before(async () => {
    service = createExecutorService({
      executor: gate.executor,
      token: TOKEN,
      maxConcurrency: 1,
      metrics: createExecutorMetrics({ defaultMetrics: false }),
    });
    const address = await service.listen(0, '127.0.0.1');
    url = `http://127.0.0.1:${address.port}`;
  });
  after(async () => {
    gate.releaseAll();
    await service.drain(1000);
  });

  test('refuses short tokens at construction', () => {
    assert.throws(
      () =>
        createExecutorService({
          executor: gate.executor,
          token: 'short',
          maxConcurrency: 1,
          metrics: createExecutorMetrics({ defaultMetrics: false }),
        }),
      /at least 16/,
    );
  });

  test('is not ready and refuses calls until the probe passed', async () => {
    assert.equal((await fetch(`${url}/readyz`)).status, 503);
    assert.equal((await post(TOKEN)).status, 503);
    service.setReady(true);
    assert.equal((await fetch(`${url}/readyz`)).status, 200);
  });

  test('401 before anything else, even when not ready', async () => {
    assert.equal((await post()).status, 401);
  });

  test('the second concurrent call gets 429 immediately', async () => {
    service.setReady(true);
    const first = post(TOKEN);
    while (gate.pending() === 0) await new Promise((resolve) => setImmediate(resolve));
    const second = await post(TOKEN);
    assert.equal(second.status, 429);
    gate.releaseAll();
    assert.equal((await first).status, 200);
  });

  test('a body over the limit is 413', async () => {
    service.setReady(true);
    const r = await fetch(`${url}/v1/calls`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ pad: 'x'.repeat(2 * 1024 * 1024) }),
    });
    assert.equal(r.status, 413);
  });

  test('unknown paths are 404 and GET on the calls path is 405', async () => {
    assert.equal((await fetch(`${url}/nope`)).status, 404);
    assert.equal((await fetch(`${url}/v1/calls`)).status, 405);
  });

  // Last in this group: stopping cannot be undone.
  test('a stopping executor answers /readyz with 503 but still runs the calls it is sent', async () => {
    service.setReady(true);
    service.markStopping();
    const readyz = await fetch(`${url}/readyz`);
    assert.equal(readyz.status, 503);
    assert.equal(await readyz.text(), 'stopping\n');
    const call = post(TOKEN);
    while (gate.pending() === 0) await new Promise((resolve) => setImmediate(resolve));
    gate.releaseAll();
    assert.equal((await call).status, 200);
  });
});

describe('executor service draining', () => {
  /** A ready service on a loopback port whose calls finish when the test says so. */
  async function readyService() {
    const gate = gatedExecutor();
    const service = createExecutorService({
      executor: gate.executor,
      token: TOKEN,
      maxConcurrency: 2,
      metrics: createExecutorMetrics({ defaultMetrics: false }),
    });
    service.setReady(true);
    const { port } = await service.listen(0, '127.0.0.1');
    return { gate, service, port };
  }

  test('a call running when the drain begins is answered on its connection, which then closes', async () => {
    const { gate, service, port } = await readyService();
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const call = () =>
      new Promise<{ status?: number; connection?: string; reused: boolean }>((resolve, reject) => {
        const req = request(
          {
            host: '127.0.0.1',
            port,
            path: '/v1/calls',
            method: 'POST',
            agent,
            headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
          },
          (res) => {
            res.resume();
            res.on('end', () =>
              resolve({
                status: res.statusCode,
                ...(res.headers.connection === undefined
                  ? {}
                  : { connection: res.headers.connection }),
                reused: req.reusedSocket,
              }),
            );
          },
        );
        req.on('error', reject);
        req.end(JSON.stringify(toolCall('python', 'def main(a):\n    return 1')));
      });
    const waitPending = async () => {
      while (gate.pending() === 0) await new Promise((resolve) => setImmediate(resolve));
    };
    try {
      const first = call();
      await waitPending();
      gate.releaseAll();
      const opened = await first;
      assert.equal(opened.status, 200);
      assert.equal(opened.reused, false);
      assert.notEqual(opened.connection, 'close');

      const inFlight = call();
      await waitPending();
      const drained = service.drain(5000);
      gate.releaseAll();
      const finished = await inFlight;
      assert.deepEqual(finished, { status: 200, connection: 'close', reused: true });

      await drained;
    } finally {
      agent.destroy();
    }
  });

  test('an idle connection from before the drain is not cut: the call written on it gets the 503', async () => {
    const { gate, service, port } = await readyService();
    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    let received = '';
    socket.on('data', (d: Buffer) => (received += d.toString()));
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const raw = (body: string) =>
      `POST /v1/calls HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nauthorization: Bearer ${TOKEN}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    const body = JSON.stringify(toolCall('python', 'def main(a):\n    return 1'));
    socket.write(raw(body));
    while (gate.pending() === 0) await new Promise((resolve) => setImmediate(resolve));
    gate.releaseAll();
    while (!received.includes('"outcome":"ok"')) await new Promise((r) => setTimeout(r, 5));
    // The connection is idle and kept alive; the drain begins; the next call is written on it.
    const drained = service.drain(5000);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(socket.destroyed, false, 'the idle connection was cut by the drain');
    received = '';
    socket.write(raw(body));
    await closed;
    assert.match(received, /^HTTP\/1\.1 503 /);
    assert.match(received, /\r\nconnection: close\r\n/i);
    assert.match(received, /the executor is shutting down/);
    await drained;
  });
});
