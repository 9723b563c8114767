// `mcpworks gateway` as a child process, configured exactly as the controller deploys it: its
// McpServer, policies and RBAC come from the cluster (created by the in-process controller), it
// authenticates with the ServiceAccount token the pod would have, and an agent calls it with its
// own ServiceAccount token through the official MCP SDK client.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { kubeconfigYaml, startControlPlane, type ControlPlane } from '../harness/controlplane.ts';
import { freePort } from '../harness/processes.ts';
import { repoRoot } from '../harness/paths.ts';
import { createController, type Controller } from '../../src/controller/manager.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import { Resources } from '../../src/k8s/resources.ts';
import type { KubeObject } from '../../src/k8s/types.ts';
import { silentLogger } from '../../src/shared/logger.ts';
import {
  adminClient,
  installCrds,
  installGatewayClusterRole,
  mcpServer,
  waitFor,
} from './controller-fixtures.ts';

let cp: ControlPlane;
let admin: KubeClient;
let controller: Controller;
let gateway: ChildProcess | undefined;

before(async () => {
  cp = await startControlPlane();
  await installCrds(cp.kubeConfig);
  admin = adminClient(cp.kubeConfig);
  await installGatewayClusterRole(admin);
  controller = createController({ kubeConfig: cp.kubeConfig, logger: silentLogger() });
  await controller.start();
});

after(async () => {
  gateway?.kill('SIGKILL');
  await controller?.stop();
  await cp?.stop();
});

async function token(namespace: string, name: string, audiences?: string[]): Promise<string> {
  const core = cp.kubeConfig.makeApiClient(CoreV1Api);
  const res = await core.createNamespacedServiceAccountToken({
    name,
    namespace,
    body: { spec: { expirationSeconds: 3600, ...(audiences ? { audiences } : {}) } },
  });
  return res.status?.token ?? '';
}

/** The policy `agent-echo` on server demo: the ServiceAccount agent may call `tools`. */
function agentPolicyFor(ns: string, tools: string[], reason: string): KubeObject {
  return {
    apiVersion: 'mcpworks.io/v1alpha1',
    kind: 'AgentPolicy',
    metadata: { name: 'agent-echo', namespace: ns },
    spec: {
      servers: { names: ['demo'] },
      rules: [
        {
          effect: 'Allow',
          subjects: [{ kind: 'ServiceAccount', name: 'agent' }],
          tools,
          reason,
        },
      ],
    },
  };
}

test('the gateway serves its McpServer from the cluster and follows a policy change', async () => {
  const ns = await cp.newNamespace('gw-proc');
  await admin.create(Resources.ServiceAccount, {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: { name: 'agent', namespace: ns },
  });
  await admin.create(
    Resources.McpServer,
    mcpServer(ns, 'demo', { tools: [{ name: 'echo' }, { name: 'secret_tool' }] }),
  );
  await admin.create(Resources.AgentPolicy, agentPolicyFor(ns, ['echo'], 'agent may echo'));
  await waitFor('gateway RBAC', () =>
    admin.get(Resources.ClusterRoleBinding, `mcpworks-gateway.${ns}.demo`),
  );
  await waitFor('gateway RoleBinding', () => admin.get(Resources.RoleBinding, 'demo-gateway', ns));

  // The executor Service's stand-in: holds each call until the test lets it answer, so a call
  // is still running when the gateway is told to stop.
  const held: Array<() => void> = [];
  const executor = createServer((req, res) => {
    req.resume();
    held.push(() => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          outcome: 'ok',
          isError: false,
          content: [{ type: 'text', text: 'echoed' }],
          durationMs: 1,
          outputBytes: 6,
          executor: 'stand-in/warm',
        }),
      );
    });
  });
  await new Promise<void>((resolve) => executor.listen(0, '127.0.0.1', resolve));
  after(() => executor.close());
  const executorPort = (executor.address() as AddressInfo).port;

  const dir = await mkdtemp(join(tmpdir(), 'mcpworks-gw-'));
  const kubeconfigPath = join(dir, 'gateway.kubeconfig');
  await writeFile(
    kubeconfigPath,
    kubeconfigYaml(cp.server, cp.caCertPem, { token: await token(ns, 'demo-gateway') }),
    { mode: 0o600 },
  );
  const port = await freePort();
  gateway = spawn(
    process.execPath,
    [
      join(repoRoot, 'src', 'cli', 'main.ts'),
      'gateway',
      `--kubeconfig=${kubeconfigPath}`,
      '--host=127.0.0.1',
      `--port=${port}`,
      `--public-url=http://127.0.0.1:${port}`,
    ],
    {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: {
        ...process.env,
        MCPWORKS_SERVER_NAMESPACE: ns,
        MCPWORKS_SERVER_NAME: 'demo',
        MCPWORKS_EXECUTOR_URL: `http://127.0.0.1:${executorPort}`,
        MCPWORKS_EXECUTOR_TOKEN: 'test-executor-token',
      },
    },
  );
  const exited = once(gateway, 'exit');
  await waitFor(
    'gateway healthy',
    async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok,
    30_000,
    200,
  );

  const agentToken = await token(ns, 'agent', ['mcpworks']);
  const listTools = async () => {
    const client = new Client({ name: 'test-agent', version: '1.0.0' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${port}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${agentToken}` } },
      }),
    );
    try {
      return (await client.listTools()).tools.map((t) => t.name).sort();
    } finally {
      await client.close();
    }
  };
  assert.deepEqual(await listTools(), ['echo']);

  // A policy edit reaches the running gateway without a restart.
  await admin.apply(Resources.AgentPolicy, agentPolicyFor(ns, ['*'], 'agent may use every tool'));
  await waitFor('policy change applied', async () => (await listTools()).length === 2, 10_000, 200);

  // SIGTERM while a call runs and a client holds an idle keep-alive connection: the call is
  // answered, a request written on the held connection is answered too (with connection: close)
  // instead of being lost to a reset, and the gateway then exits 0.
  const caller = new Client({ name: 'test-agent', version: '1.0.0' });
  await caller.connect(
    new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${port}/mcp`), {
      requestInit: { headers: { authorization: `Bearer ${agentToken}` } },
    }),
  );
  const running = caller.callTool({ name: 'echo', arguments: {} });
  await waitFor('the call reached the executor', () => held.length === 1, 10_000, 20);
  const heldConnection = connect(port, '127.0.0.1');
  await once(heldConnection, 'connect');
  let received = '';
  heldConnection.on('data', (d: Buffer) => (received += d.toString()));
  const healthz = 'GET /healthz HTTP/1.1\r\nhost: gateway\r\n\r\n';
  heldConnection.write(healthz);
  await waitFor('the first answer', () => received.includes('ok\n'), 10_000, 20);
  assert.doesNotMatch(received, /connection: close/i);

  gateway.kill('SIGTERM');
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(heldConnection.destroyed, false, 'the idle connection was cut');
  received = '';
  const closed = once(heldConnection, 'close');
  heldConnection.write(healthz);
  await closed;
  assert.match(received, /^HTTP\/1\.1 200 /);
  assert.match(received, /\r\nconnection: close\r\n/i);

  held.splice(0).forEach((answer) => answer());
  const result = await running;
  assert.notEqual(result.isError, true);
  assert.deepEqual(result.content, [{ type: 'text', text: 'echoed' }]);
  await caller.close().catch(() => undefined);
  const [code] = await exited;
  assert.equal(code, 0);
  gateway = undefined;
});
