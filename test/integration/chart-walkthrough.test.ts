// The README's first steps, exactly as written: run the samples with `mcpworks serve`, call them
// with examples/client/mcp-call.ts and the demo API key, watch sha256 get denied with the
// policy's reason, then find that decision in the decision log and in the metrics.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { DEMO_KEY, startServe, waitForDecisions, type RunningServe } from '../e2e/serve-harness.ts';
import { repoRoot } from '../harness/paths.ts';

const CLIENT = join(repoRoot, 'examples', 'client', 'mcp-call.ts');
const DENY_REASON = 'hashing is reserved for the release pipeline, not for agents';

let serve: RunningServe;
before(async () => {
  serve = await startServe([join(repoRoot, 'config', 'samples')]);
});
after(() => serve?.stop());

function mcpCall(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLIENT, '--url', `${serve.base}/mcp`, ...args], {
      env: { ...process.env, MCP_TOKEN: DEMO_KEY },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 30_000,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

test('mcp-call --list shows the tools demo-agent may call', async () => {
  const { code, stdout, stderr } = await mcpCall('--list');
  assert.equal(code, 0, stderr);
  const names = (JSON.parse(stdout) as { name: string }[]).map((t) => t.name);
  assert.ok(names.includes('word_count'), stdout);
});

test('an allowed call runs in the sandbox and returns its result', async () => {
  const { code, stdout, stderr } = await mcpCall('word_count', '{"text": "hello sandboxed world"}');
  assert.equal(code, 0, stderr + stdout);
  assert.match(stdout, /\\"words\\": ?3/);
});

test('a denied call fails with the policy reason, in the log and in the metrics', async () => {
  const before = (await serve.decisions()).length;
  const { code, stdout } = await mcpCall('sha256', '{"text": "x"}');
  assert.equal(code, 1, stdout);
  assert.ok(stdout.includes(`denied by policy: ${DENY_REASON}`), stdout);

  const records = await waitForDecisions(serve, before + 1);
  const denial = records.findLast((r) => r.tool === 'sha256');
  assert.ok(denial, 'no decision record for the sha256 call');
  assert.equal(denial.effect, 'Deny');
  assert.equal(denial.reason, DENY_REASON);
  assert.deepEqual(denial.rule, {
    kind: 'AgentPolicy',
    namespace: 'default',
    name: 'demo-agent-access',
    index: 1,
  });
  assert.equal(denial.principal?.name, 'demo-agent');

  const metrics = await (await fetch(`${serve.base}/metrics`)).text();
  const series = metrics
    .split('\n')
    .find(
      (l) =>
        l.startsWith('mcpworks_decisions_total{') &&
        l.includes('tool="sha256"') &&
        l.includes('effect="deny"') &&
        l.includes('reason_code="policy_deny"'),
    );
  assert.ok(series, `no deny series for sha256 in /metrics`);
  assert.ok(Number(series.slice(series.lastIndexOf(' ') + 1)) >= 1, series);
});
