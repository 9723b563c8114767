/**
 * A policy as the gateways will see it: compiled by the policy engine itself (compilePolicy), so
 * `Accepted` and the gateways can never disagree about what is valid or which servers a policy
 * selects. Each problem names its field so the message tells the author what to fix.
 */
import { compilePolicy, type CompiledPolicy, type PolicyKind } from '../gateway/policy/compile.ts';
import type { KubeObject } from '../k8s/types.ts';
import { Reasons, type Problem } from './status.ts';

export interface ParsedPolicy {
  compiled: CompiledPolicy;
  /** Empty when the policy is valid. */
  problems: Problem[];
}

export function validatePolicy(raw: KubeObject): ParsedPolicy {
  const kind: PolicyKind = raw.kind === 'ClusterAgentPolicy' ? 'ClusterAgentPolicy' : 'AgentPolicy';
  const { policy, errors } = compilePolicy(raw, kind);
  const problems = errors.map((e) => ({
    reason: reasonFor(e.path),
    message: `${e.path}: ${e.message}`,
  }));
  return { compiled: policy, problems };
}

function reasonFor(path: string): string {
  if (path.includes('conditions')) return Reasons.InvalidCondition;
  if (path.includes('elector')) return Reasons.InvalidSelector;
  return Reasons.InvalidSpec;
}

/** `AgentPolicy team-a/allow-read` / `ClusterAgentPolicy guardrails`: the names in McpServer status. */
export function policyDisplayName(policy: CompiledPolicy): string {
  return policy.kind === 'AgentPolicy'
    ? `AgentPolicy ${policy.namespace}/${policy.name}`
    : `ClusterAgentPolicy ${policy.name}`;
}
