import { isIP } from 'node:net';
import { z } from 'zod';
import { ErrorCode, McpworksError } from '../../shared/errors.ts';

/**
 * A tool's egress allowlist: the hosts (and ports) its code may reach through the egress proxy.
 *
 * - `host` is a DNS name, compared case-insensitively, or `*.suffix`: a wildcard that matches one
 *   or more labels in front of `suffix` (`*.example.com` matches `a.example.com` and
 *   `a.b.example.com`, never `example.com` itself). The suffix must have at least two labels
 *   (`*.com` is refused); a public suffix such as `*.co.uk` cannot be told apart and is allowed.
 * - Names are ASCII: an internationalised name must be written in its punycode form (`xn--...`).
 * - IP literals are refused: egress is granted by name, and the proxy refuses raw-IP CONNECTs.
 * - `ports` defaults to `[443]`.
 */
export interface EgressRule {
  host: string;
  ports: number[];
}

/** Every reason an egress attempt is refused, or `allowed`. A closed set: records and metrics use it. */
export const EgressReason = {
  Allowed: 'allowed',
  BadRequest: 'bad-request',
  MethodNotAllowed: 'method-not-allowed',
  InvalidHost: 'invalid-host',
  RawIp: 'raw-ip',
  NotDeclared: 'not-declared',
  /** A cluster guardrail forbids the host, even though the tool declares it. */
  PolicyDenied: 'policy-denied',
  PortNotDeclared: 'port-not-declared',
  ResolutionFailed: 'resolution-failed',
  PrivateAddress: 'private-address',
  ConnectFailed: 'connect-failed',
  TooManyTunnels: 'too-many-tunnels',
  NotTls: 'not-tls',
  SniMissing: 'sni-missing',
  SniMismatch: 'sni-mismatch',
  HelloTimeout: 'hello-timeout',
  DurationLimit: 'duration-limit',
  ClientClosed: 'client-closed',
  ProxyClosed: 'proxy-closed',
  /**
   * Not through the proxy at all: a direct TCP connection, a UDP or raw socket, a name look-up,
   * refused by the sandbox and reported by the tool's runtime (egress/jail.ts).
   */
  NotProxied: 'not-proxied',
} as const;
export type EgressReason = (typeof EgressReason)[keyof typeof EgressReason];

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const MAX_NAME = 253;
export const DEFAULT_EGRESS_PORTS: readonly number[] = [443];

function isIpLiteral(host: string): boolean {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  return isIP(bare) !== 0;
}

/** Lower-cases a DNS name and drops one trailing dot; undefined when it is not a valid ASCII name. */
export function normaliseHostName(host: string): string | undefined {
  let name = host.toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1);
  if (name.length === 0 || name.length > MAX_NAME) return undefined;
  const labels = name.split('.');
  if (!labels.every((label) => LABEL.test(label))) return undefined;
  // An all-numeric last label would make it look like (a shortened form of) an IPv4 address.
  if (/^[0-9]+$/.test(labels[labels.length - 1]!)) return undefined;
  return name;
}

/** Why a rule's host is unusable, or undefined when it is fine. */
export function hostProblem(host: string): string | undefined {
  if (isIpLiteral(host)) return 'an IP address; egress is granted by DNS name only';
  // eslint-disable-next-line no-control-regex
  if (/[^\x00-\x7f]/.test(host)) {
    return 'not ASCII; write an internationalised name in its punycode form (xn--...)';
  }
  if (host.startsWith('*.')) {
    const suffix = normaliseHostName(host.slice(2));
    if (suffix === undefined) return 'not a valid wildcard: "*." must be followed by a DNS name';
    if (!suffix.includes('.'))
      return 'a wildcard over a top-level domain; name at least two labels';
    return undefined;
  }
  if (host.includes('*'))
    return 'a wildcard is only allowed as the whole first label ("*.example.com")';
  if (normaliseHostName(host) === undefined) {
    return 'not a valid DNS name (letters, digits and hyphens in dot-separated labels)';
  }
  return undefined;
}

export const EgressRuleSchema = z
  .object({
    host: z
      .string()
      .min(1)
      .max(MAX_NAME + 2),
    ports: z.array(z.int().min(1).max(65_535)).min(1).max(64).optional(),
  })
  .strict()
  .superRefine((rule, ctx) => {
    const problem = hostProblem(rule.host);
    if (problem !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['host'],
        message: `host "${rule.host}" is ${problem}`,
      });
    }
  });
export type EgressRuleInput = z.input<typeof EgressRuleSchema>;

export const EgressRulesSchema = z.array(EgressRuleSchema).max(256);

/** Validates and normalises a rule list; throws InvalidInput naming each bad rule. */
export function parseEgressRules(input: unknown): EgressRule[] {
  const parsed = EgressRulesSchema.safeParse(input);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (issue) => `${issue.path.join('.') || '(rules)'}: ${issue.message}`,
    );
    throw new McpworksError(
      ErrorCode.InvalidInput,
      `invalid egress rules: ${problems.join('; ')}`,
      {
        details: { problems },
      },
    );
  }
  return parsed.data.map((rule) => ({
    host: rule.host.startsWith('*.')
      ? `*.${normaliseHostName(rule.host.slice(2))!}`
      : normaliseHostName(rule.host)!,
    ports: [...new Set(rule.ports ?? DEFAULT_EGRESS_PORTS)].sort((a, b) => a - b),
  }));
}

/** Whether a normalised rule host (`name` or `*.suffix`) covers a normalised name. */
export function hostMatches(ruleHost: string, name: string): boolean {
  if (ruleHost.startsWith('*.')) {
    const suffix = ruleHost.slice(1); // ".example.com"
    return name.length > suffix.length && name.endsWith(suffix);
  }
  return ruleHost === name;
}

/**
 * A guardrail that forbids hosts whatever the tool declares (ClusterAgentPolicy `egressDeny`,
 * src/executor/types.ts EgressDenial), its host patterns normalised like rule hosts.
 */
export interface EgressDenialRule {
  hosts: string[];
  policy: string;
  reason: string;
}

export type EgressDecision =
  | { allowed: true; reason: 'allowed'; host: string; rule: EgressRule }
  | {
      allowed: false;
      reason: 'invalid-host' | 'raw-ip' | 'not-declared' | 'port-not-declared';
      host: string;
    }
  | { allowed: false; reason: 'policy-denied'; host: string; policy: string; detail: string };

/**
 * Normalises guardrail host patterns (`name` or `*.suffix`). A pattern that is not a valid host
 * is kept as given (lower-cased): it can match nothing, and dropping it silently would hide a
 * guardrail the gateway meant to apply.
 */
export function normaliseDenials(
  denials: ReadonlyArray<{ hosts: readonly string[]; policy: string; reason: string }>,
): EgressDenialRule[] {
  return denials.map((denial) => ({
    policy: denial.policy,
    reason: denial.reason,
    hosts: denial.hosts.map((host) => {
      const wildcard = host.startsWith('*.');
      const name = normaliseHostName(wildcard ? host.slice(2) : host);
      if (name === undefined) return host.toLowerCase();
      return wildcard ? `*.${name}` : name;
    }),
  }));
}

/**
 * Decides whether `host:port` (as named in a CONNECT) is covered by the rules. A guardrail
 * denial wins over the tool's own rules: the host is refused `policy-denied`, naming the policy.
 */
export function decideEgress(
  rules: readonly EgressRule[],
  host: string,
  port: number,
  denials: readonly EgressDenialRule[] = [],
): EgressDecision {
  if (isIpLiteral(host)) return { allowed: false, reason: 'raw-ip', host };
  const name = normaliseHostName(host);
  if (name === undefined) return { allowed: false, reason: 'invalid-host', host };
  const denial = denials.find((entry) => entry.hosts.some((pattern) => hostMatches(pattern, name)));
  if (denial !== undefined) {
    return {
      allowed: false,
      reason: 'policy-denied',
      host: name,
      policy: denial.policy,
      detail: denial.reason,
    };
  }
  const matching = rules.filter((rule) => hostMatches(rule.host, name));
  if (matching.length === 0) return { allowed: false, reason: 'not-declared', host: name };
  const rule = matching.find((candidate) => candidate.ports.includes(port));
  if (rule === undefined) return { allowed: false, reason: 'port-not-declared', host: name };
  return { allowed: true, reason: 'allowed', host: name, rule };
}

/** Splits a CONNECT target (`host:port`, `[v6]:port`); undefined when it is not one. */
export function parseConnectAuthority(
  authority: string,
): { host: string; port: number } | undefined {
  const match = /^(\[[0-9a-fA-F:.%]+\]|[^[\]:/@\s]+):([0-9]{1,5})$/.exec(authority);
  if (match === null) return undefined;
  const port = Number(match[2]);
  if (port < 1 || port > 65_535) return undefined;
  return { host: match[1]!, port };
}
