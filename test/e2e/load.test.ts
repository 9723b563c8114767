// Load: 200 concurrent tool calls from four agents against a real `mcpworks serve` (real nsjail,
// trivial bash tool), allowed and denied mixed. Every call must get exactly one decision record
// with the right effect; none lost, none doubled.
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { stringify } from 'yaml';
import { generateApiKey, hashApiKey } from '../../src/gateway/auth/apikeys.ts';
import { argumentsDigest } from '../../src/gateway/decisions/canonical.ts';
import { connectClient, startServe, waitForDecisions, type RunningServe } from './serve-harness.ts';

const AGENTS = ['agent-a', 'agent-b', 'agent-c', 'agent-d'] as const;
/** agent-d may call nothing: all its calls are denied by default. */
const ALLOWED_AGENTS = new Set(['agent-a', 'agent-b', 'agent-c']);
const CALLS = 200;

let serve: RunningServe;
const keys = new Map<string, string>();

async function manifests(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'mcpworks-load-'));
  const stringData: Record<string, string> = {};
  for (const agent of AGENTS) {
    const id = agent.replace('agent-', 'k');
    const key = generateApiKey(id);
    keys.set(agent, key);
    stringData[id] = JSON.stringify({
      hash: await hashApiKey(key, { N: 1024 }),
      agent,
      groups: ['load'],
    });
  }
  const docs = [
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'load-keys', namespace: 'load' },
      stringData,
    },
    {
      apiVersion: 'mcpworks.io/v1alpha1',
      kind: 'McpServer',
      metadata: { name: 'load', namespace: 'load' },
      spec: {
        auth: { apiKeys: { secretRef: { name: 'load-keys' } } },
        executor: { maxConcurrency: 32, warmPoolSize: 4 },
        tools: [
          {
            name: 'ping',
            description: 'prints ok',
            runtime: 'bash',
            timeoutSeconds: 10,
            code: "printf 'ok'",
          },
          {
            name: 'forbidden',
            description: 'never allowed',
            runtime: 'bash',
            timeoutSeconds: 10,
            code: "printf 'no'",
          },
        ],
      },
    },
    {
      apiVersion: 'mcpworks.io/v1alpha1',
      kind: 'AgentPolicy',
      metadata: { name: 'load-access', namespace: 'load' },
      spec: {
        servers: { names: ['load'] },
        rules: [
          {
            effect: 'Allow',
            subjects: [...ALLOWED_AGENTS].map((name) => ({ kind: 'Agent', name })),
            tools: ['ping'],
            reason: 'load agents may ping',
          },
        ],
      },
    },
  ];
  const file = join(dir, 'load.yaml');
  await writeFile(file, docs.map((d) => stringify(d)).join('---\n'));
  return file;
}

before(async () => {
  serve = await startServe([await manifests()]);
});
after(async () => {
  await serve?.stop();
});

test('200 concurrent mixed calls from four agents: exactly one record each, with the right effect', async (t) => {
  const url = `${serve.base}/mcp/load/load`;
  const clients = new Map(
    await Promise.all(
      AGENTS.map(async (agent) => [agent, await connectClient(url, keys.get(agent))] as const),
    ),
  );
  const before = (await serve.decisions()).length;

  const plan = Array.from({ length: CALLS }, (_, n) => {
    const agent = AGENTS[n % AGENTS.length]!;
    const tool = n % 3 === 0 ? 'forbidden' : 'ping';
    const allowed = tool === 'ping' && ALLOWED_AGENTS.has(agent);
    return { n, agent, tool, allowed, digest: argumentsDigest({ n }) };
  });
  const results = await Promise.all(
    plan.map((p) =>
      clients
        .get(p.agent)!
        .callTool({ name: p.tool, arguments: { n: p.n } }, undefined, { timeout: 120_000 }),
    ),
  );
  for (const c of clients.values()) await c.close();

  plan.forEach((p, i) => {
    assert.equal(results[i]!.isError, !p.allowed, `call ${p.n}`);
  });

  const records = (await waitForDecisions(serve, before + CALLS))
    .slice(before)
    .filter((r) => r.method === 'tools/call');
  assert.equal(records.length, CALLS, 'one tools/call record per call');
  const byDigest = new Map<string, typeof records>();
  for (const r of records)
    byDigest.set(r.argumentsSha256!, [...(byDigest.get(r.argumentsSha256!) ?? []), r]);
  let ran = 0;
  for (const p of plan) {
    const mine = byDigest.get(p.digest) ?? [];
    assert.equal(mine.length, 1, `call ${p.n} has ${mine.length} records`);
    const record = mine[0]!;
    assert.equal(record.principal?.name, p.agent);
    assert.equal(record.tool, p.tool);
    assert.equal(record.effect, p.allowed ? 'Allow' : 'Deny', `call ${p.n}`);
    if (p.allowed) {
      // serve queues bursts for a sandbox (bounded) instead of refusing them.
      assert.equal(record.outcome, 'ok', `call ${p.n}`);
      ran += 1;
    } else {
      assert.equal(record.outcome, 'denied');
    }
  }
  assert.ok(ran > 0, 'some allowed calls ran in the sandbox');
  const allowed = plan.filter((p) => p.allowed).length;
  t.diagnostic(
    `${allowed} allowed: ${ran} ran, ${allowed - ran} refused as overloaded; ${CALLS - allowed} denied`,
  );
  // The chain of the whole log stays intact under concurrency.
  const all = await serve.decisions();
  all.forEach((r, i) => assert.equal(r.seq, i));
});
