// One agent must not starve the others: through a real `mcpworks serve` (real nsjail, a python
// tool that sleeps) with one sandbox slot, an agent that floods slow calls gets its excess
// refused with the per-agent limit named, and another agent's single call still runs next; with
// two servers, one server's callers do not take the other server's turn. Ordering is forced by
// the single slot, so the assertions are on order and outcomes, not on time.
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import {
  DEMO_KEY,
  connectClient,
  samplesWithSecondAgent,
  startServe,
  waitForDecisions,
  type RunningServe,
} from './serve-harness.ts';

const SLEEPY =
  'import time\ndef main(args):\n    time.sleep(float(args["s"]))\n    return {"tag": args["tag"]}\n';

function server(name: string) {
  return {
    apiVersion: 'mcpworks.io/v1alpha1',
    kind: 'McpServer',
    metadata: { name, namespace: 'default' },
    spec: {
      auth: { apiKeys: { secretRef: { name: 'demo-api-keys' } } },
      // One slot: calls run one after the other, so the queue alone decides the order.
      executor: { maxConcurrency: 1 },
      tools: [
        {
          name: 'sleepy',
          description: 'Sleeps for args.s seconds, then names its call.',
          runtime: 'python',
          timeoutSeconds: 20,
          code: SLEEPY,
        },
      ],
    },
  };
}

/** A directory with the demo key Secret (demo-agent and e2e-agent), these servers and a policy. */
async function manifests(names: string[]): Promise<{ dir: string; secondKey: string }> {
  const samples = await samplesWithSecondAgent();
  const dir = await mkdtemp(join(tmpdir(), 'mcpworks-fairness-'));
  for (const file of await readdir(samples.dir)) {
    if (file.includes('secret')) await copyFile(join(samples.dir, file), join(dir, file));
  }
  const policy = {
    apiVersion: 'mcpworks.io/v1alpha1',
    kind: 'AgentPolicy',
    metadata: { name: 'sleepers', namespace: 'default' },
    spec: {
      servers: { names },
      rules: [
        {
          effect: 'Allow',
          subjects: [
            { kind: 'Agent', name: 'demo-agent' },
            { kind: 'Agent', name: 'e2e-agent' },
          ],
          tools: ['sleepy'],
          reason: 'both agents may sleep',
        },
      ],
    },
  };
  const docs = [...names.map(server), policy].map((d) => stringify(d)).join('---\n');
  await writeFile(join(dir, 'servers.yaml'), docs);
  return { dir, secondKey: samples.key };
}

/** A gauge or counter sample from /metrics (0 when absent). */
async function metric(serve: RunningServe, name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${serve.base}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** Polls /metrics until the queue of `server` holds `n` waiting calls. */
async function untilWaiting(serve: RunningServe, server: string, n: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const waiting = await metric(serve, 'mcpworks_queue_waiting', `server="${server}"`);
    if (waiting === n) return;
    if (Date.now() > deadline) throw new Error(`${server}: ${waiting} waiting, expected ${n}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

interface Call {
  tag: string;
  isError: boolean;
  text: string;
}

/** Starts a call of sleepy; `done` gets its tag when it ends, in the order calls end. */
function call(client: Client, tag: string, s: number, done: string[]): Promise<Call> {
  return client
    .callTool({ name: 'sleepy', arguments: { s, tag } }, undefined, { timeout: 60_000 })
    .then((result) => {
      done.push(tag);
      const content = result.content as { type: string; text: string }[];
      return { tag, isError: result.isError === true, text: content[0]?.text ?? '' };
    });
}

describe('one agent flooding a server', () => {
  let serve: RunningServe;
  let a: Client;
  let b: Client;

  before(async () => {
    const { dir, secondKey } = await manifests(['slow']);
    serve = await startServe([dir]);
    a = await connectClient(`${serve.base}/mcp`, DEMO_KEY);
    b = await connectClient(`${serve.base}/mcp`, secondKey);
  });
  after(async () => {
    await a?.close();
    await b?.close();
    await serve?.stop();
  });

  test("gets its excess refused with the per-agent limit, and the other agent's call runs next", async () => {
    const before = (await serve.decisions()).length;
    const done: string[] = [];
    // One slot: demo-agent may hold 1 running and 4 waiting calls; the other 3 are refused.
    const flood = Array.from({ length: 8 }, (_, i) => call(a, `a${i}`, 1.5, done));
    await untilWaiting(serve, 'default/slow', 4);
    const second = call(b, 'b', 0, done);
    const results = await Promise.all([...flood, second]);

    const refused = results.filter((r) => r.isError);
    assert.equal(refused.length, 3, JSON.stringify(results));
    for (const r of refused) {
      assert.equal(
        r.text,
        "agent 'demo-agent' already has 1 call running and 4 waiting (limit per agent: 1 running, 4 waiting); try again later",
      );
    }
    const secondResult = results.at(-1)!;
    assert.equal(secondResult.isError, false, secondResult.text);
    // e2e-agent's call waited behind demo-agent's running call only, not behind its queue.
    const ran = results.filter((r) => !r.isError && r.tag !== 'b').map((r) => r.tag);
    assert.equal(ran.length, 5);
    assert.equal(done.filter((t) => ran.includes(t) || t === 'b').indexOf('b'), 1, done.join());

    const records = (await waitForDecisions(serve, before + 9))
      .slice(before)
      .filter((r) => r.method === 'tools/call');
    const overloaded = records.filter((r) => r.outcome === 'overloaded');
    assert.equal(overloaded.length, 3);
    for (const r of overloaded) {
      assert.equal(r.principal?.name, 'demo-agent');
      assert.equal(r.refusal, 'principal-share');
    }
    const ok = records.filter((r) => r.outcome === 'ok');
    assert.equal(ok.length, 6);
    assert.ok(ok.every((r) => r.refusal === undefined));
    assert.equal(
      await metric(
        serve,
        'mcpworks_queue_refusals_total',
        'server="default/slow",reason="principal-share"',
      ),
      3,
    );
    assert.equal(await metric(serve, 'mcpworks_queue_waiting', 'server="default/slow"'), 0);
  });
});

describe('two servers in one serve', () => {
  let serve: RunningServe;
  let ax: Client;
  let bx: Client;
  let ay: Client;

  before(async () => {
    const { dir, secondKey } = await manifests(['x', 'y']);
    serve = await startServe([dir]);
    ax = await connectClient(`${serve.base}/mcp/default/x`, DEMO_KEY);
    bx = await connectClient(`${serve.base}/mcp/default/x`, secondKey);
    ay = await connectClient(`${serve.base}/mcp/default/y`, DEMO_KEY);
  });
  after(async () => {
    for (const c of [ax, bx, ay]) await c?.close();
    await serve?.stop();
  });

  test("one server's callers do not take another server's turn", async () => {
    const done: string[] = [];
    // Server x: demo-agent holds the one slot and 4 waiting, e2e-agent 4 waiting (never served).
    const onX = Array.from({ length: 5 }, (_, i) => call(ax, `xa${i}`, 1, done));
    await untilWaiting(serve, 'default/x', 4);
    onX.push(...Array.from({ length: 4 }, (_, i) => call(bx, `xb${i}`, 1, done)));
    await untilWaiting(serve, 'default/x', 8);
    // Server y has no call running: its first call is next, ahead of e2e-agent's on x.
    const onY = call(ay, 'y', 0, done);
    const results = await Promise.all([...onX, onY]);
    assert.ok(
      results.every((r) => !r.isError),
      JSON.stringify(results.filter((r) => r.isError)),
    );
    assert.equal(done.indexOf('y'), 1, done.join());
    assert.equal(
      await metric(serve, 'mcpworks_queue_running', 'server="default/y"'),
      0,
      'the slot was released',
    );
  });
});
