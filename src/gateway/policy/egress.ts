import { hostMatches, normaliseHostName } from '../../executor/egress/allowlist.ts';
import type { EgressDenial } from '../../executor/types.ts';

/**
 * What the egress guardrails of a call say about one host, the way the executor's proxy applies
 * them (ToolCallRequest.egressDenied): the first denial whose patterns cover the host refuses it,
 * on every port; otherwise the guardrails do not refuse it and the tool's own `egress` rules
 * decide. `mcpworks policy eval` prints this.
 */
export type EgressVerdict =
  | { denied: true; policy: string; reason: string; pattern: string }
  | { denied: false; reason: string };

export function egressVerdict(denials: readonly EgressDenial[], host: string): EgressVerdict {
  const name = normaliseHostName(host);
  if (name === undefined) {
    return {
      denied: false,
      reason: `"${host}" is not a DNS name: no guardrail applies, and the egress proxy refuses raw IP addresses and invalid names itself`,
    };
  }
  for (const denial of denials) {
    const pattern = denial.hosts.find((candidate) => hostMatches(candidate, name));
    if (pattern !== undefined)
      return { denied: true, policy: denial.policy, reason: denial.reason, pattern };
  }
  return {
    denied: false,
    reason: `no egress guardrail denies ${name}; the tool's own egress rules decide`,
  };
}
