import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  compilePolicySet,
  decide,
  isPolicyGoverned,
  policiesForServer,
  visibleTools,
} from './engine.ts';
import {
  agent,
  agentPolicy,
  anonymous,
  call,
  clusterPolicy,
  rule,
  server,
  serviceAccount,
} from './testing/builders.ts';

const alice = agent('alice', ['dev']);
const allowAlice = (tools: string[], extra = {}) =>
  rule('Allow', [{ kind: 'Agent', name: 'alice' }], tools, extra);

function compile(agentPolicies: unknown[], clusterPolicies: unknown[] = []) {
  return compilePolicySet({ agentPolicies, clusterPolicies });
}

describe('decide: basics', () => {
  test('default deny names the agent, tool and server', () => {
    const { set } = compile([]);
    const decision = decide(set, call(alice, 'read_file'));
    assert.equal(decision.effect, 'Deny');
    assert.equal(
      decision.reason,
      'no policy allows agent "alice" to call tool "read_file" on server team/files',
    );
    assert.equal(decision.rule, undefined);
  });

  test('an Allow rule allows and is reported as the deciding rule with its reason', () => {
    const { set } = compile([
      agentPolicy('readers', [allowAlice(['read_file'], { reason: 'alice reads' })]),
    ]);
    const decision = decide(set, call(alice, 'read_file'));
    assert.deepEqual(decision, {
      effect: 'Allow',
      reason: 'alice reads',
      rule: { kind: 'AgentPolicy', namespace: 'team', name: 'readers', index: 0 },
      policies: ['AgentPolicy/team/readers'],
      audit: [],
    });
  });

  test('a ClusterAgentPolicy Deny beats an AgentPolicy Allow', () => {
    const { set } = compile(
      [agentPolicy('readers', [allowAlice(['*'])])],
      [
        clusterPolicy('no-shell', [
          rule('Deny', [{ kind: 'Group', name: '*' }], ['shell'], { reason: 'no shells' }),
        ]),
      ],
    );
    const decision = decide(set, call(alice, 'shell'));
    assert.equal(decision.effect, 'Deny');
    assert.equal(decision.reason, 'no shells');
    assert.deepEqual(decision.rule, { kind: 'ClusterAgentPolicy', name: 'no-shell', index: 0 });
    assert.deepEqual(decision.policies, [
      'AgentPolicy/team/readers',
      'ClusterAgentPolicy/no-shell',
    ]);
  });

  test('of several matching Denies the canonically first one is reported, whatever the input order', () => {
    const a = agentPolicy('a-deny', [
      rule('Deny', [{ kind: 'Agent', name: 'alice' }], ['x'], { reason: 'a' }),
    ]);
    const b = agentPolicy('b-deny', [
      rule('Deny', [{ kind: 'Agent', name: 'alice' }], ['x'], { reason: 'b' }),
    ]);
    assert.equal(decide(compile([a, b]).set, call(alice, 'x')).reason, 'a');
    assert.equal(decide(compile([b, a]).set, call(alice, 'x')).reason, 'a');
  });

  test('tool globs: *, ?, classes and braces', () => {
    const { set } = compile([
      agentPolicy('p', [allowAlice(['read_*', 'ge?', 'log[0-9]', '{list,stat}_dir'])]),
    ]);
    for (const tool of ['read_file', 'read_', 'get', 'log7', 'list_dir', 'stat_dir']) {
      assert.equal(decide(set, call(alice, tool)).effect, 'Allow', tool);
    }
    for (const tool of ['write_file', 'gets', 'logx', 'mk_dir', 'xread_file']) {
      assert.equal(decide(set, call(alice, tool)).effect, 'Deny', tool);
    }
  });

  test('a glob Deny also matches tool names with "/" and a leading "."', () => {
    const { set } = compile([
      agentPolicy('p', [
        allowAlice(['*']),
        rule('Deny', [{ kind: 'Agent', name: 'alice' }], ['admin*', '*secret']),
      ]),
    ]);
    assert.equal(decide(set, call(alice, 'admin/reset')).effect, 'Deny');
    assert.equal(decide(set, call(alice, '.secret')).effect, 'Deny');
  });

  test('methods other than tools/call and tools/list are not decided by rules', () => {
    const { set } = compile([agentPolicy('p', [allowAlice(['*'])])]);
    assert.equal(isPolicyGoverned('initialize'), false);
    assert.equal(isPolicyGoverned('tools/call'), true);
    const decision = decide(set, { server: server(), principal: alice, method: 'resources/list' });
    assert.equal(decision.effect, 'Deny');
    assert.match(decision.reason, /not decided by policy/);
  });

  test('tools/call without a tool name is denied', () => {
    const { set } = compile([agentPolicy('p', [allowAlice(['*'])])]);
    assert.equal(
      decide(set, { server: server(), principal: alice, method: 'tools/call' }).effect,
      'Deny',
    );
  });

  test('an over-long tool name is denied before any pattern runs', () => {
    const { set } = compile([agentPolicy('p', [allowAlice(['*'])])]);
    const decision = decide(set, call(alice, 'a'.repeat(300)));
    assert.equal(decision.effect, 'Deny');
    assert.match(decision.reason, /longer than 256/);
  });
});

describe('decide: subjects', () => {
  test('Group subjects match the principal groups', () => {
    const { set } = compile([
      agentPolicy('p', [rule('Allow', [{ kind: 'Group', name: 'dev' }], ['t'])]),
    ]);
    assert.equal(decide(set, call(agent('bob', ['dev']), 't')).effect, 'Allow');
    assert.equal(decide(set, call(agent('carol', ['ops']), 't')).effect, 'Deny');
  });

  test('Agent "*" matches every agent but not service accounts', () => {
    const { set } = compile([
      agentPolicy('p', [rule('Allow', [{ kind: 'Agent', name: '*' }], ['t'])]),
    ]);
    assert.equal(decide(set, call(agent('anyone'), 't')).effect, 'Allow');
    assert.equal(decide(set, call(serviceAccount('team', 'ci'), 't')).effect, 'Deny');
  });

  test('a ServiceAccount subject defaults to the policy namespace', () => {
    const { set } = compile([
      agentPolicy('p', [rule('Allow', [{ kind: 'ServiceAccount', name: 'ci' }], ['t'])]),
    ]);
    assert.equal(decide(set, call(serviceAccount('team', 'ci'), 't')).effect, 'Allow');
    assert.equal(decide(set, call(serviceAccount('other', 'ci'), 't')).effect, 'Deny');
  });

  test('a ServiceAccount principal is recognised from its full name alone', () => {
    const { set } = compile([
      agentPolicy('p', [rule('Allow', [{ kind: 'ServiceAccount', name: 'ci' }], ['t'])]),
    ]);
    const principal = { ...serviceAccount('team', 'ci') };
    delete principal.namespace;
    delete principal.serviceAccountName;
    assert.equal(decide(set, call(principal, 't')).effect, 'Allow');
  });

  test('a ClusterAgentPolicy ServiceAccount subject without namespace matches any namespace', () => {
    const { set } = compile(
      [],
      [clusterPolicy('c', [rule('Allow', [{ kind: 'ServiceAccount', name: 'ci' }], ['t'])])],
    );
    assert.equal(decide(set, call(serviceAccount('elsewhere', 'ci'), 't')).effect, 'Allow');
  });

  test('anonymous callers match only Anonymous subjects, never groups they claim', () => {
    const { set } = compile([
      agentPolicy('p', [
        rule(
          'Allow',
          [
            { kind: 'Group', name: '*' },
            { kind: 'Group', name: 'dev' },
          ],
          ['t'],
        ),
      ]),
    ]);
    assert.equal(decide(set, call(anonymous(['dev']), 't')).effect, 'Deny');
    const open = compile([agentPolicy('p', [rule('Allow', [{ kind: 'Anonymous' }], ['t'])])]).set;
    const decision = decide(open, call(anonymous(), 't'));
    assert.equal(decision.effect, 'Allow');
    assert.equal(decide(open, call(alice, 't')).effect, 'Deny');
  });
});

describe('decide: server selection', () => {
  test('an AgentPolicy applies only to servers in its own namespace', () => {
    const { set } = compile([agentPolicy('p', [allowAlice(['t'])])]);
    assert.equal(decide(set, call(alice, 't', {}, server('files', 'other'))).effect, 'Deny');
  });

  test('servers by name or by labels (an OR)', () => {
    const { set } = compile([
      agentPolicy('p', [allowAlice(['t'])], {
        servers: { names: ['files'], selector: { matchLabels: { tier: 'low' } } },
      }),
    ]);
    assert.equal(decide(set, call(alice, 't', {}, server('files'))).effect, 'Allow');
    assert.equal(
      decide(set, call(alice, 't', {}, server('db', 'team', { tier: 'low' }))).effect,
      'Allow',
    );
    assert.equal(
      decide(set, call(alice, 't', {}, server('db', 'team', { tier: 'high' }))).effect,
      'Deny',
    );
  });

  test('matchExpressions In, NotIn, Exists and DoesNotExist', () => {
    const selector = {
      matchExpressions: [
        { key: 'env', operator: 'In' as const, values: ['dev', 'test'] },
        { key: 'tier', operator: 'NotIn' as const, values: ['prod'] },
        { key: 'owner', operator: 'Exists' as const },
        { key: 'frozen', operator: 'DoesNotExist' as const },
      ],
    };
    const { set } = compile([agentPolicy('p', [allowAlice(['t'])], { servers: { selector } })]);
    const at = (labels: Record<string, string>) =>
      decide(set, call(alice, 't', {}, server('s', 'team', labels))).effect;
    assert.equal(at({ env: 'dev', owner: 'x' }), 'Allow');
    assert.equal(at({ env: 'prod', owner: 'x' }), 'Deny');
    assert.equal(at({ env: 'dev', owner: 'x', tier: 'prod' }), 'Deny');
    assert.equal(at({ env: 'dev' }), 'Deny');
    assert.equal(at({ env: 'dev', owner: 'x', frozen: 'y' }), 'Deny');
  });

  test('a ClusterAgentPolicy namespaceSelector picks namespaces by their labels', () => {
    const { set } = compile(
      [],
      [
        clusterPolicy('c', [allowAlice(['t'])], {
          namespaceSelector: { matchLabels: { team: 'a' } },
        }),
      ],
    );
    assert.equal(
      decide(set, call(alice, 't', {}, server('s', 'x', {}, { team: 'a' }))).effect,
      'Allow',
    );
    assert.equal(
      decide(set, call(alice, 't', {}, server('s', 'y', {}, { team: 'b' }))).effect,
      'Deny',
    );
  });

  test('policiesForServer lists the policies that select a server', () => {
    const { set } = compile(
      [
        agentPolicy('p', [allowAlice(['t'])]),
        agentPolicy('q', [allowAlice(['t'])], { namespace: 'other' }),
      ],
      [clusterPolicy('c', [allowAlice(['t'])])],
    );
    assert.deepEqual(policiesForServer(set, server()), [
      'AgentPolicy/team/p',
      'ClusterAgentPolicy/c',
    ]);
  });
});

describe('decide: conditions', () => {
  const withCondition = (effect: 'Allow' | 'Deny', condition: string) =>
    rule(effect, [{ kind: 'Agent', name: 'alice' }], ['write_file'], {
      conditions: [condition],
      reason: `${effect} if`,
    });

  test('an Allow applies only when its condition holds', () => {
    const { set } = compile([
      agentPolicy('p', [withCondition('Allow', 'args.path.startsWith("/tmp/")')]),
    ]);
    assert.equal(decide(set, call(alice, 'write_file', { path: '/tmp/x' })).effect, 'Allow');
    assert.equal(decide(set, call(alice, 'write_file', { path: '/etc/x' })).effect, 'Deny');
  });

  test('a false condition decides the rule whatever order an erroring one is listed in', () => {
    for (const conditions of [
      ['args.missing == 1', 'tool == "other"'],
      ['tool == "other"', 'args.missing == 1'],
    ]) {
      const deny = rule('Deny', [{ kind: 'Agent', name: 'alice' }], ['write_file'], { conditions });
      const { set } = compile([agentPolicy('p', [allowAlice(['*']), deny])]);
      assert.equal(decide(set, call(alice, 'write_file')).effect, 'Allow', conditions.join(' && '));
    }
  });

  test('JSON integers are CEL ints', () => {
    const { set } = compile([agentPolicy('p', [withCondition('Allow', 'args.n + 1 == 4')])]);
    assert.equal(decide(set, call(alice, 'write_file', { n: 3 })).effect, 'Allow');
  });

  test('conditions see tool and subject', () => {
    const { set } = compile([
      agentPolicy('p', [
        withCondition(
          'Allow',
          'tool == "write_file" && "dev" in subject.groups && subject.name == "alice"',
        ),
      ]),
    ]);
    assert.equal(decide(set, call(alice, 'write_file')).effect, 'Allow');
  });

  test('a Deny condition that errors counts as a match and says so', () => {
    const { set } = compile([
      agentPolicy('p', [allowAlice(['*']), withCondition('Deny', 'args.path.startsWith("/etc")')]),
    ]);
    const decision = decide(set, call(alice, 'write_file', {}));
    assert.equal(decision.effect, 'Deny');
    assert.match(decision.reason, /No such key: path.*counted as a match for Deny, fail closed/);
  });

  test('an Allow condition that errors does not match and the default deny says why', () => {
    const { set } = compile([
      agentPolicy('p', [withCondition('Allow', 'args.path.startsWith("/tmp")')]),
    ]);
    const decision = decide(set, call(alice, 'write_file', {}));
    assert.equal(decision.effect, 'Deny');
    assert.match(
      decision.reason,
      /^no policy allows .*was not applied because its condition .* never counts as a match for Allow/,
    );
  });

  test('a condition whose estimated cost is over the limit is an overrun: matches for Deny', () => {
    const expensive = 'args.items.all(a, args.items.all(b, args.items.all(c, a + b + c >= 0)))';
    const { set } = compile([
      agentPolicy('p', [allowAlice(['*']), withCondition('Deny', expensive)]),
    ]);
    const items = Array.from({ length: 200 }, (_, i) => i);
    const decision = decide(set, call(alice, 'write_file', { items }));
    assert.equal(decision.effect, 'Deny');
    assert.match(decision.reason, /estimated cost .* exceeds the limit/);
  });

  test('the same expensive condition on an Allow does not match', () => {
    const expensive = 'args.items.all(a, args.items.all(b, args.items.all(c, a + b + c >= 0)))';
    const { set } = compile([agentPolicy('p', [withCondition('Allow', expensive)])]);
    const items = Array.from({ length: 200 }, (_, i) => i);
    assert.equal(decide(set, call(alice, 'write_file', { items })).effect, 'Deny');
    assert.equal(decide(set, call(alice, 'write_file', { items: [1, 2] })).effect, 'Allow');
  });

  test('oversized arguments are never evaluated: a conditional Deny matches', () => {
    const { set } = compile([
      agentPolicy('p', [allowAlice(['*']), withCondition('Deny', 'size(args) > 100')]),
    ]);
    const decision = decide(set, call(alice, 'write_file', { items: new Array(100_001).fill(0) }));
    assert.equal(decision.effect, 'Deny');
    assert.match(decision.reason, /exceed the condition input limit/);
  });

  test('a __proto__ argument key is just a key', () => {
    const { set } = compile([
      agentPolicy('p', [withCondition('Allow', 'args["__proto__"] == "x"')]),
    ]);
    const args = JSON.parse('{"__proto__": "x"}') as Record<string, unknown>;
    assert.equal(decide(set, call(alice, 'write_file', args)).effect, 'Allow');
  });
});

describe('compilePolicySet: invalid policies fail closed', () => {
  test('a status the schema does not know does not make a policy invalid', () => {
    const withStatus = { ...agentPolicy('p', [allowAlice(['t'])]), status: { somethingNew: true } };
    const { set, errors } = compile([withStatus]);
    assert.deepEqual(errors, []);
    assert.equal(decide(set, call(alice, 't')).effect, 'Allow');
  });

  test('a condition that does not compile is reported with policy, path and message', () => {
    const { errors } = compile([
      agentPolicy('p', [
        rule('Allow', [{ kind: 'Agent', name: 'alice' }], ['t'], { conditions: ['args.('] }),
      ]),
    ]);
    assert.equal(errors.length, 1);
    assert.equal(errors[0]?.policy, 'AgentPolicy/team/p');
    assert.equal(errors[0]?.path, 'spec.rules[0].conditions[0]');
    assert.match(errors[0]?.message ?? '', /does not compile/);
  });

  test('the Allow rules of an invalid policy do not apply; other policies are unaffected', () => {
    const { set } = compile([
      agentPolicy('broken', [
        allowAlice(['a']),
        rule('Allow', [{ kind: 'Agent', name: 'alice' }], ['b'], { conditions: ['1 +'] }),
      ]),
      agentPolicy('fine', [allowAlice(['c'])]),
    ]);
    assert.equal(decide(set, call(alice, 'a')).effect, 'Deny');
    assert.equal(decide(set, call(alice, 'c')).effect, 'Allow');
  });

  test('a Deny rule whose condition does not compile applies unconditionally', () => {
    const { set } = compile([
      agentPolicy('allow', [allowAlice(['*'])]),
      agentPolicy('broken', [
        rule('Deny', [{ kind: 'Agent', name: 'alice' }], ['t'], { conditions: ['args.('] }),
      ]),
    ]);
    const decision = decide(set, call(alice, 't'));
    assert.equal(decision.effect, 'Deny');
    assert.match(
      decision.reason,
      /could not be compiled.*policy AgentPolicy\/team\/broken is invalid/,
    );
    assert.equal(decide(set, call(alice, 'other')).effect, 'Allow');
  });

  test('a Deny rule with an invalid tool pattern denies every tool for its subjects', () => {
    const { set, errors } = compile([
      agentPolicy('allow', [allowAlice(['*'])]),
      agentPolicy('broken', [rule('Deny', [{ kind: 'Agent', name: 'alice' }], ['bad[pattern'])]),
    ]);
    assert.equal(errors[0]?.path, 'spec.rules[0].tools[0]');
    assert.equal(decide(set, call(alice, 'anything')).effect, 'Deny');
    assert.equal(
      decide(set, call(agent('bob'), 'anything')).effect,
      'Deny',
      'bob has no allow anyway',
    );
  });

  test('a Deny rule with an unreadable subject denies every principal', () => {
    const broken = agentPolicy('broken', [
      rule('Deny', [{ kind: 'Robot' as 'Agent', name: 'x' }], ['t']),
    ]);
    const { set } = compile([
      agentPolicy('allow', [rule('Allow', [{ kind: 'Agent', name: '*' }], ['*'])]),
      broken,
    ]);
    assert.equal(decide(set, call(agent('anyone'), 't')).effect, 'Deny');
    assert.equal(decide(set, call(agent('anyone'), 'u')).effect, 'Allow');
  });

  test('a rule with an unknown effect is treated as Deny', () => {
    const broken = agentPolicy('broken', [
      rule('Permit' as 'Allow', [{ kind: 'Agent', name: 'alice' }], ['t']),
    ]);
    const { set } = compile([agentPolicy('allow', [allowAlice(['*'])]), broken]);
    assert.equal(decide(set, call(alice, 't')).effect, 'Deny');
  });

  test('a Deny policy with an invalid server selector applies to every server in its namespace', () => {
    const broken = agentPolicy(
      'broken',
      [rule('Deny', [{ kind: 'Agent', name: 'alice' }], ['t'])],
      {
        servers: { selector: { matchExpressions: [{ key: 'env', operator: 'In', values: [] }] } },
      },
    );
    const { set, errors } = compile([agentPolicy('allow', [allowAlice(['*'])]), broken]);
    assert.equal(errors[0]?.path, 'spec.servers.selector.matchExpressions[0].values');
    assert.equal(decide(set, call(alice, 't', {}, server('anything'))).effect, 'Deny');
  });

  test('a policy whose rules are not a list denies everything it covers', () => {
    const raw = { ...agentPolicy('broken', []), spec: { servers: {}, rules: 'oops' } };
    const { set } = compile([agentPolicy('allow', [allowAlice(['*'])]), raw]);
    const decision = decide(set, call(alice, 't'));
    assert.equal(decision.effect, 'Deny');
    assert.match(decision.reason, /is invalid/);
  });

  test('an invalid audit-only policy enforces nothing', () => {
    const raw = {
      ...agentPolicy('broken', []),
      spec: { servers: {}, auditOnly: true, rules: 'oops' },
    };
    const { set } = compile([agentPolicy('allow', [allowAlice(['*'])]), raw]);
    assert.equal(decide(set, call(alice, 't')).effect, 'Allow');
  });

  test('a policy defined twice keeps only its Deny rules, in any input order', () => {
    const first = agentPolicy('dup', [allowAlice(['a'])]);
    const second = agentPolicy('dup', [
      rule('Deny', [{ kind: 'Agent', name: 'alice' }], ['b']),
      allowAlice(['c']),
    ]);
    for (const order of [
      [first, second],
      [second, first],
    ]) {
      const { set, errors } = compile(order);
      assert.ok(errors.some((e) => e.message === 'defined 2 times'));
      assert.equal(decide(set, call(alice, 'a')).effect, 'Deny');
      assert.equal(decide(set, call(alice, 'c')).effect, 'Deny');
    }
  });

  test('a matches() pattern that could backtrack is rejected at compile time', () => {
    const { errors } = compile([
      agentPolicy('p', [allowAlice(['t'], { conditions: ['args.s.matches("^(a+)+$")'] })]),
      agentPolicy('q', [allowAlice(['t'], { conditions: ['args.s.matches(args.pattern)'] })]),
    ]);
    assert.equal(errors.length, 2);
    assert.match(errors[0]?.message ?? '', /repeats a group/);
    assert.match(errors[1]?.message ?? '', /literal pattern/);
  });
});

describe('audit-only policies', () => {
  test('an audit-only Deny is recorded beside the real Allow without enforcing it', () => {
    const { set } = compile([
      agentPolicy('allow', [allowAlice(['*'])]),
      agentPolicy(
        'candidate',
        [rule('Deny', [{ kind: 'Agent', name: 'alice' }], ['t'], { reason: 'soon' })],
        { auditOnly: true },
      ),
    ]);
    const decision = decide(set, call(alice, 't'));
    assert.equal(decision.effect, 'Allow');
    assert.deepEqual(decision.audit, [
      {
        policy: 'AgentPolicy/team/candidate',
        effect: 'Deny',
        rule: { kind: 'AgentPolicy', namespace: 'team', name: 'candidate', index: 0 },
        reason: 'soon',
        changesDecision: true,
      },
    ]);
  });

  test('an audit-only Allow over a default deny would change the decision', () => {
    const { set } = compile([agentPolicy('candidate', [allowAlice(['t'])], { auditOnly: true })]);
    const decision = decide(set, call(alice, 't'));
    assert.equal(decision.effect, 'Deny');
    assert.equal(decision.audit[0]?.changesDecision, true);
  });

  test('an audit-only Allow cannot override an enforced Deny', () => {
    const { set } = compile([
      agentPolicy('deny', [rule('Deny', [{ kind: 'Agent', name: 'alice' }], ['t'])]),
      agentPolicy('candidate', [allowAlice(['t'])], { auditOnly: true }),
    ]);
    const decision = decide(set, call(alice, 't'));
    assert.equal(decision.effect, 'Deny');
    assert.equal(decision.audit[0]?.changesDecision, false);
  });
});

describe('tools/list', () => {
  test('visibleTools keeps tools some Allow could match and drops unconditional Denies', () => {
    const { set } = compile([
      agentPolicy('p', [
        allowAlice(['read_*', 'write_file', 'rm']),
        rule('Deny', [{ kind: 'Agent', name: 'alice' }], ['rm']),
        rule('Deny', [{ kind: 'Agent', name: 'alice' }], ['write_file'], {
          conditions: ['args.path == "/etc"'],
        }),
      ]),
    ]);
    const request = { server: server(), principal: alice, method: 'tools/list' };
    assert.deepEqual(visibleTools(set, request, ['read_a', 'write_file', 'rm', 'other']), [
      'read_a',
      'write_file',
    ]);
  });

  test('tools/list is allowed when some Allow applies to the caller, denied otherwise', () => {
    const { set } = compile([agentPolicy('p', [allowAlice(['t'])])]);
    assert.equal(
      decide(set, { server: server(), principal: alice, method: 'tools/list' }).effect,
      'Allow',
    );
    const other = decide(set, { server: server(), principal: agent('bob'), method: 'tools/list' });
    assert.equal(other.effect, 'Deny');
    assert.match(other.reason, /no policy allows agent "bob" any tool on server team\/files/);
  });
});
