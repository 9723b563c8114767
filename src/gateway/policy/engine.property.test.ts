// Property-based tests of the engine's semantics over generated condition-free policy sets.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { AgentPolicy, ClusterAgentPolicy } from '../../api/v1alpha1/agentpolicy.ts';
import { compilePolicySet, decide, visibleTools } from './engine.ts';
import {
  agentPolicyArb,
  clusterPolicyArb,
  conditionalPolicySetArb,
  denyFor,
  policySetArb,
  requestArb,
  type GeneratedSet,
} from './testing/arbitraries.ts';
import type { PolicyRequest } from './types.ts';

const RUNS = 300;
const requestsArb = fc.array(requestArb, { minLength: 1, maxLength: 20 });

function effects(set: GeneratedSet, requests: PolicyRequest[]) {
  const { set: compiled, errors } = compilePolicySet(set);
  assert.deepEqual(errors, [], 'generated policies are valid');
  return requests.map((request) => decide(compiled, request));
}

test('default deny: with no Allow rule, every request is denied', () => {
  const denyOnly = fc.record({
    agentPolicies: fc.uniqueArray(agentPolicyArb(fc.constantFrom('p0', 'p1', 'p2', 'p3'), 'Deny'), {
      maxLength: 4,
      selector: (p) => `${p.metadata.namespace}/${p.metadata.name}`,
    }),
    clusterPolicies: fc.uniqueArray(clusterPolicyArb(fc.constantFrom('c0', 'c1'), 'Deny'), {
      maxLength: 2,
      selector: (p) => p.metadata.name,
    }),
  });
  fc.assert(
    fc.property(denyOnly, requestsArb, (set, requests) => {
      for (const decision of effects(set, requests)) assert.equal(decision.effect, 'Deny');
    }),
    { numRuns: RUNS },
  );
});

const withExtra = (set: GeneratedSet, extra: AgentPolicy | ClusterAgentPolicy): GeneratedSet =>
  extra.kind === 'AgentPolicy'
    ? { ...set, agentPolicies: [...set.agentPolicies, extra] }
    : { ...set, clusterPolicies: [...set.clusterPolicies, extra] };

const VARIANTS = [
  ['condition-free', policySetArb, false],
  ['with conditions', conditionalPolicySetArb, true],
] as const;

for (const [label, setArb, withConditions] of VARIANTS) {
  test(`${label}: default deny: a denial without a deciding rule says no policy allows it`, () => {
    fc.assert(
      fc.property(setArb, requestsArb, (set, requests) => {
        for (const decision of effects(set, requests)) {
          if (decision.rule === undefined) {
            assert.equal(decision.effect, 'Deny');
            assert.match(decision.reason, /^no policy allows /);
          }
        }
      }),
      { numRuns: RUNS },
    );
  });

  test(`${label}: deny precedence: a matching Deny beats every Allow`, () => {
    fc.assert(
      fc.property(setArb, requestArb, (set, request) => {
        const withDeny = { ...set, clusterPolicies: [...set.clusterPolicies, denyFor(request)] };
        const [decision] = effects(withDeny, [request]);
        assert.equal(decision?.effect, 'Deny');
        assert.notEqual(decision?.rule, undefined, 'decided by a Deny rule, not by default');
      }),
      { numRuns: RUNS },
    );
  });

  test(`${label}: order independence: shuffling policies and conditions changes nothing in the decision`, () => {
    fc.assert(
      fc.property(setArb, requestsArb, fc.infiniteStream(fc.nat()), (set, requests, randomness) => {
        const shuffle = <T>(list: T[]): T[] => {
          const out = [...list];
          const it = randomness[Symbol.iterator]();
          for (let i = out.length - 1; i > 0; i--) {
            const j = (it.next().value as number) % (i + 1);
            [out[i], out[j]] = [out[j] as T, out[i] as T];
          }
          return out;
        };
        // Policies in any order, and each rule's conditions in any order too.
        const reorder = <P extends AgentPolicy | ClusterAgentPolicy>(p: P): P => ({
          ...p,
          spec: {
            ...p.spec,
            rules: (p.spec.rules ?? []).map((r) =>
              r.conditions === undefined ? r : { ...r, conditions: shuffle(r.conditions) },
            ),
          },
        });
        const shuffled = {
          agentPolicies: shuffle(set.agentPolicies).map(reorder),
          clusterPolicies: shuffle(set.clusterPolicies).map(reorder),
        };
        assert.deepEqual(effects(shuffled, requests), effects(set, requests));
      }),
      { numRuns: RUNS },
    );
  });

  const extraAgentPolicy = (effect: 'Allow' | 'Deny') =>
    agentPolicyArb(fc.constant('extra'), effect, withConditions);
  const extraClusterPolicy = (effect: 'Allow' | 'Deny') =>
    clusterPolicyArb(fc.constant('extra'), effect, withConditions);

  test(`${label}: monotonicity: adding a Deny never turns a Deny into an Allow`, () => {
    const extra = fc.oneof(extraAgentPolicy('Deny'), extraClusterPolicy('Deny'));
    fc.assert(
      fc.property(setArb, extra, requestsArb, (set, deny, requests) => {
        const before = effects(set, requests);
        const after = effects(withExtra(set, deny), requests);
        before.forEach((decision, i) => {
          if (decision.effect === 'Deny') assert.equal(after[i]?.effect, 'Deny');
        });
      }),
      { numRuns: RUNS },
    );
  });

  test(`${label}: monotonicity: adding an Allow never turns an Allow into a Deny`, () => {
    const extra = fc.oneof(extraAgentPolicy('Allow'), extraClusterPolicy('Allow'));
    fc.assert(
      fc.property(setArb, extra, requestsArb, (set, allow, requests) => {
        const before = effects(set, requests);
        const after = effects(withExtra(set, allow), requests);
        before.forEach((decision, i) => {
          if (decision.effect === 'Allow') assert.equal(after[i]?.effect, 'Allow');
        });
      }),
      { numRuns: RUNS },
    );
  });

  test(`${label}: monotonicity: removing a Deny never turns an Allow into a Deny`, () => {
    fc.assert(
      fc.property(setArb, fc.nat(), requestsArb, (set, pick, requests) => {
        const all = [...set.agentPolicies, ...set.clusterPolicies];
        const denies = all.flatMap((policy) =>
          (policy.spec.rules ?? []).flatMap((rule, index) =>
            rule.effect === 'Deny' ? [{ policy, index }] : [],
          ),
        );
        fc.pre(denies.length > 0);
        const { policy, index } = denies[pick % denies.length] as (typeof denies)[number];
        // A policy needs a rule: removing its only rule removes the policy.
        const remove = <P extends AgentPolicy | ClusterAgentPolicy>(list: P[]): P[] =>
          list.flatMap((p) => {
            if (p !== policy) return [p];
            if ((p.spec.rules ?? []).length === 1) return [];
            return [
              {
                ...p,
                spec: { ...p.spec, rules: (p.spec.rules ?? []).filter((_, i) => i !== index) },
              },
            ];
          });
        const smaller = {
          agentPolicies: remove(set.agentPolicies),
          clusterPolicies: remove(set.clusterPolicies),
        };
        const before = effects(set, requests);
        const after = effects(smaller, requests);
        before.forEach((decision, i) => {
          if (decision.effect === 'Allow') assert.equal(after[i]?.effect, 'Allow');
        });
      }),
      { numRuns: RUNS },
    );
  });

  test(`${label}: audit-only policies never change the effect`, () => {
    fc.assert(
      fc.property(setArb, requestsArb, (set, requests) => {
        const enforcedOnly = {
          agentPolicies: set.agentPolicies.filter((p) => !p.spec.auditOnly),
          clusterPolicies: set.clusterPolicies.filter((p) => !p.spec.auditOnly),
        };
        const withAudit = effects(set, requests).map((d) => d.effect);
        assert.deepEqual(
          withAudit,
          effects(enforcedOnly, requests).map((d) => d.effect),
        );
      }),
      { numRuns: RUNS },
    );
  });
}

test('tools/list: without conditions, the visible tools are exactly the tools a call would be allowed', () => {
  fc.assert(
    fc.property(policySetArb, requestArb, (set, request) => {
      const { set: compiled } = compilePolicySet(set);
      const tools = [
        'read_file',
        'read_dir',
        'write_file',
        'rm',
        'shell',
        'admin_reset',
        'list',
        'other',
      ];
      const visible = visibleTools(compiled, { ...request, method: 'tools/list' }, tools);
      const callable = tools.filter(
        (tool) => decide(compiled, { ...request, tool }).effect === 'Allow',
      );
      assert.deepEqual(visible, callable);
    }),
    { numRuns: RUNS },
  );
});
