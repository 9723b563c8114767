// Proves the real test node: kubelet + containerd + runc + CNI + kube-proxy + CoreDNS joined to
// the test control plane, pods from the harness's own scratch image, Service DNS, and a pod
// network that never leaves the machine (no route out, and the nftables guard's counters).
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import {
  acquireNodeLock,
  HOST_PATHS,
  isAlive,
  processRef,
  readState,
  RECORDED_SYSCTLS,
  releaseNodeLock,
  type ProcessRef,
} from '../harness/node-host.ts';
import { startNodeCluster, type NodeCluster } from '../harness/node.ts';
import { eventually } from '../harness/wait.ts';

/** What the node may change on the host; equal before start and after stop. */
const OUTSIDE_ADDRESS = '203.0.114.10';

function hostSnapshot() {
  const read = (key: string) => {
    try {
      return readFileSync(`/proc/sys/${key.replaceAll('.', '/')}`, 'utf8').trim();
    } catch {
      return undefined;
    }
  };
  const cmd = (c: string, args: string[]) => execFileSync(c, args, { encoding: 'utf8' });
  return {
    sysctls: Object.fromEntries(RECORDED_SYSCTLS.map((k) => [k, read(k)])),
    paths: HOST_PATHS.filter((p) => existsSync(p)),
    nftTables: cmd('nft', ['list', 'tables']),
    // Only what the node's components write: others on this machine may change the rest.
    iptables: cmd('iptables-save', [])
      .split('\n')
      .filter((l) => /KUBE-|CNI-/.test(l)),
    links: cmd('ip', ['-o', 'link', 'show'])
      .split('\n')
      .map((l) => l.split(':')[1]?.trim() ?? '')
      .filter((name) => name.startsWith('mcpw'))
      .sort(),
    // The outside addresses the teardown test gives the host.
    outside: cmd('ip', ['-o', '-4', 'addr', 'show']).includes(OUTSIDE_ADDRESS),
  };
}

const podYaml = (name: string, args: string[], labels: Record<string, string> = {}) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, labels },
  spec: {
    terminationGracePeriodSeconds: 0,
    automountServiceAccountToken: false,
    containers: [
      {
        name: 'main',
        image: '',
        imagePullPolicy: 'Never',
        args,
        securityContext: {
          runAsNonRoot: true,
          runAsUser: 65534,
          allowPrivilegeEscalation: false,
          capabilities: { drop: ['ALL'] },
          readOnlyRootFilesystem: true,
        },
      },
    ],
  },
});

describe('a real node joined to the test control plane', () => {
  let cluster: NodeCluster;
  let ns: string;
  let hostBefore: ReturnType<typeof hostSnapshot>;
  const exec = (args: string[]) =>
    cluster.kubectl(['-n', ns, 'exec', 'client', '--', '/nettest', ...args], {
      timeoutMs: 30_000,
    });

  before(async () => {
    const started = Date.now();
    cluster = await startNodeCluster({
      onLocked: () => {
        hostBefore = hostSnapshot();
      },
    });
    console.log(`# node Ready ${Date.now() - started} ms after startNodeCluster`);
    ns = await cluster.newNamespace('node');
    const image = cluster.images.nettest;
    const withImage = (pod: ReturnType<typeof podYaml>) => {
      const [container] = pod.spec.containers;
      if (container) container.image = image;
      return pod;
    };
    const manifests = [
      withImage(podYaml('web', ['serve', '8080'], { app: 'web' })),
      withImage(podYaml('client', ['serve', '8081'])),
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'web' },
        spec: { selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080 }] },
      },
    ];
    await cluster.kubectl(['-n', ns, 'apply', '-f', '-'], {
      input: manifests.map((m) => stringify(m)).join('---\n'),
    });
  });
  after(async () => {
    await cluster?.stop();
  });

  test('the node is Ready and runs pods from a scratch image of ours', async () => {
    const nodes = await cluster.kubectl(['get', 'node', cluster.nodeName, '-o', 'json']);
    const node = JSON.parse(nodes.stdout);
    assert.equal(
      node.status.conditions.find((c: { type: string }) => c.type === 'Ready')?.status,
      'True',
    );
    assert.deepEqual(
      node.status.addresses.find((a: { type: string }) => a.type === 'InternalIP')?.address,
      cluster.bridgeAddress,
    );
    const started = Date.now();
    await cluster.kubectl(
      ['-n', ns, 'wait', '--for=condition=Ready', 'pod/web', 'pod/client', '--timeout=90s'],
      { timeoutMs: 100_000 },
    );
    console.log(`# two pods Ready ${Date.now() - started} ms after the wait began`);
  });

  test('a pod reaches another pod by its Service DNS name', async () => {
    const full = await exec(['get', `http://web.${ns}.svc.cluster.local/`]);
    assert.equal(full.stdout, 'hello from web\n');
    // The short name works through the search path the kubelet writes.
    const short = await exec(['get', 'http://web/']);
    assert.equal(short.stdout, 'hello from web\n');
  });

  test('pods reach the API server as the kubernetes Service', async () => {
    const res = await exec(['dial', 'kubernetes.default.svc.cluster.local:443']);
    assert.match(res.stdout, /^connected to 10\.213\.1\.1:443/);
  });

  test('names outside cluster.local are NXDOMAIN: nothing is forwarded', async () => {
    await assert.rejects(exec(['lookup', 'example.com']), /no such host/);
  });

  test('a connection to an outside address fails with no route, and nothing leaves', async () => {
    const before = await cluster.guardCounters();
    await assert.rejects(exec(['dial', '203.0.113.1:80']), /network is unreachable/);
    const after = await cluster.guardCounters();
    assert.equal(after.leaked, 0);
    assert.deepEqual(after, before, 'the packet never left the pod');
  });

  test('the guard drops pod traffic the host would forward to another interface', async () => {
    // A Service whose endpoint is outside: kube-proxy rewrites the pod's packet toward it and
    // the host would forward it. The "outside" is a veth whose peer sits in a network namespace
    // of this test, so even a broken guard could not send anything off the machine.
    const netns = 'mcpworks-guard-test';
    const ip = (...args: string[]) => execFileSync('ip', args);
    ip('netns', 'add', netns);
    try {
      ip('link', 'add', 'mcpwt0', 'type', 'veth', 'peer', 'name', 'mcpwt1', 'netns', netns);
      // IPv4 only, so the host's own IPv6 neighbour discovery does not show up on the peer.
      writeFileSync('/proc/sys/net/ipv6/conf/mcpwt0/disable_ipv6', '1\n');
      ip('addr', 'add', '198.51.100.1/24', 'dev', 'mcpwt0');
      ip('link', 'set', 'mcpwt0', 'up');
      ip('-n', netns, 'link', 'set', 'mcpwt1', 'up');
      const peerReceived = () => {
        const out = execFileSync('ip', ['-n', netns, '-s', '-j', 'link', 'show', 'mcpwt1'], {
          encoding: 'utf8',
        });
        return Number(JSON.parse(out)[0]?.stats64?.rx?.packets ?? 0);
      };
      const receivedBefore = peerReceived();
      const service = {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'outside' },
        spec: { ports: [{ port: 80, targetPort: 80 }] },
      };
      const slice = {
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { name: 'outside-1', labels: { 'kubernetes.io/service-name': 'outside' } },
        addressType: 'IPv4',
        endpoints: [{ addresses: ['198.51.100.2'], conditions: { ready: true } }],
        ports: [{ port: 80, protocol: 'TCP', name: '' }],
      };
      await cluster.kubectl(['-n', ns, 'apply', '-f', '-'], {
        input: [service, slice].map((m) => stringify(m)).join('---\n'),
      });
      const before = await cluster.guardCounters();
      // kube-proxy programs the rules within a second or two; retry until the guard sees it.
      await eventually(
        'the guard to drop the forwarded packet',
        async () => {
          await assert.rejects(exec(['dial', `outside.${ns}.svc:80`]));
          const now = await cluster.guardCounters();
          return now.forward_dropped > before.forward_dropped ? now : undefined;
        },
        { timeoutMs: 30_000, intervalMs: 500 },
      );
      assert.equal(peerReceived(), receivedBefore, 'nothing reached the outside interface');
      assert.equal((await cluster.guardCounters()).leaked, 0);

      // The node's own processes are confined too: a socket from their cgroup to the outside.
      const hostBefore = await cluster.guardCounters();
      const dial = spawnSync(
        '/bin/sh',
        [
          '-c',
          'echo $$ > "$0/cgroup.procs" && exec timeout 3 bash -c "echo > /dev/tcp/198.51.100.2/80"',
          cluster.componentCgroup,
        ],
        { encoding: 'utf8' },
      );
      assert.notEqual(dial.status, 0, 'the connection from the components cgroup failed');
      const hostAfter = await cluster.guardCounters();
      assert.ok(hostAfter.egress_dropped > hostBefore.egress_dropped, 'the guard dropped it');
      assert.equal(peerReceived(), receivedBefore, 'nothing reached the outside interface');
    } finally {
      execFileSync('ip', ['link', 'del', 'mcpwt0'], { stdio: 'ignore' });
      ip('netns', 'del', netns);
    }
  });

  test('an image pull goes to no registry: containerd resolves every host to a closed local port', async () => {
    const before = await cluster.guardCounters();
    const pod = podYaml('pull', ['serve', '8080']);
    const [container] = pod.spec.containers;
    if (container) {
      container.image = 'docker.io/library/busybox:1.36';
      container.imagePullPolicy = 'Always';
    }
    await cluster.kubectl(['-n', ns, 'apply', '-f', '-'], { input: stringify(pod) });
    const message = await eventually(
      'the pull to fail',
      async () => {
        const res = await cluster.kubectl(['-n', ns, 'get', 'pod', 'pull', '-o', 'json']);
        const waiting = JSON.parse(res.stdout).status?.containerStatuses?.[0]?.state?.waiting;
        return /ErrImagePull|ImagePullBackOff/.test(waiting?.reason ?? '')
          ? String(waiting.message)
          : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    assert.match(message, /127\.0\.0\.1:9/);
    // No DNS lookup or connection of the node's own went out either.
    assert.deepEqual(await cluster.guardCounters(), before);
    await cluster.kubectl(['-n', ns, 'delete', 'pod', 'pull', '--wait=false']);
  });

  test('helm installs a chart and waits for its Deployment on the node', async () => {
    const chart = await mkdtemp(join(tmpdir(), 'mcpworks-node-chart-'));
    try {
      await mkdir(join(chart, 'templates'));
      await writeFile(
        join(chart, 'Chart.yaml'),
        stringify({ apiVersion: 'v2', name: 'probe', version: '0.1.0' }),
      );
      const pod = podYaml('probe', ['serve', '8080'], { app: 'probe' });
      const [container] = pod.spec.containers;
      if (container) container.image = cluster.images.nettest;
      const deployment = {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'probe' },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: 'probe' } },
          template: { metadata: pod.metadata, spec: pod.spec },
        },
      };
      await writeFile(join(chart, 'templates', 'deployment.yaml'), stringify(deployment));
      await cluster.helm(['install', 'probe', chart, '-n', ns, '--wait', '--timeout=90s'], {
        timeoutMs: 100_000,
      });
      const pods = await cluster.kubectl([
        '-n',
        ns,
        'get',
        'pods',
        '-l',
        'app=probe',
        '-o',
        'json',
      ]);
      const items = JSON.parse(pods.stdout).items as { status: { phase: string } }[];
      assert.deepEqual(
        items.map((p) => p.status.phase),
        ['Running'],
      );
    } finally {
      await rm(chart, { recursive: true, force: true });
    }
  });

  test('stop() ends every component and leaves the host as it was', async () => {
    const started = Date.now();
    let hostAfter: ReturnType<typeof hostSnapshot> | undefined;
    const problems = await cluster.stop({
      beforeRelease: () => {
        hostAfter = hostSnapshot();
      },
    });
    console.log(`# teardown ${Date.now() - started} ms`);
    assert.deepEqual(problems, []);
    assert.deepEqual(hostAfter, hostBefore);
  });
});

describe('teardown without stop()', () => {
  test('SIGKILL of the owning process: the reaper restores the host, outside link included', async () => {
    // Host snapshots are taken holding the node lock: another test's node may run meanwhile.
    const me = processRef('test', process.pid);
    const underLock = async <T>(fn: () => T): Promise<T> => {
      await acquireNodeLock(me, 600_000);
      try {
        return fn();
      } finally {
        await releaseNodeLock();
      }
    };
    const hostBefore = await underLock(hostSnapshot);
    const harness = new URL('../harness/node.ts', import.meta.url).href;
    const host = new URL('../harness/node-host.ts', import.meta.url).href;
    const script = `
      import { startNodeCluster } from ${JSON.stringify(harness)};
      import { readState } from ${JSON.stringify(host)};
      await startNodeCluster({ outsideAddresses: [${JSON.stringify(OUTSIDE_ADDRESS)}] });
      const { owner, dir, processes, outside } = await readState();
      console.log(JSON.stringify({ owner, dir, processes, outside }));
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    let line: string | undefined;
    for await (const l of createInterface({ input: child.stdout })) {
      line = l;
      break;
    }
    assert.ok(line, 'the child started no node');
    const node = JSON.parse(line) as {
      owner: ProcessRef;
      dir: string;
      processes: ProcessRef[];
      outside?: { link: string; addresses: string[] };
    };
    assert.equal(node.processes.length, 5);
    assert.deepEqual(node.outside, { link: 'mcpwx0', addresses: [OUTSIDE_ADDRESS] });
    assert.equal(hostSnapshot().outside, true, 'the host took on the outside address');
    assert.ok(node.processes.every(isAlive));
    child.kill('SIGKILL');
    await exited;
    await eventually(
      "the dead owner's node to be torn down",
      async () => {
        const holder = await readState();
        return holder?.owner.pid === node.owner.pid ? undefined : true;
      },
      { timeoutMs: 60_000 },
    );
    assert.equal(node.processes.filter(isAlive).length, 0, 'every component was killed');
    assert.equal(existsSync(node.dir), false);
    assert.deepEqual(await underLock(hostSnapshot), hostBefore);
  });
});
