// An executor image with packages on a real kubelet: the example image (sandbox-image/packages/
// Dockerfile) built FROM the project's sandbox image with the project's image tooling and the
// example's pinned packages from the package index, an McpServer whose spec.executor.image names
// it, and an agent pod calling a python and a node tool that import the packages through the
// gateway Service; then attack-battery cases as tool code in that image. Steps depend on the ones
// before (a failed step fails the later ones, none is skipped). One node runs per machine: this
// file waits for real-node.test.ts's node to go, and the other way round.
//
// Until the controller deploys spec.executor.image itself, the chart's workloadImages.executor
// is set to the same image, so every executor pod of this install runs it either way.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { stringify } from 'yaml';
import { main } from '../../src/cli/main.ts';
import { ensurePackagesImage, ensureProjectImages, type ProjectImage } from '../harness/images.ts';
import { startNodeCluster, type NodeCluster } from '../harness/node.ts';
import { EXAMPLE_PINS } from '../harness/packages.ts';
import { repoRoot } from '../harness/paths.ts';
import { eventually } from '../harness/wait.ts';

const NS = 'mcp-packages';
const SYSTEM_NS = 'mcpworks-system';
const CLIENT_IMAGE = 'docker.io/mcpworks/mcpworks:0.1.0';
const URL = `http://packaged-gateway.${NS}.svc:8080/mcp`;

let cluster: NodeCluster;
let packagesImage: ProjectImage;
let apiKey = '';
let failedStep: string | undefined;

const kubectl = (args: string[], input?: string, timeoutMs = 120_000) =>
  cluster.kubectl(args, { ...(input === undefined ? {} : { input }), timeoutMs });
const yamlDocs = (...objects: object[]) => objects.map((o) => stringify(o)).join('---\n');
/** The image's name as a pod spec writes it (containerd resolves it to the imported docker.io/ one). */
const shortRef = (ref: string) => ref.replace(/^docker\.io\//, '');

function step(name: string, fn: () => Promise<void>, timeoutMs = 300_000): void {
  test(name, { timeout: timeoutMs }, async () => {
    if (failedStep) throw new Error(`not run: an earlier step failed (${failedStep})`);
    const started = Date.now();
    try {
      await fn();
    } catch (error) {
      failedStep = name;
      await diagnostics();
      throw error;
    } finally {
      console.log(`# ${name}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    }
  });
}

async function diagnostics(): Promise<void> {
  const show = async (args: string[]) => {
    const out = await kubectl(args, undefined, 30_000).then(
      (r) => r.stdout + r.stderr,
      (e: unknown) => String(e),
    );
    console.log(`# --- kubectl ${args.join(' ')}\n${out}`);
  };
  await show(['get', 'pods,deployments,mcpservers', '-A', '-o', 'wide']);
  for (const ns of [SYSTEM_NS, NS]) {
    await show(['-n', ns, 'describe', 'pods']);
    await show([
      '-n',
      ns,
      'logs',
      '--all-containers',
      '--prefix',
      '--tail=80',
      '-l',
      'app.kubernetes.io/name',
    ]);
  }
  await show(['-n', NS, 'describe', 'mcpservers']);
}

async function getJson<T>(args: string[]): Promise<T> {
  return JSON.parse((await kubectl([...args, '-o', 'json'])).stdout) as T;
}

interface CallResult {
  ok: boolean;
  isError?: boolean;
  text?: string;
  error?: string;
}

/** One call from the agent pod (test/e2e/real-node-client.mjs) with the API key. */
async function call(tool: string, args: Record<string, unknown> = {}): Promise<CallResult> {
  const request = { op: 'call', url: URL, token: apiKey, tool, args };
  const { stdout } = await kubectl(
    ['-n', NS, 'exec', 'agent', '--', 'node', '/app/e2e/client.mjs', JSON.stringify(request)],
    undefined,
    90_000,
  );
  return JSON.parse(stdout) as CallResult;
}

const py = (body: string) => `def main(args):\n${body.replace(/^/gm, '    ')}\n`;

const tools = [
  {
    name: 'punycode',
    description: 'The ASCII form of an internationalised host name (the idna package).',
    runtime: 'python',
    code: `import idna\nfrom idna.package_data import __version__\n${py('return {"ace": idna.encode(args["host"]).decode(), "version": __version__}')}`,
  },
  {
    name: 'duration',
    description: 'Milliseconds in a human duration (the ms package).',
    runtime: 'node',
    code: "const ms = require('ms');\nfunction main(args) { return { ms: ms(args.span), version: require('ms/package.json').version }; }\n",
  },
  {
    name: 'yaml_keys',
    description: 'Needs PyYAML, which the image does not carry.',
    runtime: 'python',
    code: `import yaml\n${py('return 1')}`,
  },
  {
    name: 'plant_package',
    description: 'Tries to change the packages every later call imports.',
    runtime: 'python',
    code: `import errno, idna\n${py(
      [
        'out = []',
        'for path, mode in [("/opt/mcpworks/packages/python/planted.py", "w"), (idna.__file__, "a")]:',
        '    try:',
        '        open(path, mode).write("import os")',
        '        out.append("written")',
        '    except OSError as e:',
        '        out.append(errno.errorcode[e.errno])',
        'return out',
      ].join('\n'),
    )}`,
  },
  {
    name: 'connect',
    description: 'Opens a TCP connection (the sandbox must refuse).',
    runtime: 'python',
    code: `import socket\n${py('s = socket.create_connection((args["host"], args["port"]), timeout=3)\nreturn "connected"')}`,
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
        'return found',
      ].join('\n'),
    )}`,
  },
  {
    name: 'proc1_root',
    description: "Looks through /proc/1/root for the executor container's root.",
    runtime: 'python',
    code: `import os\n${py(
      [
        'out = {"root": sorted(os.listdir("/")), "proc1": sorted(os.listdir("/proc/1/root/"))}',
        // the jail's own root has /opt/mcpworks/packages; the container's has the rest
        'out["executor"] = [p for p in ["/proc/1/root/opt/mcpworks/runtime-roots", "/proc/1/root/opt/mcpworks/proc", "/proc/1/root/app", "/proc/1/root/usr/local/bin/nsjail"] if os.path.exists(p)]',
        'out["opt"] = sorted(os.listdir("/opt/mcpworks"))',
        'return out',
      ].join('\n'),
    )}`,
  },
].map((tool) => ({ ...tool, timeoutSeconds: 10 }));

before(
  async () => {
    const log = (l: string) => console.log(`# ${l}`);
    const images = await ensureProjectImages({ log });
    packagesImage = await ensurePackagesImage(images, { log });
    // make test runs e2e files two at a time: wait out real-node.test.ts's node if it has it
    cluster = await startNodeCluster({
      imageTars: [images.operator.tar, packagesImage.tar],
      lockTimeoutMs: 30 * 60_000,
    });
  },
  { timeout: 45 * 60_000 },
);

after(async () => {
  const problems = (await cluster?.stop()) ?? [];
  assert.deepEqual(problems, [], 'the node stopped cleanly');
});

step(
  '1. helm install; an McpServer whose executor image carries the packages is Ready',
  async () => {
    const image = shortRef(packagesImage.ref);
    await cluster.helm(
      [
        'install',
        'mcpworks',
        join(repoRoot, 'charts', 'mcpworks'),
        '--namespace',
        SYSTEM_NS,
        '--create-namespace',
        '--set',
        `workloadImages.executor=${image}`,
      ],
      { timeoutMs: 120_000 },
    );
    await kubectl(
      ['-n', SYSTEM_NS, 'rollout', 'status', 'deployment/mcpworks', '--timeout=180s'],
      undefined,
      200_000,
    );
    let printed = '';
    const io = { stdout: (t: string) => (printed += t), stderr: () => {}, env: {}, cwd: repoRoot };
    assert.equal(await main(['apikey', 'new', 'report-bot', '--agent', 'report-bot'], io), 0);
    const entry = /^\s+report-bot: '(.+)'$/m.exec(printed)?.[1];
    apiKey = /^\s+(mcpw_report-bot_\S+)$/m.exec(printed)?.[1] ?? '';
    assert.ok(entry && apiKey, printed);
    const client = readFileSync(join(repoRoot, 'test', 'e2e', 'real-node-client.mjs'), 'utf8');
    await kubectl(
      ['apply', '-f', '-'],
      yamlDocs(
        {
          apiVersion: 'v1',
          kind: 'Namespace',
          metadata: {
            name: NS,
            labels: {
              'pod-security.kubernetes.io/enforce': 'privileged',
              'pod-security.kubernetes.io/warn': 'restricted',
            },
          },
        },
        {
          apiVersion: 'v1',
          kind: 'Secret',
          metadata: { name: 'packaged-api-keys', namespace: NS },
          stringData: { 'report-bot': entry },
        },
        {
          apiVersion: 'v1',
          kind: 'ConfigMap',
          metadata: { name: 'e2e-agent', namespace: NS },
          data: { 'client.mjs': client },
        },
        {
          apiVersion: 'mcpworks.io/v1alpha1',
          kind: 'McpServer',
          metadata: { name: 'packaged', namespace: NS },
          spec: {
            tools,
            auth: { apiKeys: { secretRef: { name: 'packaged-api-keys' } } },
            gateway: { replicas: 1 },
            executor: { replicas: 1, warmPoolSize: 1, image },
          },
        },
        {
          apiVersion: 'mcpworks.io/v1alpha1',
          kind: 'AgentPolicy',
          metadata: { name: 'packaged-access', namespace: NS },
          spec: {
            servers: { names: ['packaged'] },
            rules: [
              {
                effect: 'Allow',
                subjects: [{ kind: 'Agent', name: 'report-bot' }],
                tools: ['*'],
                reason: 'the end-to-end agent may call every tool',
              },
            ],
          },
        },
        {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: 'agent', namespace: NS },
          spec: {
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
                volumeMounts: [{ name: 'client', mountPath: '/app/e2e', readOnly: true }],
              },
            ],
            volumes: [{ name: 'client', configMap: { name: 'e2e-agent' } }],
          },
        },
      ),
    );
    await kubectl(
      ['-n', NS, 'wait', '--for=condition=Ready', 'pod/agent', '--timeout=90s'],
      undefined,
      100_000,
    );
    await eventually(
      'packaged Ready',
      async () => {
        const s = await getJson<{
          metadata: { generation: number };
          status?: { observedGeneration?: number; conditions?: { type: string; status: string }[] };
        }>(['-n', NS, 'get', 'mcpserver', 'packaged']);
        const ready = s.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
        return s.status?.observedGeneration === s.metadata.generation && ready ? true : undefined;
      },
      { timeoutMs: 240_000, intervalMs: 1000 },
    );
    const deployment = await getJson<{
      spec: { template: { spec: { containers: { name: string; image: string }[] } } };
    }>(['-n', NS, 'get', 'deployment', 'packaged-executor']);
    assert.deepEqual(
      deployment.spec.template.spec.containers.map((c) => c.image),
      [image],
      'the executor pods run the image with packages',
    );
  },
  500_000,
);

step('2. a python and a node tool import the pinned packages, called from a pod', async () => {
  const python = await call('punycode', { host: 'bücher.example' });
  assert.equal(python.ok, true, JSON.stringify(python));
  assert.deepEqual(JSON.parse(python.text ?? ''), {
    ace: 'xn--bcher-kva.example',
    version: EXAMPLE_PINS.python.idna,
  });
  const node = await call('duration', { span: '2 days' });
  assert.equal(node.ok, true, JSON.stringify(node));
  assert.deepEqual(JSON.parse(node.text ?? ''), { ms: 172_800_000, version: EXAMPLE_PINS.node.ms });
});

step('3. a package the image lacks: an error result naming it', async () => {
  const r = await call('yaml_keys');
  assert.equal(r.isError, true, JSON.stringify(r));
  assert.match(
    r.text ?? '',
    /No module named 'yaml': the executor image does not carry the package providing 'yaml'/,
  );
});

step('4. the attack battery in the image with packages', async () => {
  const planted = await call('plant_package');
  assert.equal(planted.ok, true, JSON.stringify(planted));
  assert.deepEqual(JSON.parse(planted.text ?? ''), ['EROFS', 'EACCES']);

  const serviceIp = async (ns: string, name: string) =>
    (await getJson<{ spec: { clusterIP: string } }>(['-n', ns, 'get', 'service', name])).spec
      .clusterIP;
  for (const [host, port] of [
    [await serviceIp(NS, 'packaged-gateway'), 8080],
    [await serviceIp('default', 'kubernetes'), 443],
    [cluster.bridgeAddress, 10250],
  ] as const) {
    const r = await call('connect', { host, port });
    assert.equal(r.isError, true, `${host}:${port} ${JSON.stringify(r)}`);
    assert.doesNotMatch(r.text ?? '', /connected/);
  }

  const secret = await getJson<{ data: Record<string, string> }>([
    '-n',
    NS,
    'get',
    'secret',
    'packaged-executor-token',
  ]);
  const executorToken = Buffer.from(secret.data['token'] ?? '', 'base64').toString();
  assert.ok(executorToken.length > 16);
  const found = await call('find_secrets');
  assert.equal(found.ok, true, JSON.stringify(found));
  assert.ok(!(found.text ?? '').includes(executorToken), 'the executor token is visible');
  assert.doesNotMatch(found.text ?? '', /MCPWORKS_EXECUTOR_TOKEN|eyJhbGci/);

  const escaped = await call('proc1_root');
  assert.equal(escaped.ok, true, JSON.stringify(escaped));
  const seen = JSON.parse(escaped.text ?? '') as {
    root: string[];
    proc1: string[];
    executor: string[];
    opt: string[];
  };
  assert.deepEqual(seen.proc1, seen.root, '/proc/1/root is the jail itself');
  assert.deepEqual(seen.executor, [], 'nothing of the executor container is reachable');
  assert.deepEqual(seen.opt, ['packages'], "the jail's /opt/mcpworks holds only the packages");
});
