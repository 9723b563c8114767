// Differential test: our engine against Cedar (forbid overrides permit, default deny) on
// generated condition-free policy sets. Any disagreement is a bug in one translation or engine.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { compilePolicySet, decide } from './engine.ts';
import { policySetArb, requestArb } from './testing/arbitraries.ts';
import { cedarRequest, toCedar } from './testing/cedar.ts';

const SETS = 120;
const REQUESTS_PER_SET = 100;

test(`our engine and cedar-wasm agree on ${SETS * REQUESTS_PER_SET} random requests`, () => {
  let compared = 0;
  let allowed = 0;
  fc.assert(
    fc.property(
      policySetArb,
      fc.array(requestArb, { minLength: REQUESTS_PER_SET, maxLength: REQUESTS_PER_SET }),
      fc.boolean(),
      (set, requests, scoped) => {
        const { set: compiled, errors } = compilePolicySet(set);
        assert.deepEqual(errors, []);
        const policies = { staticPolicies: toCedar(set, { scoped }) };
        const parsed = cedar.preparsePolicySet('differential', policies);
        if (parsed.type !== 'success')
          assert.fail(`cedar rejected the translation: ${JSON.stringify(parsed.errors)}`);
        for (const request of requests) {
          const ours = decide(compiled, request);
          const answer = cedar.statefulIsAuthorized({
            ...cedarRequest(request),
            preparsedPolicySetId: 'differential',
          });
          if (answer.type !== 'success')
            assert.fail(`cedar failed: ${JSON.stringify(answer.errors)}`);
          assert.deepEqual(answer.response.diagnostics.errors, [], 'cedar evaluation errors');
          const theirs = answer.response.decision === 'allow' ? 'Allow' : 'Deny';
          assert.equal(
            ours.effect,
            theirs,
            `request ${JSON.stringify(request)}\ncedar: ${JSON.stringify(policies)}\nours: ${ours.reason}`,
          );
          compared++;
          if (theirs === 'Allow') allowed++;
        }
      },
    ),
    { numRuns: SETS, endOnFailure: true },
  );
  assert.ok(compared >= 10_000, `compared ${compared}`);
  // A differential test that only ever sees Deny proves little.
  assert.ok(allowed > compared * 0.05, `only ${allowed} of ${compared} requests were allowed`);
});
