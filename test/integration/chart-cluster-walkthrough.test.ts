// Part 2 of docs/getting-started.md, command for command, against a real API server: helm
// install, apply the example team folder, see the server say why it is not Ready, create its
// API-key Secret from `mcpworks apikey new`, see it recover, add a Deny policy and see it
// Accepted, and find the denial in the decision log, the metrics and an Event. The operator runs
// in-process under the chart's ServiceAccount token. No kubelet runs here, so the two workloads
// run as child processes configured as their pods would be: `mcpworks gateway` under its own
// ServiceAccount token (the RBAC the operator gave it) and `mcpworks executor` with the token
// Secret the operator generated, running every call in a real nsjail.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import { createController, type Controller } from '../../src/controller/manager.ts';
import { main } from '../../src/cli/main.ts';
import { silentLogger } from '../../src/shared/logger.ts';
import { kubeconfigYaml, startControlPlane, type ControlPlane } from '../harness/controlplane.ts';
import { repoRoot, resolveNsjail } from '../harness/paths.ts';
import { freePort } from '../harness/processes.ts';
import { binary, chartDir, run } from './chart-support.ts';

const FREEZE_POLICY = `apiVersion: mcpworks.io/v1alpha1
kind: AgentPolicy
metadata:
  name: freeze-word-count
  namespace: mcp-team
spec:
  servers:
    names: [tools]
  rules:
    - effect: Deny
      subjects:
        - kind: Agent
          name: report-bot
      tools: [word_count]
      reason: word_count is frozen during incident INC-42
`;

let cp: ControlPlane;
let controller: Controller | undefined;
const children: ChildProcess[] = [];
const MAIN = join(repoRoot, 'src', 'cli', 'main.ts');
const CLIENT = join(repoRoot, 'examples', 'client', 'mcp-call.ts');

before(async () => {
  cp = await startControlPlane();
});
after(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  await controller?.stop();
  await cp?.stop();
});

const kubectl = (args: string[], input?: string) =>
  run(binary('kubectl'), ['--kubeconfig', cp.kubeconfigPath, ...args], {
    ...(input === undefined ? {} : { input }),
  });

async function eventually(
  what: string,
  probe: () => Promise<boolean>,
  show: () => Promise<string> = async () => '',
): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${await show()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A workload process; its stdout is collected (the gateway's decision log). */
function startWorkload(
  args: string[],
  env: Record<string, string>,
): { child: ChildProcess; stdout: () => string } {
  let out = '';
  let err = '';
  const child = spawn(process.execPath, [MAIN, ...args], {
    env: { ...process.env, MCPWORKS_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  child.on('exit', (code) => {
    if (code !== 0 && code !== null) process.stderr.write(`${args[0]} exited ${code}:\n${err}\n`);
  });
  children.push(child);
  return { child, stdout: () => out };
}

async function healthy(url: string): Promise<boolean> {
  try {
    return (await fetch(url, { signal: AbortSignal.timeout(2000) })).ok;
  } catch {
    return false;
  }
}

function mcpCall(url: string, token: string, ...args: string[]) {
  return run(process.execPath, [CLIENT, '--url', url, '--token', token, ...args], {
    timeoutMs: 60_000,
  });
}

test('getting started, part 2: install, declare, fix what status says, add a policy', async () => {
  // 1. Install the operator.
  const install = await run(binary('helm'), [
    '--kubeconfig',
    cp.kubeconfigPath,
    'install',
    'mcpworks',
    chartDir,
    '--namespace',
    'mcpworks-system',
    '--create-namespace',
  ]);
  assert.equal(install.code, 0, install.stderr);
  const established = await kubectl([
    'wait',
    '--for=condition=Established',
    '--timeout=30s',
    'crd/mcpservers.mcpworks.io',
    'crd/agentpolicies.mcpworks.io',
    'crd/clusteragentpolicies.mcpworks.io',
  ]);
  assert.equal(established.code, 0, established.stderr);
  // The operator as its pod would run it: the chart's ServiceAccount, RBAC enforced.
  const token = await cp.kubeConfig.makeApiClient(CoreV1Api).createNamespacedServiceAccountToken({
    name: 'mcpworks',
    namespace: 'mcpworks-system',
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  assert.ok(token.status?.token);
  controller = createController({
    kubeConfig: cp.kubeconfigFor({ token: token.status.token }),
    logger: silentLogger(),
    recheckMissingInputsMs: 500,
  });
  await controller.start();

  // 2. Declare a server and its policy; status says what is missing.
  const applied = await kubectl(['apply', '-k', join(repoRoot, 'examples/gitops/apps/mcp-team')]);
  assert.equal(applied.code, 0, applied.stderr);
  const getServers = () => kubectl(['-n', 'mcp-team', 'get', 'mcpservers', '-o', 'wide']);
  await eventually(
    'REASON SecretNotFound',
    async () =>
      /^tools\s+False\s+2\s+http:\/\/tools-gateway\.mcp-team\.svc:8080\/mcp\s+SecretNotFound/m.test(
        (await getServers()).stdout,
      ),
    async () =>
      (await getServers()).stdout +
      (await kubectl(['-n', 'mcp-team', 'get', 'mcpservers', '-o', 'yaml'])).stdout,
  );
  const described = await kubectl(['-n', 'mcp-team', 'describe', 'mcpserver', 'tools']);
  assert.match(described.stdout, /Secret mcp-team\/tools-api-keys not found/);

  // 3. Give an agent an API key: the Secret entry `mcpworks apikey new` prints.
  let printed = '';
  const io = { stdout: (t: string) => (printed += t), stderr: () => {}, env: {}, cwd: repoRoot };
  assert.equal(await main(['apikey', 'new', 'report-bot', '--agent', 'report-bot'], io), 0);
  const entry = /^\s+report-bot: '(.+)'$/m.exec(printed)?.[1];
  const apiKey = /^\s+(mcpw_report-bot_\S+)$/m.exec(printed)?.[1];
  assert.ok(entry && apiKey, printed);
  const secret = await kubectl([
    '-n',
    'mcp-team',
    'create',
    'secret',
    'generic',
    'tools-api-keys',
    `--from-literal=report-bot=${entry}`,
  ]);
  assert.equal(secret.code, 0, secret.stderr);
  await eventually('the server to stop reporting SecretNotFound', async () => {
    const out = (await getServers()).stdout;
    return /^tools\s/m.test(out) && !out.includes('SecretNotFound');
  });

  // The pods, as child processes (see the header).
  const core = cp.kubeConfig.makeApiClient(CoreV1Api);
  const tokenSecret = await core.readNamespacedSecret({
    name: 'tools-executor-token',
    namespace: 'mcp-team',
  });
  const executorToken = Buffer.from(tokenSecret.data?.['token'] ?? '', 'base64').toString();
  assert.ok(executorToken, 'the operator generated no executor token');
  const [executorPort, gatewayPort] = [await freePort(), await freePort()];
  const executor = startWorkload(['executor', '--host=127.0.0.1', `--port=${executorPort}`], {
    MCPWORKS_NSJAIL: resolveNsjail(),
    MCPWORKS_EXECUTOR_TOKEN: executorToken,
  });
  const gatewayToken = await core.createNamespacedServiceAccountToken({
    name: 'tools-gateway',
    namespace: 'mcp-team',
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const dir = await mkdtemp(join(tmpdir(), 'mcpworks-walkthrough-'));
  const gatewayKubeconfig = join(dir, 'gateway.kubeconfig');
  await writeFile(
    gatewayKubeconfig,
    kubeconfigYaml(cp.server, cp.caCertPem, { token: gatewayToken.status?.token ?? '' }),
    { mode: 0o600 },
  );
  const gateway = startWorkload(
    ['gateway', `--kubeconfig=${gatewayKubeconfig}`, '--host=127.0.0.1', `--port=${gatewayPort}`],
    {
      MCPWORKS_SERVER_NAMESPACE: 'mcp-team',
      MCPWORKS_SERVER_NAME: 'tools',
      MCPWORKS_EXECUTOR_URL: `http://127.0.0.1:${executorPort}`,
      MCPWORKS_EXECUTOR_TOKEN: executorToken,
    },
  );
  await eventually('the executor to pass its sandbox self-test', () =>
    healthy(`http://127.0.0.1:${executorPort}/readyz`),
  );
  await eventually('the gateway to serve', () =>
    healthy(`http://127.0.0.1:${gatewayPort}/healthz`),
  );
  const endpoint = `http://127.0.0.1:${gatewayPort}/mcp`;

  // 4. Call it with the API key.
  const byKey = await mcpCall(endpoint, apiKey, 'word_count', '{"text": "hello from the cluster"}');
  assert.equal(byKey.code, 0, byKey.stdout + byKey.stderr);
  assert.match(byKey.stdout, /\\"words\\": ?4/);

  // 5. Call it with a ServiceAccount token.
  const sa = await kubectl(['-n', 'mcp-team', 'create', 'serviceaccount', 'analyst']);
  assert.equal(sa.code, 0, sa.stderr);
  const saToken = await kubectl([
    '-n',
    'mcp-team',
    'create',
    'token',
    'analyst',
    '--audience',
    'mcpworks',
    '--duration',
    '10m',
  ]);
  assert.equal(saToken.code, 0, saToken.stderr);
  const bySa = await mcpCall(endpoint, saToken.stdout.trim(), 'word_count', '{"text": "hello"}');
  assert.equal(bySa.code, 0, bySa.stdout + bySa.stderr);
  const wrongAudience = await kubectl([
    '-n',
    'mcp-team',
    'create',
    'token',
    'analyst',
    '--duration',
    '10m',
  ]);
  const refused = await mcpCall(endpoint, wrongAudience.stdout.trim(), '--list');
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /the token was not accepted/);

  // 6. Add a policy; it is Accepted.
  const frozen = await kubectl(['apply', '-f', '-'], FREEZE_POLICY);
  assert.equal(frozen.code, 0, frozen.stderr);
  await eventually('freeze-word-count ACCEPTED True', async () =>
    /^freeze-word-count\s+True\s+1\s/m.test(
      (await kubectl(['-n', 'mcp-team', 'get', 'agentpolicies'])).stdout,
    ),
  );
  //    ... and the same call is now denied, with the policy's reason.
  const reason = 'word_count is frozen during incident INC-42';
  await eventually('the gateway to deny word_count', async () => {
    const r = await mcpCall(endpoint, apiKey, 'word_count', '{"text": "hello"}');
    return r.code === 1 && r.stdout.includes(`denied by policy: ${reason}`);
  });

  // 7. Find the decision: the log, the metric, the Event.
  const denial = gateway
    .stdout()
    .split('\n')
    .filter((l) => l.includes('"msg":"decision"'))
    .map(
      (l) =>
        JSON.parse(l) as {
          effect: string;
          tool?: string;
          reason: string;
          rule?: { name: string; index: number };
        },
    )
    .findLast((r) => r.effect === 'Deny' && r.tool === 'word_count');
  assert.ok(denial, 'no Deny record for word_count in the gateway log');
  assert.equal(denial.reason, reason);
  assert.deepEqual([denial.rule?.name, denial.rule?.index], ['freeze-word-count', 0]);
  const metrics = await (await fetch(`http://127.0.0.1:${gatewayPort}/metrics`)).text();
  assert.match(
    metrics,
    /^mcpworks_decisions_total\{server="mcp-team\/tools",tool="word_count",effect="deny",reason_code="policy_deny"\} [1-9]/m,
  );
  // Events are aggregated per minute; a stopping gateway publishes what it holds.
  gateway.child.kill('SIGTERM');
  await once(gateway.child, 'exit');
  await eventually('the ToolCallDenied Event', async () =>
    (
      await kubectl([
        '-n',
        'mcp-team',
        'get',
        'events',
        '--field-selector',
        'reason=ToolCallDenied',
      ])
    ).stdout.includes(`report-bot was denied tool word_count: ${reason}`),
  );
  executor.child.kill('SIGTERM');
});
