// The test node's configuration files: what keeps pod traffic on this machine, checked without
// starting a node (the nftables guard is checked by nft itself, without loading it).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import {
  cniConflist,
  containerdConfig,
  corefile,
  guardRuleset,
  NODE_NETWORK,
  registryHostsToml,
  type NodeLayout,
} from '../harness/node-config.ts';
import { inCidr } from '../harness/node.ts';

const layout = (over: Partial<NodeLayout> = {}): NodeLayout => ({
  dir: '/state',
  binDir: '/bin-dir',
  cniBinDir: '/cni',
  net: NODE_NETWORK,
  nodeName: 'n1',
  pauseImage: 'localhost/mcpworks/pause:1',
  ...over,
});

test('pods get routes for the pod and Service ranges only: no default route, no masquerade', () => {
  const conf = JSON.parse(cniConflist(layout()));
  const bridge = conf.plugins[0];
  assert.equal(bridge.isDefaultGateway, false);
  assert.equal(bridge.ipMasq, false);
  assert.deepEqual(
    bridge.ipam.routes.map((r: { dst: string }) => r.dst),
    [NODE_NETWORK.serviceCidr],
  );
});

test("the test's outside addresses: a /32 route each by the bridge, nothing wider", () => {
  const conf = JSON.parse(cniConflist(layout(), ['203.0.114.10', '203.0.114.11']));
  assert.deepEqual(conf.plugins[0].ipam.routes, [
    { dst: NODE_NETWORK.serviceCidr, gw: NODE_NETWORK.address },
    { dst: '203.0.114.10/32', gw: NODE_NETWORK.address },
    { dst: '203.0.114.11/32', gw: NODE_NETWORK.address },
  ]);
  assert.equal(conf.plugins[0].isDefaultGateway, false);
  for (const bad of ['0.0.0.0/0', '203.0.114.300', 'tickets.example.com', '::1'])
    assert.throws(() => cniConflist(layout(), [bad]), /not an IPv4 address/, bad);
});

test('inCidr tells addresses in the node ranges from outside ones', () => {
  assert.equal(inCidr('10.213.0.77', NODE_NETWORK.podCidr), true);
  assert.equal(inCidr('10.213.1.1', NODE_NETWORK.serviceCidr), true);
  assert.equal(inCidr('10.213.1.1', NODE_NETWORK.podCidr), false);
  assert.equal(inCidr('203.0.114.10', '203.0.114.10/32'), true);
  assert.equal(inCidr('203.0.114.11', '203.0.114.10/32'), false);
  assert.equal(inCidr('203.0.114.10', '0.0.0.0/0'), true);
});

test('CoreDNS forwards nothing: every name outside the cluster zones is NXDOMAIN', () => {
  const text = corefile(NODE_NETWORK, '/kubeconfig', 1234);
  assert.doesNotMatch(text, /\bforward\b/);
  assert.match(text, /\.:53 \{[^}]*template ANY ANY \{\s*rcode NXDOMAIN/);
  assert.equal(
    [...text.matchAll(/bind (\S+)/g)].every((m) => m[1] === NODE_NETWORK.address),
    true,
  );
});

test("CoreDNS answers the test's own outside names, and only those", () => {
  const text = corefile(NODE_NETWORK, '/kubeconfig', 1234, {
    'tickets.example.test': '100.63.0.10',
  });
  assert.match(
    text,
    /template IN A tickets\.example\.test \{\s*match \^tickets\[\.\]example\[\.\]test\[\.\]\$\s*answer "\{\{ \.Name \}\} 5 IN A 100\.63\.0\.10"/,
  );
  assert.doesNotMatch(text, /\bforward\b/);
  assert.throws(() => corefile(NODE_NETWORK, '/k', 1, { 'a b': '1.2.3.4' }), /not a DNS name/);
  assert.throws(() => corefile(NODE_NETWORK, '/k', 1, { 'a.test': 'x' }), /not an IPv4/);
});

test('containerd pulls from no registry and keeps to its own directories', () => {
  assert.equal(registryHostsToml(), 'server = "http://127.0.0.1:9"\n');
  const toml = containerdConfig(layout());
  for (const key of ['root', 'state']) assert.match(toml, new RegExp(`^${key} = '/state/`, 'm'));
  assert.match(toml, /restrict_oom_score_adj = true/);
  assert.match(toml, /sandbox = 'localhost\/mcpworks\/pause:1'/);
});

test('the guard ruleset is valid nftables and drops all but bridge-to-bridge forwarding', () => {
  const rules = guardRuleset(NODE_NETWORK, {
    componentCgroup: '.',
    forwardOnlyOnBridge: true,
  });
  const all = rules.split('\n');
  const start = all.indexOf('  chain forward {');
  const lines = all.slice(start + 1, all.indexOf('  }', start)).map((l) => l.trim());
  assert.equal(
    lines[1],
    `iifname "${NODE_NETWORK.bridge}" oifname "${NODE_NETWORK.bridge}" accept`,
  );
  assert.equal(lines.at(-1), 'counter name "forward_dropped" drop');
  assert.match(rules, /socket cgroupv2 level 1 "\." ip daddr != \{ 127\.0\.0\.0\/8, /);
  // nft -c parses and checks against the kernel without changing anything.
  execFileSync('nft', ['-c', '-f', '-'], { input: rules });
});
