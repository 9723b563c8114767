import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  compilePolicySet,
  decide,
  egressGuardrails,
  MAX_EGRESS_DENIALS,
  policiesForServer,
} from './engine.ts';
import { egressVerdict } from './egress.ts';
import {
  agent,
  agentPolicy,
  call,
  clusterPolicy,
  egressGuardrail,
  rule,
  server,
} from './testing/builders.ts';

function compile(clusterPolicies: unknown[], agentPolicies: unknown[] = []) {
  return compilePolicySet({ agentPolicies, clusterPolicies });
}

const noPaste = egressGuardrail('no-paste', [
  { hosts: ['Pastebin.com.', '*.Paste.example'], reason: 'no paste sites' },
]);

describe('egressGuardrails', () => {
  test('a guardrail-only ClusterAgentPolicy is valid and denies its hosts, normalised, for every tool', () => {
    const { set, errors } = compile([noPaste]);
    assert.deepEqual(errors, []);
    assert.deepEqual(egressGuardrails(set, server(), 'fetch_page'), {
      denied: [
        {
          hosts: ['pastebin.com', '*.paste.example'],
          policy: 'ClusterAgentPolicy no-paste',
          reason: 'no paste sites',
        },
      ],
      audit: [],
    });
  });

  test('a guardrail-only policy selecting the server is listed for it, and allows no call', () => {
    const { set } = compile([noPaste]);
    assert.deepEqual(policiesForServer(set, server()), ['ClusterAgentPolicy/no-paste']);
    assert.equal(decide(set, call(agent('alice'), 'fetch_page')).effect, 'Deny');
  });

  test('tools globs narrow a guardrail; tool names are matched in lower case', () => {
    const { set } = compile([
      egressGuardrail('github', [
        { hosts: ['api.github.com'], tools: ['ticket_*', 'sync'], reason: 'tickets stay internal' },
      ]),
    ]);
    assert.equal(egressGuardrails(set, server(), 'Ticket_Open').denied.length, 1);
    assert.equal(egressGuardrails(set, server(), 'sync').denied.length, 1);
    assert.deepEqual(egressGuardrails(set, server(), 'search').denied, []);
  });

  test('server and namespace selection work as for rules', () => {
    const { set } = compile([
      egressGuardrail('prod-only', [{ hosts: ['example.org'], reason: 'r' }], {
        servers: { names: ['files'] },
        namespaceSelector: { matchLabels: { env: 'prod' } },
      }),
    ]);
    const prod = server('files', 'team', {}, { env: 'prod' });
    assert.equal(egressGuardrails(set, prod, 'x').denied.length, 1);
    assert.deepEqual(egressGuardrails(set, server('files', 'team', {}, {}), 'x').denied, []);
    assert.deepEqual(
      egressGuardrails(set, server('other', 'team', {}, { env: 'prod' }), 'x').denied,
      [],
    );
  });

  test('an auditOnly policy is reported, never enforced', () => {
    const { set } = compile([
      egressGuardrail('trial', [{ hosts: ['example.org'], reason: 'trying' }], { auditOnly: true }),
    ]);
    const result = egressGuardrails(set, server(), 'x');
    assert.deepEqual(result.denied, []);
    assert.deepEqual(result.audit, [
      { hosts: ['example.org'], policy: 'ClusterAgentPolicy trial', reason: 'trying' },
    ]);
  });

  test('denials come in canonical order (policy, then entry) whatever the input order', () => {
    const a = egressGuardrail('a', [
      { hosts: ['one.example'], reason: 'a0' },
      { hosts: ['two.example'], reason: 'a1' },
    ]);
    const b = egressGuardrail('b', [{ hosts: ['one.example'], reason: 'b0' }]);
    const reasons = (policies: unknown[]) =>
      egressGuardrails(compile(policies).set, server(), 'x').denied.map((d) => d.reason);
    assert.deepEqual(reasons([a, b]), ['a0', 'a1', 'b0']);
    assert.deepEqual(reasons([b, a]), ['a0', 'a1', 'b0']);
  });

  test('rules and egressDeny live side by side in one ClusterAgentPolicy', () => {
    const both = clusterPolicy('both', [rule('Deny', [{ kind: 'Group', name: '*' }], ['shell'])], {
      egressDeny: [{ hosts: ['example.org'], reason: 'r' }],
    });
    const { set, errors } = compile([both]);
    assert.deepEqual(errors, []);
    assert.equal(decide(set, call(agent('alice'), 'shell')).effect, 'Deny');
    assert.equal(egressGuardrails(set, server(), 'x').denied.length, 1);
  });

  test('a tool name over the length limit is covered by every guardrail', () => {
    const { set } = compile([
      egressGuardrail('narrow', [{ hosts: ['example.org'], tools: ['a'], reason: 'r' }]),
    ]);
    assert.equal(egressGuardrails(set, server(), 'a'.repeat(300)).denied.length, 1);
  });
});

describe('egressGuardrails: invalid policies fail closed', () => {
  test('a policy with neither rules nor egressDeny is invalid', () => {
    const { errors } = compile([
      { ...egressGuardrail('empty', []), spec: { servers: { selector: {} } } },
    ]);
    assert.ok(
      errors.some((e) => e.message.includes('set rules, egressDeny, or both')),
      JSON.stringify(errors),
    );
  });

  test('an invalid policy keeps its readable guardrails, and says so in the reason', () => {
    const broken = clusterPolicy(
      'broken',
      [rule('Allow', [{ kind: 'Agent', name: 'alice' }], ['Bad Tool'])],
      {
        egressDeny: [{ hosts: ['example.org'], reason: 'no example' }],
      },
    );
    const { set, errors } = compile([broken]);
    assert.ok(errors.length > 0);
    const [denial] = egressGuardrails(set, server(), 'x').denied;
    assert.deepEqual(denial?.hosts, ['example.org']);
    assert.match(
      denial?.reason ?? '',
      /^no example \[policy ClusterAgentPolicy\/broken is invalid/,
    );
  });

  test('a broken tools list widens the guardrail to every tool', () => {
    const raw = egressGuardrail('wide', [
      { hosts: ['example.org'], tools: ['Not A Glob'], reason: 'r' },
    ]);
    const { set, errors } = compile([raw]);
    assert.ok(
      errors.some((e) => e.path === 'spec.egressDeny[0].tools[0]'),
      JSON.stringify(errors),
    );
    assert.equal(egressGuardrails(set, server(), 'anything').denied.length, 1);
  });

  for (const [name, egressDeny] of [
    ['an IP address', [{ hosts: ['10.0.0.1'], reason: 'r' }]],
    ['a wildcard over a top-level domain', [{ hosts: ['*.com'], reason: 'r' }]],
    ['hosts that are not a list', [{ hosts: 'example.org', reason: 'r' }]],
    ['egressDeny that is not a list', { hosts: ['example.org'] }],
  ] as const) {
    test(`unreadable hosts (${name}) refuse every tool with egress on the servers it selects`, () => {
      const raw = {
        ...egressGuardrail('unreadable', []),
        spec: { servers: { names: ['files'] }, egressDeny },
      };
      const { set, errors } = compile([raw]);
      assert.ok(errors.length > 0);
      const result = egressGuardrails(set, server(), 'x');
      assert.match(
        result.refuseEgress ?? '',
        /ClusterAgentPolicy\/unreadable is invalid.*tools with egress are refused/,
      );
      assert.equal(egressGuardrails(set, server('other'), 'x').refuseEgress, undefined);
    });
  }

  test('an unreadable auditOnly policy refuses nothing', () => {
    const raw = {
      ...egressGuardrail('trial', []),
      spec: {
        servers: { selector: {} },
        auditOnly: true,
        egressDeny: [{ hosts: ['1.2.3.4'], reason: 'r' }],
      },
    };
    assert.equal(egressGuardrails(compile([raw]).set, server(), 'x').refuseEgress, undefined);
  });

  test('an AgentPolicy cannot carry egressDeny: it is invalid and forbids no host', () => {
    const raw = agentPolicy('mine', [rule('Allow', [{ kind: 'Agent', name: 'alice' }], ['x'])]);
    const withEgress = {
      ...raw,
      spec: { ...raw.spec, egressDeny: [{ hosts: ['example.org'], reason: 'r' }] },
    };
    const { set, errors } = compile([], [withEgress]);
    assert.ok(
      errors.some((e) => e.path.startsWith('spec')),
      JSON.stringify(errors),
    );
    assert.deepEqual(egressGuardrails(set, server(), 'x'), { denied: [], audit: [] });
    assert.equal(decide(set, call(agent('alice'), 'x')).effect, 'Deny');
  });
});

describe('egressGuardrails: within what one call can carry', () => {
  test('more guardrails than a call can carry: none is sent and tools with egress are refused', () => {
    const many = Array.from({ length: MAX_EGRESS_DENIALS + 1 }, (_, i) => ({
      hosts: [`h${i}.example`],
      reason: `r${i}`,
    }));
    const half = Math.ceil(many.length / 2);
    const { set } = compile([
      egressGuardrail('a', many.slice(0, half)),
      egressGuardrail('b', many.slice(half)),
    ]);
    const result = egressGuardrails(set, server(), 'x');
    assert.deepEqual(result.denied, []);
    assert.match(
      result.refuseEgress ?? '',
      /65 egress guardrails cover tool "x" on server team\/files/,
    );
  });

  test('an over-long reason (which makes the policy invalid) is bounded in what a call carries', () => {
    const raw = clusterPolicy('broken', [rule('Allow', [{ kind: 'Agent', name: 'a' }], ['Bad'])], {
      egressDeny: [{ hosts: ['example.org'], reason: 'r'.repeat(2000) }],
    });
    const [denial] = egressGuardrails(compile([raw]).set, server(), 'x').denied;
    assert.equal(denial?.reason.length, 1024);
  });

  test('more hosts in one entry than the schema allows is unreadable', () => {
    const hosts = Array.from({ length: 65 }, (_, i) => `h${i}.example`);
    const { set } = compile([egressGuardrail('wide', [{ hosts, reason: 'r' }])]);
    assert.match(
      egressGuardrails(set, server(), 'x').refuseEgress ?? '',
      /hosts is not a list of 1 to 64/,
    );
  });
});

describe('egressVerdict', () => {
  const denials = [
    { hosts: ['*.paste.example'], policy: 'ClusterAgentPolicy a', reason: 'no paste' },
    { hosts: ['pastebin.com'], policy: 'ClusterAgentPolicy b', reason: 'no pastebin' },
  ];

  test('the first denial covering the host refuses it, case and trailing dot aside', () => {
    assert.deepEqual(egressVerdict(denials, 'PasteBin.com.'), {
      denied: true,
      policy: 'ClusterAgentPolicy b',
      reason: 'no pastebin',
      pattern: 'pastebin.com',
    });
    assert.equal(egressVerdict(denials, 'a.b.paste.example').denied, true);
  });

  test('a wildcard does not cover its own suffix, and a lookalike is not covered', () => {
    assert.equal(egressVerdict(denials, 'paste.example').denied, false);
    assert.equal(egressVerdict(denials, 'pastebin.com.evil.example').denied, false);
    assert.equal(egressVerdict(denials, 'notpastebin.com').denied, false);
  });

  test('an IP address is left to the proxy, which refuses raw IPs', () => {
    const verdict = egressVerdict(denials, '127.0.0.1');
    assert.equal(verdict.denied, false);
    assert.match(verdict.reason, /not a DNS name/);
  });
});
