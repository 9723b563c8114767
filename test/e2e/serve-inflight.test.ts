// Every request ends, with exactly one record that says what happened, also when the SDK would
// drop its pending response: a JSON-RPC id reused while the first call still runs, the client
// cancelling its own call, the session closed while a call runs. Raw HTTP against a real
// `mcpworks serve` with a tool that sleeps in a real sandbox.
import assert from 'node:assert/strict';
import { mkdtemp, writeFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { stringify } from 'yaml';
import type { DecisionRecord } from '../../src/gateway/decisions/record.ts';
import { repoRoot } from '../harness/paths.ts';
import { DEMO_KEY, openRawSession, startServe, type RunningServe } from './serve-harness.ts';

let serve: RunningServe;
let url: string;

before(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mcpworks-inflight-'));
  const secret = 'mcpworks_v1alpha1_apikeys_secret.yaml';
  await copyFile(join(repoRoot, 'config', 'samples', secret), join(dir, secret));
  const server = {
    apiVersion: 'mcpworks.io/v1alpha1',
    kind: 'McpServer',
    metadata: { name: 'slow', namespace: 'default' },
    spec: {
      auth: { apiKeys: { secretRef: { name: 'demo-api-keys' } } },
      tools: [
        {
          name: 'sleepy',
          description: 'Sleeps for args.s seconds, then names its call.',
          runtime: 'python',
          timeoutSeconds: 20,
          code: 'import time\ndef main(args):\n    time.sleep(float(args["s"]))\n    return {"tag": args["tag"]}\n',
        },
      ],
    },
  };
  const policy = {
    apiVersion: 'mcpworks.io/v1alpha1',
    kind: 'AgentPolicy',
    metadata: { name: 'slow-access', namespace: 'default' },
    spec: {
      servers: { names: ['slow'] },
      rules: [
        {
          effect: 'Allow',
          subjects: [{ kind: 'Agent', name: 'demo-agent' }],
          tools: ['*'],
          reason: 'the demo agent may sleep',
        },
      ],
    },
  };
  await writeFile(join(dir, 'slow.yaml'), `${stringify(server)}---\n${stringify(policy)}`);
  serve = await startServe([dir]);
  url = `${serve.base}/mcp`;
});
after(async () => {
  await serve?.stop();
});

const openSession = () => openRawSession(url, DEMO_KEY);

/** A tools/call that must end within 10 s (the tool sleeps at most 2 s); its JSON answer. */
async function call(session: Record<string, string>, id: number, s: number, tag: string) {
  const res = await fetch(url, {
    method: 'POST',
    headers: session,
    body: JSON.stringify({
      jsonrpc: '2.0',
      id,
      method: 'tools/call',
      params: { name: 'sleepy', arguments: { s, tag } },
    }),
    signal: AbortSignal.timeout(10_000),
  });
  return (await res.json()) as {
    id: number;
    result?: { structuredContent?: { tag: string } };
    error?: { code: number; message: string };
  };
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The tools/call records written after `count`, once `expected` of them are there. */
async function callRecords(count: number, expected: number): Promise<DecisionRecord[]> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const found = (await serve.decisions()).slice(count).filter((r) => r.method === 'tools/call');
    if (found.length >= expected || Date.now() > deadline) {
      await pause(300); // a second record for the same request would show up by now
      return (await serve.decisions()).slice(count).filter((r) => r.method === 'tools/call');
    }
    await pause(50);
  }
}

test('a tools/call reusing the id of a call in flight is refused at once; results never cross', async () => {
  const session = await openSession();
  const count = (await serve.decisions()).length;
  const first = call(session, 5, 1.5, 'first');
  await pause(300);
  const second = await call(session, 5, 0.1, 'second');
  assert.equal(second.error?.code, -32600);
  assert.match(second.error?.message ?? '', /id 5 is still in flight in this session/);
  assert.equal((await first).result?.structuredContent?.tag, 'first');
  const records = await callRecords(count, 2);
  assert.deepEqual(records.map((r) => r.outcome).sort(), ['duplicate-id', 'ok']);
});

test('cancelling one own call in flight ends it with an error and one cancelled record', async () => {
  const session = await openSession();
  const count = (await serve.decisions()).length;
  const pending = call(session, 9, 2, 'cancel-me');
  await pause(300);
  const cancel = await fetch(url, {
    method: 'POST',
    headers: session,
    body: JSON.stringify({
      jsonrpc: '2.0',
      method: 'notifications/cancelled',
      params: { requestId: 9 },
    }),
  });
  assert.equal(cancel.status, 202);
  const answer = await pending;
  assert.equal(answer.id, 9);
  assert.match(answer.error?.message ?? '', /request cancelled by the client/);
  const records = await callRecords(count, 1);
  assert.equal(records.length, 1);
  assert.equal(records[0]!.outcome, 'cancelled');
  assert.ok(
    records[0]!.durationMs < 2000,
    `the sandbox was stopped, not waited for: ${records[0]!.durationMs} ms`,
  );
});

test('closing the session while a call runs ends it with an error and one session-closed record', async () => {
  const session = await openSession();
  const count = (await serve.decisions()).length;
  const pending = call(session, 11, 2, 'orphan');
  await pause(300);
  assert.equal((await fetch(url, { method: 'DELETE', headers: session })).status, 200);
  const answer = await pending;
  assert.equal(answer.id, 11);
  assert.match(answer.error?.message ?? '', /the session was closed while the request ran/);
  const records = await callRecords(count, 1);
  assert.equal(records.length, 1);
  assert.equal(records[0]!.outcome, 'session-closed');
});

test('a session evicted by the per-principal cap while a call runs ends it with one session-closed record', async () => {
  const oldest = await openSession();
  const count = (await serve.decisions()).length;
  const pending = call(oldest, 13, 2, 'evicted');
  await pause(300);
  // The default cap is 32 sessions per principal: the 32nd new one closes the oldest.
  for (let i = 0; i < 32; i++) await openSession();
  const answer = await pending;
  assert.equal(answer.id, 13);
  assert.match(answer.error?.message ?? '', /the session was closed while the request ran/);
  const records = await callRecords(count, 1);
  assert.equal(records.length, 1);
  assert.equal(records[0]!.outcome, 'session-closed');
});
