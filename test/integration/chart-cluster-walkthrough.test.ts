// Part 2 of docs/getting-started.md, command for command, against a real API server: helm
// install, apply the example team folder, see the server say why it is not Ready, create its
// API-key Secret from `mcpworks apikey new`, see it recover, add a Deny policy and see it
// Accepted. The operator runs in-process under the chart's ServiceAccount token. (No kubelet
// runs here, so pods never start: the MCP calls of Part 2 are covered by the local walkthrough.)
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import { createController, type Controller } from '../../src/controller/manager.ts';
import { main } from '../../src/cli/main.ts';
import { silentLogger } from '../../src/shared/logger.ts';
import { startControlPlane, type ControlPlane } from '../harness/controlplane.ts';
import { repoRoot } from '../harness/paths.ts';
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

before(async () => {
  cp = await startControlPlane();
});
after(async () => {
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
  assert.ok(entry, printed);
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

  // 6. Add a policy; it is Accepted.
  const frozen = await kubectl(['apply', '-f', '-'], FREEZE_POLICY);
  assert.equal(frozen.code, 0, frozen.stderr);
  await eventually('freeze-word-count ACCEPTED True', async () =>
    /^freeze-word-count\s+True\s+1\s/m.test(
      (await kubectl(['-n', 'mcp-team', 'get', 'agentpolicies'])).stdout,
    ),
  );
});
