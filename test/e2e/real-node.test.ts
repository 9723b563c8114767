// The product on a real kubelet: the chart installed with the images built from the project's
// Dockerfiles, docs/getting-started.md Part 2 applied as written, and agents calling tools from a
// pod through the gateway Service. Every step depends on the ones before it: a failed step fails
// all later ones (none is skipped), and the pods' description and logs are printed.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { after, before } from 'node:test';
import { stringify } from 'yaml';
import { main } from '../../src/cli/main.ts';
import { ensureProjectImages } from '../harness/images.ts';
import { startNodeCluster, type NodeCluster } from '../harness/node.ts';
import { repoRoot } from '../harness/paths.ts';
import { freePort } from '../harness/processes.ts';
import { binary } from '../integration/chart-support.ts';
import { eventually } from '../harness/wait.ts';
import {
  dependentSteps,
  getJson as getJsonOf,
  kubectlOf,
  printDiagnostics,
  runAgent,
  type CallResult,
} from './real-node-steps.ts';

const NS = 'mcp-team';
const SYSTEM_NS = 'mcpworks-system';
const CLIENT_IMAGE = 'docker.io/mcpworks/mcpworks:0.1.0';
const TOOLS_URL = `http://tools-gateway.${NS}.svc:8080/mcp`;
const POLY_URL = `http://polyglot-gateway.${NS}.svc:8080/mcp`;
const SA_TOKEN_FILE = '/var/run/secrets/mcpworks/token';
const API_SERVER_TOKEN_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/token';

const suiteStarted = Date.now();
let cluster: NodeCluster;
let apiKey = '';
const kubectl = kubectlOf(() => cluster);
const yamlDocs = (...objects: object[]) => objects.map((o) => stringify(o)).join('---\n');

/** Tells the agent pod's calling loop to stop: it watches for this file. */
const stopAgentLoop = (file: string) =>
  kubectl([
    '-n',
    NS,
    'exec',
    'agent',
    '--',
    'node',
    '-e',
    `require("node:fs").writeFileSync("${file}", "")`,
  ]);

/** A step of the walk-through; after a failure the later steps fail too, naming the first. */
const step = dependentSteps(() =>
  printDiagnostics(kubectl, {
    kinds: 'pods,deployments,services,mcpservers,agentpolicies',
    namespaces: [SYSTEM_NS, NS],
    serverNamespace: NS,
    events: true,
  }),
);

/** Runs the agent script in the client pod (test/e2e/real-node-client.mjs). */
const agent = <T = CallResult>(request: Record<string, unknown>, timeoutMs?: number) =>
  runAgent<T>(kubectl, NS, request, timeoutMs);

const callWithKey = (url: string, tool: string, args: Record<string, unknown> = {}) =>
  agent({ op: 'call', url, token: apiKey, tool, args });
const callWithToken = (url: string, tool: string, args: Record<string, unknown> = {}) =>
  agent({ op: 'call', url, tokenFile: SA_TOKEN_FILE, tool, args });

const getJson = <T>(args: string[]) => getJsonOf<T>(kubectl, args);

interface PodList {
  items: {
    metadata: { name: string; labels?: Record<string, string>; deletionTimestamp?: string };
    status: { podIP?: string; phase?: string };
  }[];
}

const componentPods = (server: string, component: string) =>
  getJson<PodList>([
    '-n',
    NS,
    'get',
    'pods',
    '-l',
    `app.kubernetes.io/instance=${server},app.kubernetes.io/component=${component}`,
  ]);

async function serverReady(name: string): Promise<boolean> {
  const s = await getJson<{
    metadata: { generation: number };
    status?: { observedGeneration?: number; conditions?: { type: string; status: string }[] };
  }>(['-n', NS, 'get', 'mcpserver', name]);
  return (
    s.status?.observedGeneration === s.metadata.generation &&
    s.status.conditions?.find((c) => c.type === 'Ready')?.status === 'True'
  );
}

const py = (body: string) => `def main(args):\n${body.replace(/^/gm, '    ')}\n`;

/** One tool per runtime, a slow one, and the attack battery's probes, all as tool code. */
const polyglotTools = (version: string) => [
  {
    name: 'hello_python',
    description: 'Greets in Python.',
    runtime: 'python',
    code: py(
      `import sys\nreturn {"runtime": "python", "version": "${version}", "name": args["name"], "py": sys.version_info[0]}`,
    ),
    timeoutSeconds: 10,
  },
  {
    name: 'hello_node',
    description: 'Greets in Node.',
    runtime: 'node',
    code: `function main(args) { return { runtime: 'node', version: '${version}', name: args.name, node: process.versions.node }; }\n`,
    timeoutSeconds: 10,
  },
  {
    name: 'hello_bash',
    description: 'Greets in Bash.',
    runtime: 'bash',
    code: `name=$(printf '%s' "$ARGS_JSON" | sed -E 's/.*"name": ?"([^"]*)".*/\\1/')\nprintf '{"runtime":"bash","version":"${version}","name":"%s"}\\n' "$name"\n`,
    timeoutSeconds: 10,
  },
  {
    name: 'slow',
    description: 'Sleeps, for a call that outlives its executor pod.',
    runtime: 'python',
    code: `import time\n${py('time.sleep(args.get("seconds", 20))\nreturn "slept"')}`,
    timeoutSeconds: 60,
  },
  {
    name: 'connect',
    description: 'Opens a TCP connection (the sandbox must refuse).',
    runtime: 'python',
    code: `import socket\n${py('s = socket.create_connection((args["host"], args["port"]), timeout=3)\nreturn "connected"')}`,
    timeoutSeconds: 10,
  },
  {
    name: 'find_secrets',
    description: 'Looks for the executor token where tool code could see it.',
    runtime: 'python',
    code: `import os\n${py(
      [
        'found = {"env": dict(os.environ)}',
        'for root in ["/var/run/secrets", "/run/secrets", "/proc/1/environ", "/proc/self/environ"]:',
        '    try:',
        '        found[root] = open(root).read() if os.path.isfile(root) else sorted(os.listdir(root))',
        '    except Exception as e:',
        '        found[root] = type(e).__name__',
        'for pid in [p for p in os.listdir("/proc") if p.isdigit()]:',
        '    try:',
        '        found["environ/" + pid] = open("/proc/" + pid + "/environ").read()',
        '    except Exception as e:',
        '        found["environ/" + pid] = type(e).__name__',
        'return found',
      ].join('\n'),
    )}`,
    timeoutSeconds: 10,
  },
  {
    // mount(2) of the cgroupfs: a read-write remount, and a fresh v1 hierarchy.
    name: 'cgroup_mount',
    description: 'Tries to remount the cgroupfs or mount a new hierarchy.',
    runtime: 'python',
    code: `import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n${py(
      [
        'os.makedirs("/tmp/cg", exist_ok=True)',
        'if args["how"] == "remount":',
        '    r = libc.mount(None, b"/sys/fs/cgroup", None, 32 | 4096, None)  # MS_REMOUNT|MS_BIND',
        'else:',
        '    r = libc.mount(b"cgroup", b"/tmp/cg", b"cgroup", 0, b"memory")',
        'return [r, ctypes.get_errno()]',
      ].join('\n'),
    )}`,
    timeoutSeconds: 10,
  },
  {
    name: 'proc1_root',
    description: "Looks through /proc/1/root for the executor container's root.",
    runtime: 'python',
    code: `import os\n${py(
      [
        'out = {"root": sorted(os.listdir("/")), "proc1": sorted(os.listdir("/proc/1/root/"))}',
        'out["executor"] = [p for p in ["/proc/1/root/opt/mcpworks/runtime-roots", "/proc/1/root/opt/mcpworks/proc", "/proc/1/root/app", "/proc/1/root/usr/local/bin/nsjail"] if os.path.exists(p)]',
        'out["passwd"] = open("/proc/1/root/etc/passwd").read()',
        'return out',
      ].join('\n'),
    )}`,
    timeoutSeconds: 10,
  },
];

const polyglotServer = (version: string, warmPoolSize = 2) => ({
  apiVersion: 'mcpworks.io/v1alpha1',
  kind: 'McpServer',
  metadata: { name: 'polyglot', namespace: NS },
  spec: {
    tools: polyglotTools(version),
    auth: {
      apiKeys: { secretRef: { name: 'tools-api-keys' } },
      serviceAccountTokens: { audiences: ['mcpworks'] },
    },
    gateway: { replicas: 1 },
    executor: { replicas: 1, warmPoolSize },
  },
});

const polyglotPolicy = {
  apiVersion: 'mcpworks.io/v1alpha1',
  kind: 'AgentPolicy',
  metadata: { name: 'polyglot-access', namespace: NS },
  spec: {
    servers: { names: ['polyglot'] },
    rules: [
      {
        effect: 'Allow',
        subjects: [
          { kind: 'Agent', name: 'report-bot' },
          { kind: 'ServiceAccount', name: 'analyst', namespace: NS },
        ],
        tools: ['*'],
        reason: 'the end-to-end agents may call every polyglot tool',
      },
    ],
  },
};

/** The agent's pod: restricted Pod Security, the analyst ServiceAccount, a token for mcpworks. */
const agentPod = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'agent', namespace: NS },
  spec: {
    serviceAccountName: 'analyst',
    terminationGracePeriodSeconds: 0,
    securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
    containers: [
      {
        name: 'agent',
        image: CLIENT_IMAGE,
        imagePullPolicy: 'Never',
        command: ['node', '-e', 'setInterval(() => {}, 1 << 30)'],
        securityContext: {
          allowPrivilegeEscalation: false,
          capabilities: { drop: ['ALL'] },
          readOnlyRootFilesystem: true,
        },
        volumeMounts: [
          { name: 'client', mountPath: '/app/e2e', readOnly: true },
          { name: 'mcp-token', mountPath: '/var/run/secrets/mcpworks', readOnly: true },
          { name: 'tmp', mountPath: '/tmp' },
        ],
      },
    ],
    volumes: [
      { name: 'client', configMap: { name: 'e2e-agent' } },
      {
        name: 'mcp-token',
        projected: {
          sources: [
            {
              serviceAccountToken: { audience: 'mcpworks', expirationSeconds: 3600, path: 'token' },
            },
          ],
        },
      },
      { name: 'tmp', emptyDir: {} },
    ],
  },
};

before(
  async () => {
    const images = await ensureProjectImages({ log: (l) => console.log(`# ${l}`) });
    const started = Date.now();
    cluster = await startNodeCluster({ imageTars: [images.operator.tar, images.sandbox.tar] });
    console.log(`# node Ready with the images ${Date.now() - started} ms after startNodeCluster`);
    // Cold: the images' base and both builds (~10 min on 2 cores), then maybe another test's node.
  },
  { timeout: 45 * 60_000 },
);

after(async () => {
  const problems = (await cluster?.stop()) ?? [];
  console.log(`# e2e suite on the real node: ${((Date.now() - suiteStarted) / 1000).toFixed(0)} s`);
  assert.deepEqual(problems, [], 'the node stopped cleanly');
});

step('1. helm install with the locally built images: the operator is Ready', async () => {
  await cluster.helm(
    [
      'install',
      'mcpworks',
      join(repoRoot, 'charts', 'mcpworks'),
      '--namespace',
      SYSTEM_NS,
      '--create-namespace',
    ],
    { timeoutMs: 120_000 },
  );
  await kubectl(
    ['-n', SYSTEM_NS, 'rollout', 'status', 'deployment/mcpworks', '--timeout=180s'],
    undefined,
    200_000,
  );
  const deployment = await getJson<{ spec: { replicas: number } }>([
    '-n',
    SYSTEM_NS,
    'get',
    'deployment',
    'mcpworks',
  ]);
  const pods = await getJson<PodList>(['-n', SYSTEM_NS, 'get', 'pods']);
  assert.deepEqual(
    pods.items.map((p) => p.status.phase),
    Array(deployment.spec.replicas).fill('Running'),
  );
});

step(
  '2. getting started, part 2: SecretNotFound, an API key, then Ready',
  async () => {
    await kubectl(['apply', '-k', join(repoRoot, 'examples/gitops/apps/mcp-team')]);
    const wide = async () => (await kubectl(['-n', NS, 'get', 'mcpservers', '-o', 'wide'])).stdout;
    await eventually(
      'REASON SecretNotFound',
      async () =>
        /^tools\s+False\s+2\s+http:\/\/tools-gateway\.mcp-team\.svc:8080\/mcp\s+SecretNotFound/m.test(
          await wide(),
        )
          ? true
          : undefined,
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    const described = await kubectl(['-n', NS, 'describe', 'mcpserver', 'tools']);
    assert.match(described.stdout, /Secret mcp-team\/tools-api-keys not found/);

    let printed = '';
    const io = { stdout: (t: string) => (printed += t), stderr: () => {}, env: {}, cwd: repoRoot };
    assert.equal(await main(['apikey', 'new', 'report-bot', '--agent', 'report-bot'], io), 0);
    const entry = /^\s+report-bot: '(.+)'$/m.exec(printed)?.[1];
    apiKey = /^\s+(mcpw_report-bot_\S+)$/m.exec(printed)?.[1] ?? '';
    assert.ok(entry && apiKey, printed);
    await kubectl([
      '-n',
      NS,
      'create',
      'secret',
      'generic',
      'tools-api-keys',
      `--from-literal=report-bot=${entry}`,
    ]);
    await eventually('READY True', async () => ((await serverReady('tools')) ? true : undefined), {
      timeoutMs: 240_000,
      intervalMs: 1000,
    });
    assert.match(
      await wide(),
      /^tools\s+True\s+2\s+http:\/\/tools-gateway\.mcp-team\.svc:8080\/mcp\s/m,
    );
  },
  400_000,
);

step('3. gateway and executor pods Ready under the namespace Pod Security labels', async () => {
  for (const component of ['gateway', 'executor']) {
    const pods = await componentPods('tools', component);
    assert.equal(pods.items.length, 2, `${component} pods`);
    await kubectl([
      '-n',
      NS,
      'wait',
      '--for=condition=Ready',
      '--timeout=60s',
      ...pods.items.map((p) => `pod/${p.metadata.name}`),
    ]);
  }
  // What a stricter namespace would say about the running pods: the executors need more than
  // restricted allows (CAP_SYS_ADMIN), the gateways pass restricted.
  const check = await kubectl([
    'label',
    '--dry-run=server',
    '--overwrite',
    'namespace',
    NS,
    'pod-security.kubernetes.io/enforce=restricted',
  ]);
  const warnings = check.stderr;
  assert.match(warnings, /violate the new PodSecurity enforce level "restricted:latest"/);
  assert.match(warnings, /tools-executor-/);
  assert.doesNotMatch(warnings, /tools-gateway-/);
  const baseline = await kubectl([
    'label',
    '--dry-run=server',
    '--overwrite',
    'namespace',
    NS,
    'pod-security.kubernetes.io/enforce=baseline',
  ]);
  assert.doesNotMatch(baseline.stderr, /tools-gateway-/);
});

step(
  '4. tools in python, node and bash through the gateway Service: API key and SA token',
  async () => {
    await kubectl(['-n', NS, 'create', 'serviceaccount', 'analyst']);
    const client = readFileSync(join(repoRoot, 'test', 'e2e', 'real-node-client.mjs'), 'utf8');
    await kubectl(
      ['apply', '-f', '-'],
      yamlDocs(
        {
          apiVersion: 'v1',
          kind: 'ConfigMap',
          metadata: { name: 'e2e-agent', namespace: NS },
          data: { 'client.mjs': client },
        },
        polyglotServer('v1'),
        polyglotPolicy,
        agentPod,
      ),
    );
    await kubectl(
      ['-n', NS, 'wait', '--for=condition=Ready', 'pod/agent', '--timeout=90s'],
      undefined,
      100_000,
    );
    await eventually(
      'polyglot Ready',
      async () => ((await serverReady('polyglot')) ? true : undefined),
      {
        timeoutMs: 180_000,
        intervalMs: 1000,
      },
    );

    // The example's tool, with the API key, from inside the cluster at the status endpoint.
    const words = await callWithKey(TOOLS_URL, 'word_count', { text: 'hello from the cluster' });
    assert.equal(words.ok, true, JSON.stringify(words));
    assert.deepEqual(JSON.parse(words.text ?? ''), { words: 4 });

    // Part 2, step 4 as written: a port-forward to the gateway Service and the example client.
    const port = await freePort();
    const forward = spawn(
      binary('kubectl'),
      [
        '--kubeconfig',
        cluster.kubeconfigPath,
        '-n',
        NS,
        'port-forward',
        'service/tools-gateway',
        `${port}:8080`,
      ],
      { stdio: 'ignore' },
    );
    try {
      await eventually(
        'the port-forward',
        async () =>
          (await fetch(`http://127.0.0.1:${port}/healthz`).then(
            (res) => res.ok,
            () => false,
          ))
            ? true
            : undefined,
        { timeoutMs: 30_000, intervalMs: 300 },
      );
      const { stdout } = await promisify(execFile)(
        process.execPath,
        [
          join(repoRoot, 'examples', 'client', 'mcp-call.ts'),
          '--url',
          `http://127.0.0.1:${port}/mcp`,
          'word_count',
          '{"text": "hello from the cluster"}',
        ],
        { env: { ...process.env, MCP_TOKEN: apiKey }, timeout: 60_000 },
      );
      assert.deepEqual(JSON.parse(stdout).structuredContent, { words: 4 });
    } finally {
      forward.kill();
    }

    const pins = readFileSync(join(repoRoot, 'sandbox-image', 'runtimes.env'), 'utf8');
    const nodeVersion = /^NODE_VERSION=(\S+)/m.exec(pins)?.[1];
    for (const [how, call] of [
      ['API key', callWithKey],
      ['ServiceAccount token', callWithToken],
    ] as const) {
      for (const runtime of ['python', 'node', 'bash']) {
        const r = await call(POLY_URL, `hello_${runtime}`, { name: `via ${how}` });
        assert.equal(r.ok, true, `${runtime} with ${how}: ${JSON.stringify(r)}`);
        const body = JSON.parse(r.text ?? '') as Record<string, unknown>;
        assert.equal(body['runtime'], runtime);
        assert.equal(body['name'], `via ${how}`);
        if (runtime === 'node') assert.equal(body['node'], nodeVersion);
      }
    }
    // The pod's default token (the API server's audience) is refused.
    const refused = await agent({
      op: 'call',
      url: POLY_URL,
      tokenFile: API_SERVER_TOKEN_FILE,
      tool: 'hello_python',
      args: { name: 'x' },
    });
    assert.equal(refused.ok, false);
    assert.match(refused.error ?? '', /the token was not accepted/);
  },
  400_000,
);

const DENY_REASON = 'destructive tools are never available to agents';

step('5. a policy denial: its result text and its metric scraped from a pod', async () => {
  const denied = await callWithKey(TOOLS_URL, 'drop_table');
  assert.equal(denied.isError, true, JSON.stringify(denied));
  assert.equal(denied.text, `denied by policy: ${DENY_REASON}`);
  let total = 0;
  for (const pod of (await componentPods('tools', 'gateway')).items) {
    const scraped = await agent<{ status: number; body: string }>({
      op: 'get',
      url: `http://${pod.status.podIP}:8080/metrics`,
    });
    assert.equal(scraped.status, 200);
    const m =
      /^mcpworks_decisions_total\{server="mcp-team\/tools",tool="drop_table",effect="deny",reason_code="policy_deny"\} (\d+)/m.exec(
        scraped.body,
      );
    total += Number(m?.[1] ?? 0);
  }
  assert.equal(total, 1, 'one denial counted across the gateway pods');
});

step('6. the attack battery inside the executor pod, as tool code', async () => {
  const gatewayIp = (
    await getJson<{ spec: { clusterIP: string } }>(['-n', NS, 'get', 'service', 'polyglot-gateway'])
  ).spec.clusterIP;
  const apiIp = (
    await getJson<{ spec: { clusterIP: string } }>([
      '-n',
      'default',
      'get',
      'service',
      'kubernetes',
    ])
  ).spec.clusterIP;
  for (const [host, port] of [
    [gatewayIp, 8080],
    [apiIp, 443],
    [cluster.bridgeAddress, 10250],
  ] as const) {
    const r = await callWithKey(POLY_URL, 'connect', { host, port });
    assert.equal(r.isError, true, `${host}:${port} ${JSON.stringify(r)}`);
    assert.doesNotMatch(r.text ?? '', /connected/);
    assert.match(r.text ?? '', /unreachable|PermissionError|OSError|Errno/, `${host}:${port}`);
  }

  const secret = await getJson<{ data: Record<string, string> }>([
    '-n',
    NS,
    'get',
    'secret',
    'polyglot-executor-token',
  ]);
  const executorToken = Buffer.from(secret.data['token'] ?? '', 'base64').toString();
  assert.ok(executorToken.length > 16);
  const found = await callWithKey(POLY_URL, 'find_secrets');
  assert.equal(found.ok, true, JSON.stringify(found));
  assert.ok(
    !(found.text ?? '').includes(executorToken),
    'the executor token is visible to tool code',
  );
  assert.doesNotMatch(found.text ?? '', /MCPWORKS_EXECUTOR_TOKEN|eyJhbGci/);

  for (const how of ['remount', 'hierarchy']) {
    const r = await callWithKey(POLY_URL, 'cgroup_mount', { how });
    assert.equal(r.isError, true, `${how}: ${JSON.stringify(r)}`);
    assert.match(
      r.text ?? '',
      /sandbox-violation|sandbox violation|system call/i,
      `${how}: ${r.text}`,
    );
  }

  const escaped = await callWithKey(POLY_URL, 'proc1_root');
  assert.equal(escaped.ok, true, JSON.stringify(escaped));
  const seen = JSON.parse(escaped.text ?? '') as {
    root: string[];
    proc1: string[];
    executor: string[];
    passwd: string;
  };
  assert.deepEqual(seen.proc1, seen.root, '/proc/1/root is the jail itself');
  assert.deepEqual(seen.executor, [], 'nothing of the executor container is reachable');
  assert.doesNotMatch(seen.passwd, /^(?!root|nobody).+:x:/m);
});

step(
  '7. the executor pod deleted mid-call: a clear error and exactly one decision record',
  async () => {
    const [executorPod] = (await componentPods('polyglot', 'executor')).items;
    assert.ok(executorPod);
    const inFlight = agent(
      { op: 'call', url: POLY_URL, token: apiKey, tool: 'slow', args: { seconds: 30 } },
      120_000,
    );
    await sleep(4000);
    await kubectl([
      '-n',
      NS,
      'delete',
      'pod',
      executorPod.metadata.name,
      '--grace-period=0',
      '--force',
      '--wait=false',
    ]);
    const r = await inFlight;
    console.log(`# the agent got: ${r.text ?? r.error}`);
    assert.equal(r.ok, false, JSON.stringify(r));
    assert.match(r.text ?? r.error ?? '', /executor|unavailable/i, JSON.stringify(r));
    const [gateway] = (await componentPods('polyglot', 'gateway')).items;
    assert.ok(gateway);
    const logs = (await kubectl(['-n', NS, 'logs', gateway.metadata.name])).stdout;
    const records = logs
      .split('\n')
      .filter((l) => l.includes('"msg":"decision"'))
      .map((l) => JSON.parse(l) as { tool?: string; outcome?: string; method?: string })
      .filter((d) => d.tool === 'slow');
    assert.equal(records.length, 1, JSON.stringify(records));
    assert.notEqual(records[0]?.outcome, 'ok');
    // A new executor pod takes over.
    await eventually(
      'polyglot Ready again',
      async () => ((await serverReady('polyglot')) ? true : undefined),
      {
        timeoutMs: 120_000,
        intervalMs: 1000,
      },
    );
  },
  400_000,
);
step(
  '8. a tool code change rolls out while an agent calls in a loop: no failed call',
  async () => {
    const loop = agent<{ results: CallResult[]; timedOut: boolean }>(
      {
        op: 'loop',
        url: POLY_URL,
        token: apiKey,
        tool: 'hello_python',
        args: { name: 'loop' },
        stopFile: '/tmp/stop',
        marker: '"v2"',
        afterStop: 3,
        maxMs: 180_000,
      },
      200_000,
    );
    const gatewaysBefore = (await componentPods('polyglot', 'gateway')).items.map(
      (p) => p.metadata.name,
    );
    // A call still running when its gateway and executor pods are replaced: both drain, so it
    // is answered (the gateway used to cut it once its shutdown delay was over).
    const slowCall = agent(
      { op: 'call', url: POLY_URL, token: apiKey, tool: 'slow', args: { seconds: 12 } },
      120_000,
    );
    await sleep(2000);
    await kubectl(['apply', '-f', '-'], yamlDocs(polyglotServer('v2')));
    await eventually(
      'polyglot Ready at the new generation',
      async () => ((await serverReady('polyglot')) ? true : undefined),
      {
        timeoutMs: 120_000,
        intervalMs: 1000,
      },
    );
    for (const d of ['polyglot-gateway', 'polyglot-executor'])
      await kubectl(
        ['-n', NS, 'rollout', 'status', `deployment/${d}`, '--timeout=120s'],
        undefined,
        130_000,
      );
    const slow = await slowCall;
    assert.equal(slow.ok, true, `the call running through the rollout: ${JSON.stringify(slow)}`);
    assert.match(slow.text ?? '', /slept/);
    await stopAgentLoop('/tmp/stop');
    const { results, timedOut } = await loop;
    assert.equal(timedOut, false);
    const failed = results.filter((r) => !r.ok);
    assert.deepEqual(failed, [], `${failed.length} of ${results.length} calls failed`);
    assert.ok(
      results.some((r) => r.text?.includes('"v1"')),
      'the loop started on the old code',
    );
    assert.ok(results.at(-1)?.text?.includes('"v2"'));
    console.log(`# ${results.length} calls during the rollout, none failed`);
    const gatewaysAfter = (await componentPods('polyglot', 'gateway')).items
      .filter((p) => p.metadata.deletionTimestamp === undefined)
      .map((p) => p.metadata.name);
    assert.ok(!gatewaysAfter.some((name) => gatewaysBefore.includes(name)), 'the gateway rolled');
    for (const runtime of ['node', 'bash']) {
      const r = await callWithKey(POLY_URL, `hello_${runtime}`, { name: 'after' });
      assert.match(r.text ?? '', /"v2"/);
    }
  },
  400_000,
);

step(
  '8b. an executor change rolls out while an agent calls in a loop: no failed call',
  async () => {
    const executorsBefore = (await componentPods('polyglot', 'executor')).items.map(
      (p) => p.metadata.name,
    );
    const loop = agent<{ results: CallResult[]; timedOut: boolean }>(
      {
        op: 'loop',
        url: POLY_URL,
        token: apiKey,
        tool: 'hello_python',
        args: { name: 'loop' },
        stopFile: '/tmp/stop-executor',
        marker: '"v2"',
        afterStop: 3,
        maxMs: 180_000,
      },
      200_000,
    );
    await sleep(2000);
    await kubectl(['apply', '-f', '-'], yamlDocs(polyglotServer('v2', 1)));
    await eventually(
      'polyglot Ready at the new generation',
      async () => ((await serverReady('polyglot')) ? true : undefined),
      { timeoutMs: 120_000, intervalMs: 1000 },
    );
    await kubectl(
      ['-n', NS, 'rollout', 'status', 'deployment/polyglot-executor', '--timeout=120s'],
      undefined,
      130_000,
    );
    // The old pod drains after the new one is Ready: wait until it is gone.
    await eventually(
      'the old executor pod to go',
      async () => {
        const names = (await componentPods('polyglot', 'executor')).items.map(
          (p) => p.metadata.name,
        );
        return names.some((n) => executorsBefore.includes(n)) ? undefined : names;
      },
      { timeoutMs: 90_000, intervalMs: 1000 },
    );
    await stopAgentLoop('/tmp/stop-executor');
    const { results, timedOut } = await loop;
    assert.equal(timedOut, false);
    const failed = results.filter((r) => !r.ok);
    // Before the executor's drain stopped cutting idle keep-alive connections, a rollout lost one
    // call in 189–401 at the connection level in three of seven runs (a gateway writing its next
    // call on a connection the old pod closed); none in nine runs since. No call may fail.
    assert.deepEqual(failed.slice(0, 3), [], `${failed.length} of ${results.length} calls failed`);
    console.log(`# ${results.length} calls during the executor rollout, none failed`);
  },
  400_000,
);

step('8c. a figure from a pod: warm python calls through the gateway Service', async () => {
  // Measured, never asserted (speed belongs to `make bench`): what an agent in the cluster sees
  // for a warm sandboxed call, one session, calls 300 ms apart as an agent thinking between them.
  const r = await agent<{ ok: boolean; error?: string; ms: number[] }>(
    {
      op: 'latency',
      url: TOOLS_URL,
      token: apiKey,
      tool: 'word_count',
      args: { text: 'one two three' },
      calls: 40,
      spacedMs: 300,
    },
    120_000,
  );
  assert.equal(r.ok, true, r.error);
  assert.equal(r.ms.length, 40);
  const sorted = r.ms.slice(5).sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
  console.log(
    `# figure: warm python call from a pod through the gateway Service: p50 ${at(0.5).toFixed(2)} ms, p90 ${at(0.9).toFixed(2)} ms, p99 ${at(0.99).toFixed(2)} ms (${sorted.length} calls)`,
  );
  // Where that time goes, from the pods' own lines for the same calls (the last 35 of each):
  // the gateway's decision record (request to answer) and the executor's 'tool call finished'.
  const durations = async (component: string, keep: (line: Record<string, unknown>) => boolean) => {
    const pods = await componentPods('tools', component);
    const values: number[] = [];
    for (const pod of pods.items) {
      const { stdout } = await kubectl(['-n', NS, 'logs', pod.metadata.name]);
      for (const line of stdout.split('\n')) {
        if (!line.startsWith('{')) continue;
        const parsed = JSON.parse(line) as Record<string, unknown>;
        if (keep(parsed) && typeof parsed['durationMs'] === 'number')
          values.push(parsed['durationMs']);
      }
    }
    const last = values.slice(-sorted.length).sort((a, b) => a - b);
    return last[Math.floor(last.length / 2)];
  };
  const inGateway = await durations(
    'gateway',
    (l) => l['msg'] === 'decision' && l['tool'] === 'word_count' && l['method'] === 'tools/call',
  );
  const inExecutor = await durations(
    'executor',
    (l) => l['msg'] === 'tool call finished' && l['tool'] === 'word_count',
  );
  console.log(
    `# figure: the same calls' p50 inside the gateway (its decision record) ${inGateway?.toFixed(2)} ms, inside the executor ${inExecutor?.toFixed(2)} ms`,
  );
  // And what one plain HTTP round trip costs here, spaced the same (GET of a health endpoint,
  // median of 20): the two hops of the path, and a gateway's own loopback for comparison.
  const [gateway] = (await componentPods('tools', 'gateway')).items;
  assert.ok(gateway);
  const roundTrip = (url: string) =>
    `const t=[];(async()=>{for(let i=0;i<20;i++){await new Promise(r=>setTimeout(r,300));const s=performance.now();const r=await fetch(${JSON.stringify(url)});await r.text();t.push(performance.now()-s)}t.sort((a,b)=>a-b);console.log(t[10].toFixed(2))})()`;
  const hops: string[] = [];
  for (const [pod, label, url] of [
    ['agent', 'agent pod -> gateway Service', `http://tools-gateway.${NS}.svc:8080/healthz`],
    [
      gateway.metadata.name,
      'gateway pod -> executor Service',
      `http://tools-executor.${NS}.svc:8081/readyz`,
    ],
    [gateway.metadata.name, 'gateway pod -> its own loopback', 'http://127.0.0.1:8080/healthz'],
  ] as const) {
    const { stdout } = await kubectl(['-n', NS, 'exec', pod, '--', 'node', '-e', roundTrip(url)]);
    hops.push(`${label} ${stdout.trim()} ms`);
  }
  console.log(`# figure: one plain HTTP round trip, spaced the same, p50: ${hops.join(', ')}`);
});

step('5b. the denial is an Event on the McpServer', async () => {
  // Gateway Events are aggregated per reason and minute: checked after steps 6 to 8b, which
  // fill most of that minute.
  await eventually(
    'the ToolCallDenied Event',
    async () => {
      const out = (
        await kubectl([
          '-n',
          NS,
          'get',
          'events',
          '--field-selector',
          'reason=ToolCallDenied',
          '-o',
          'wide',
        ])
      ).stdout;
      return out.includes('mcpserver/tools') &&
        out.includes(`report-bot was denied tool drop_table: ${DENY_REASON}`)
        ? true
        : undefined;
    },
    { timeoutMs: 120_000, intervalMs: 2000 },
  );
});

step(
  '9. deleting the servers and helm uninstall leave nothing of ours',
  async () => {
    await kubectl(
      ['-n', NS, 'delete', 'mcpservers', '--all', '--wait=true', '--timeout=120s'],
      undefined,
      130_000,
    );
    await kubectl(['delete', 'namespace', NS, '--wait=true', '--timeout=180s'], undefined, 190_000);
    await cluster.helm(
      ['uninstall', 'mcpworks', '--namespace', SYSTEM_NS, '--wait', '--timeout=120s'],
      { timeoutMs: 130_000 },
    );
    const ours = async () =>
      (
        await kubectl([
          'get',
          'deployments,pods,services,networkpolicies,configmaps,secrets,serviceaccounts,roles,rolebindings',
          '-A',
          '-l',
          'app.kubernetes.io/part-of=mcpworks',
          '-o',
          'name',
        ])
      ).stdout.trim();
    await eventually(
      'no labelled objects left',
      async () => ((await ours()) === '' ? true : undefined),
      { timeoutMs: 60_000, intervalMs: 1000 },
    );
    const system = (await kubectl(['-n', SYSTEM_NS, 'get', 'all', '-o', 'name'])).stdout.trim();
    assert.equal(system, '', 'nothing left in mcpworks-system');
    const cluster_ = (await kubectl(['get', 'clusterroles,clusterrolebindings', '-o', 'name']))
      .stdout;
    assert.doesNotMatch(cluster_, /mcpworks/);
    // docs/install.md: helm keeps the CRDs; no custom resource is left in them.
    // Nothing of the whole walk-through left the machine.
    assert.equal((await cluster.guardCounters()).leaked, 0);
    for (const kind of ['mcpservers', 'agentpolicies', 'clusteragentpolicies']) {
      await kubectl(['get', 'crd', `${kind}.mcpworks.io`]);
      assert.equal((await kubectl(['get', kind, '-A', '-o', 'name'])).stdout.trim(), '', kind);
    }
  },
  500_000,
);
