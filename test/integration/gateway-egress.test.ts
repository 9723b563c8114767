// Egress guardrails and the egress/secret observability of a tools/call, through the gateway
// in-process: the real policy engine (compiled ClusterAgentPolicy egressDeny), a real SDK client,
// a stub executor that reports egress attempts and redactions as the real one does, and the
// EgressDenied Events written to a real kube-apiserver.
import assert from 'node:assert/strict';
import { after, afterEach, before, test } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import { McpServerSchema } from '../../src/api/v1alpha1/mcpserver.ts';
import type {
  EgressAttemptRecord,
  ResolvedTool,
  ToolCallResult,
} from '../../src/executor/types.ts';
import { compilePolicySet } from '../../src/gateway/policy/engine.ts';
import {
  agentPolicy,
  clusterPolicy,
  egressGuardrail,
  rule,
} from '../../src/gateway/policy/testing/builders.ts';
import type { GatewaySnapshot } from '../../src/gateway/source/types.ts';
import { createEventAggregator } from '../../src/gateway/telemetry/events.ts';
import {
  createEventWith,
  createKubeEventPublisher,
} from '../../src/gateway/telemetry/kube-events.ts';
import { policyEngine } from '../../src/gateway/wiring.ts';
import { createKubeClient } from '../../src/k8s/client.ts';
import { manualClock } from '../../src/shared/clock.ts';
import { startControlPlane, type ControlPlane } from '../harness/controlplane.ts';
import {
  connect,
  mutableSource,
  startGateway,
  stubExecutor,
  tool,
  type StartedGateway,
} from './gateway-fixtures.ts';

const SECRET_VALUE = 'ghp_s3cr3tvalue0123456789';

let cp: ControlPlane;
before(async () => {
  cp = await startControlPlane();
});
after(() => cp?.stop());

let gw: StartedGateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

/** `fetch_issue` may reach api.example.com; `echo` has no egress. Alice may call both. */
function egressSnapshot(namespace: string, clusterPolicies: unknown[]): GatewaySnapshot {
  const fetchIssue: ResolvedTool = {
    ...tool('fetch_issue'),
    egress: [{ host: 'api.example.com', ports: [443] }],
    secretEnv: [{ name: 'API_TOKEN', secretKeyRef: { name: 'api', key: 'token' } }],
  };
  const tools = [tool('echo'), fetchIssue];
  const server = McpServerSchema.parse({
    apiVersion: 'mcpworks.io/v1alpha1',
    kind: 'McpServer',
    metadata: { name: 'demo', namespace, uid: 'uid-egress' },
    spec: { tools, auth: { apiKeys: { secretRef: { name: 'keys' } } } },
  });
  const { set } = compilePolicySet({
    agentPolicies: [
      agentPolicy(
        'alice',
        [rule('Allow', [{ kind: 'Agent', name: 'alice' }], ['echo', 'fetch_issue'])],
        { namespace },
      ),
    ],
    clusterPolicies,
  });
  return { revision: 1, server, tools, policySet: set, namespaceLabels: {} };
}

const attempt = (over: Partial<EgressAttemptRecord>): EgressAttemptRecord => ({
  host: 'api.example.com',
  port: 443,
  allowed: true,
  reason: 'allowed',
  bytesUp: 100,
  bytesDown: 2000,
  durationMs: 12,
  ...over,
});

/** What the executor reports for a call that reached one host, was refused two and redacted a secret. */
function egressResult(): ToolCallResult {
  return {
    outcome: 'ok',
    isError: false,
    content: [{ type: 'text', text: 'issue 7: [REDACTED:API_TOKEN]' }],
    durationMs: 30,
    outputBytes: 40,
    executor: 'stub',
    egress: [
      attempt({ address: '203.0.113.7', sni: 'api.example.com' }),
      attempt({ host: '10.0.0.1', allowed: false, reason: 'raw-ip', bytesUp: 0, bytesDown: 0 }),
      attempt({
        host: 'x.example',
        allowed: false,
        reason: 'made-up-reason',
        bytesUp: 0,
        bytesDown: 0,
      }),
      attempt({
        host: 'pastebin.com',
        allowed: false,
        reason: 'policy-denied',
        policy: 'ClusterAgentPolicy no-paste',
        bytesUp: 0,
        bytesDown: 0,
        detail: `CONNECT carried ${SECRET_VALUE}`,
      }),
    ],
    redactions: { API_TOKEN: 2 },
  };
}

async function start(namespace: string, clusterPolicies: unknown[], result = egressResult) {
  const snap = egressSnapshot(namespace, clusterPolicies);
  const executor = stubExecutor(() => result());
  const clock = manualClock();
  const events = createEventAggregator({
    publisher: createKubeEventPublisher({
      createEvent: createEventWith(createKubeClient(cp.kubeConfig)),
      instance: 'gw-0',
    }),
    clock,
    windowMs: 10_000,
  });
  gw = await startGateway({ executor, policy: policyEngine, source: mutableSource(snap), events });
  const client = await connect(`${gw.base}/mcp/${namespace}/demo`, 'token-alice');
  return { gw, client, executor, events, clock };
}

const noPaste = egressGuardrail('no-paste', [
  { hosts: ['pastebin.com', '*.paste.example'], reason: 'no paste sites' },
]);

test('every forwarded tools/call carries the guardrails that cover it', async () => {
  const narrow = egressGuardrail('tickets', [
    { hosts: ['internal.example'], tools: ['fetch_*'], reason: 'tickets stay inside' },
  ]);
  const { client, executor } = await start('egress-a', [noPaste, narrow]);
  await client.callTool({ name: 'fetch_issue', arguments: {} });
  await client.callTool({ name: 'echo', arguments: {} });
  assert.deepEqual(
    executor.requests.map((r) => [r.tool.name, r.egressDenied]),
    [
      [
        'fetch_issue',
        [
          {
            hosts: ['pastebin.com', '*.paste.example'],
            policy: 'ClusterAgentPolicy no-paste',
            reason: 'no paste sites',
          },
          {
            hosts: ['internal.example'],
            policy: 'ClusterAgentPolicy tickets',
            reason: 'tickets stay inside',
          },
        ],
      ],
      [
        'echo',
        [
          {
            hosts: ['pastebin.com', '*.paste.example'],
            policy: 'ClusterAgentPolicy no-paste',
            reason: 'no paste sites',
          },
        ],
      ],
    ],
  );
  await client.close();
});

test('an auditOnly guardrail is not sent to the executor', async () => {
  const trial = egressGuardrail('trial', [{ hosts: ['example.org'], reason: 'trying' }], {
    auditOnly: true,
  });
  const { client, executor } = await start('egress-b', [trial]);
  await client.callTool({ name: 'fetch_issue', arguments: {} });
  assert.deepEqual(executor.requests[0]?.egressDenied, []);
  await client.close();
});

test('the record carries every attempt and the redaction counts, never a payload or secret', async () => {
  const { client, gw } = await start('egress-c', [noPaste]);
  const before = gw.records.length;
  const result = await client.callTool({ name: 'fetch_issue', arguments: {} });
  assert.equal(result.isError, false);
  const [record] = gw.records.slice(before);
  assert.deepEqual(record?.egress, [
    {
      host: 'api.example.com',
      port: 443,
      address: '203.0.113.7',
      allowed: true,
      reason: 'allowed',
      bytesUp: 100,
      bytesDown: 2000,
      durationMs: 12,
    },
    {
      host: '10.0.0.1',
      port: 443,
      allowed: false,
      reason: 'raw-ip',
      bytesUp: 0,
      bytesDown: 0,
      durationMs: 12,
    },
    {
      host: 'x.example',
      port: 443,
      allowed: false,
      reason: 'made-up-reason',
      bytesUp: 0,
      bytesDown: 0,
      durationMs: 12,
    },
    {
      host: 'pastebin.com',
      port: 443,
      allowed: false,
      reason: 'policy-denied',
      policy: 'ClusterAgentPolicy no-paste',
      bytesUp: 0,
      bytesDown: 0,
      durationMs: 12,
    },
  ]);
  assert.deepEqual(record?.redactions, { API_TOKEN: 2 });
  assert.doesNotMatch(JSON.stringify(gw.records), new RegExp(SECRET_VALUE));
  await client.close();
});

test('metrics count attempts by allowed and bounded reason, and redactions, with no host label', async () => {
  const { client, gw } = await start('egress-d', [noPaste]);
  await client.callTool({ name: 'fetch_issue', arguments: {} });
  await client.callTool({ name: 'fetch_issue', arguments: {} });
  const text = await (await fetch(`${gw.base}/metrics`)).text();
  const series = (reason: string, allowed: boolean) =>
    new RegExp(
      `mcpworks_egress_attempts_total\\{server="egress-d/demo",tool="fetch_issue",allowed="${allowed}",reason="${reason}"\\} 2`,
    );
  assert.match(text, series('allowed', true));
  assert.match(text, series('policy-denied', false));
  assert.match(text, series('raw-ip', false));
  assert.match(text, series('_unknown', false));
  assert.match(
    text,
    /mcpworks_secret_redactions_total\{server="egress-d\/demo",tool="fetch_issue"\} 4/,
  );
  const egressLines = text
    .split('\n')
    .filter((l) => l.startsWith('mcpworks_egress_attempts_total'));
  for (const line of egressLines)
    assert.doesNotMatch(line, /pastebin|api\.example|10\.0\.0\.1|host=/);
  assert.doesNotMatch(text, /API_TOKEN|made-up-reason/);
  assert.doesNotMatch(text, new RegExp(SECRET_VALUE));
  await client.close();
});

test('refused attempts become one aggregated EgressDenied Event on the McpServer', async () => {
  const ns = await cp.newNamespace('egress-events');
  const { client, events, clock } = await start(ns, [noPaste]);
  for (let i = 0; i < 3; i++) await client.callTool({ name: 'fetch_issue', arguments: {} });
  clock.advance(10_000);
  await events.flush();
  const core = cp.kubeConfig.makeApiClient(CoreV1Api);
  const list = (await core.listNamespacedEvent({ namespace: ns })).items;
  const denied = list.filter((e) => e.reason === 'EgressDenied');
  assert.equal(denied.length, 1, JSON.stringify(list.map((e) => [e.reason, e.message])));
  const [event] = denied;
  assert.equal(event!.type, 'Warning');
  assert.equal(event!.count, 9); // three refused attempts per call
  assert.deepEqual(
    {
      kind: event!.involvedObject.kind,
      name: event!.involvedObject.name,
      uid: event!.involvedObject.uid,
    },
    { kind: 'McpServer', name: 'demo', uid: 'uid-egress' },
  );
  // The latest observation's message: tool, host:port, why and the guardrail that refused it.
  assert.equal(
    event!.message,
    'tool fetch_issue was refused pastebin.com:443: policy-denied by ClusterAgentPolicy no-paste',
  );
  for (const e of list)
    assert.doesNotMatch(`${e.message}`, new RegExp(`${SECRET_VALUE}|API_TOKEN`));
  await client.close();
});

test('a hostile host name in an EgressDenied message is made printable and bounded', async () => {
  const ns = await cp.newNamespace('egress-hostile');
  const hostile = `evil\n\u0000${'a'.repeat(400)}`;
  const { client, events, clock } = await start(ns, [noPaste], () => ({
    ...egressResult(),
    egress: [attempt({ host: hostile, allowed: false, reason: 'invalid-host' })],
  }));
  await client.callTool({ name: 'fetch_issue', arguments: {} });
  clock.advance(10_000);
  await events.flush();
  const core = cp.kubeConfig.makeApiClient(CoreV1Api);
  const [event] = (await core.listNamespacedEvent({ namespace: ns })).items.filter(
    (e) => e.reason === 'EgressDenied',
  );
  const shown = `evil??${'a'.repeat(247)}...`;
  assert.equal(event!.message, `tool fetch_issue was refused ${shown}:443: invalid-host`);
  await client.close();
});

test('a guardrail that cannot be read refuses tools with egress, not the others (fail closed)', async () => {
  const unreadable = {
    ...clusterPolicy('broken', []),
    spec: { servers: { selector: {} }, egressDeny: [{ hosts: ['192.168.0.1'], reason: 'r' }] },
  };
  const { client, gw, executor } = await start('egress-e', [unreadable]);
  const before = gw.records.length;
  const refused = await client.callTool({ name: 'fetch_issue', arguments: {} });
  assert.equal(refused.isError, true);
  assert.match(
    JSON.stringify(refused.content),
    /denied by policy: tool fetch_issue declares egress and is refused: policy ClusterAgentPolicy\/broken is invalid/,
  );
  const echoed = await client.callTool({ name: 'echo', arguments: {} });
  assert.equal(echoed.isError, false);
  assert.deepEqual(
    executor.requests.map((r) => r.tool.name),
    ['echo'],
  );
  const [denial, allowed] = gw.records.slice(before);
  assert.equal(denial?.effect, 'Deny');
  assert.equal(denial?.outcome, 'denied');
  assert.equal(denial?.rule, undefined);
  assert.equal(allowed?.effect, 'Allow');
  const text = await (await fetch(`${gw.base}/metrics`)).text();
  assert.match(
    text,
    /mcpworks_decisions_total\{server="egress-e\/demo",tool="fetch_issue",effect="deny",reason_code="egress_guardrail_invalid"\} 1/,
  );
  await client.close();
});
