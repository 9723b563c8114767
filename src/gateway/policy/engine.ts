import type { EgressDenial } from '../../executor/types.ts';
import {
  ANY_PRINCIPAL_KEY,
  compilePolicy,
  toolMatches,
  type CompiledEgressDeny,
  type CompiledPolicy,
  type CompiledRule,
  type SubjectKey,
} from './compile.ts';
import { prepareArguments, type PreparedArguments } from './conditions.ts';
import type { GlobMatcher } from './glob.ts';
import type {
  AuditFinding,
  Decision,
  PolicyCompileError,
  PolicyRequest,
  Principal,
  ServerRef,
} from './types.ts';

/**
 * The policy engine: pure, synchronous, no I/O.
 *
 * Semantics: default deny; a matching Deny beats every Allow, across all policies of both kinds;
 * rules are considered in a canonical order (policy id, then rule index) so neither the decision
 * nor its reported rule depends on the order policies were created or listed. Audit-only policies
 * never change the decision; their would-be effects are returned in `audit`.
 *
 * Only `tools/call` and `tools/list` are governed by rules (see isPolicyGoverned); the gateway
 * decides the protocol plumbing (initialize, ping, notifications, resources/*, prompts/*, ...).
 */

export const POLICY_GOVERNED_METHODS = ['tools/call', 'tools/list'] as const;

export function isPolicyGoverned(method: string): boolean {
  return method === 'tools/call' || method === 'tools/list';
}

/** Tool names longer than this are refused before any pattern is matched. */
export const MAX_TOOL_NAME_LENGTH = 256;

export interface PolicySetInput {
  /** AgentPolicy objects, parsed or raw (raw ones are validated here). */
  agentPolicies: readonly unknown[];
  clusterPolicies: readonly unknown[];
}

interface Bucket {
  exact: Map<string, CompiledRule[]>;
  /** Rules with `*` among their tools. */
  allTools: CompiledRule[];
  /** One entry per distinct glob: the pattern is tested once, whatever the number of rules using it. */
  patterns: { source: string; matches: GlobMatcher; rules: CompiledRule[] }[];
  hasAllow: boolean;
  /** Per tool name: exact, `*` and matching-glob rules merged in canonical order (bounded; see MAX_RESOLVED_TOOLS). */
  resolved: Map<string, CompiledRule[]>;
}

/** Tool names are chosen by callers; past this many per bucket, lists are merged per request instead of cached. */
const MAX_RESOLVED_TOOLS = 1024;
const NO_RULES: CompiledRule[] = [];

interface RuleIndex {
  buckets: Map<SubjectKey, Bucket>;
  size: number;
}

interface ServerView {
  enforced: RuleIndex;
  audit: RuleIndex;
  policies: string[];
  /** Egress guardrails of the cluster policies selecting the server, in canonical order. */
  egress: {
    enforced: CompiledEgressDeny[];
    audit: CompiledEgressDeny[];
    /** Enforced invalid policies whose egressDeny cannot be read (CompiledPolicy.egressUnreadable). */
    unreadable: { policy: string; why: string }[];
  };
}

/** Compiled, immutable policies; per-server views are built on first use and cached. */
export interface CompiledPolicySet {
  readonly policies: readonly CompiledPolicy[];
  readonly views: WeakMap<ServerRef, ServerView>;
  readonly viewsByKey: Map<string, ServerView>;
}

const MAX_CACHED_VIEWS = 4096;

export function compilePolicySet(input: PolicySetInput): {
  set: CompiledPolicySet;
  errors: PolicyCompileError[];
} {
  const compiled: CompiledPolicy[] = [];
  const errors: PolicyCompileError[] = [];
  for (const raw of input.agentPolicies) {
    const result = compilePolicy(raw, 'AgentPolicy');
    compiled.push(result.policy);
    errors.push(...result.errors);
  }
  for (const raw of input.clusterPolicies) {
    const result = compilePolicy(raw, 'ClusterAgentPolicy');
    compiled.push(result.policy);
    errors.push(...result.errors);
  }

  // Two objects with one id (a duplicated manifest) cannot be ordered canonically: both become
  // invalid, which keeps their Deny rules and drops their Allow rules whatever the input order.
  const counts = new Map<string, number>();
  for (const policy of compiled) counts.set(policy.id, (counts.get(policy.id) ?? 0) + 1);
  const policies = compiled.map((policy) => {
    if ((counts.get(policy.id) ?? 0) < 2) return policy;
    const why = `policy ${policy.id} is defined more than once; its Deny rules apply and its Allow rules do not until one definition remains`;
    return {
      ...policy,
      valid: false,
      rules: policy.rules
        .filter((rule) => rule.effect === 'Deny')
        .map((rule) => ({ ...rule, invalidPolicy: why })),
    };
  });
  for (const [id, count] of counts) {
    if (count > 1)
      errors.push({ policy: id, path: 'metadata.name', message: `defined ${count} times` });
  }

  policies.sort(
    (a, b) => compareStrings(a.id, b.id) || compareStrings(ruleFingerprint(a), ruleFingerprint(b)),
  );
  let rank = 0;
  const ranked = policies.map((policy) => ({
    ...policy,
    rules: [...policy.rules]
      .sort((a, b) => a.ref.index - b.ref.index)
      .map((rule) => ({ ...rule, rank: rank++ })),
  }));
  errors.sort(
    (a, b) =>
      compareStrings(a.policy, b.policy) ||
      compareStrings(a.path, b.path) ||
      compareStrings(a.message, b.message),
  );
  return { set: { policies: ranked, views: new WeakMap(), viewsByKey: new Map() }, errors };
}

/** The ids of the policies that select this server (for McpServer status). */
export function policiesForServer(set: CompiledPolicySet, server: ServerRef): string[] {
  return [...viewFor(set, server).policies];
}

/**
 * Decides one request. The per-server view is cached by ServerRef identity and by value: treat a
 * ServerRef as immutable once passed in (build a new one when labels change).
 */
export function decide(set: CompiledPolicySet, request: PolicyRequest): Decision {
  const { server, principal, method } = request;
  if (!isPolicyGoverned(method)) {
    return denied(`method "${method}" is not decided by policy; the gateway handles it`);
  }
  const view = viewFor(set, server);
  const keys = principalKeys(principal);
  if (method === 'tools/list') return listDecision(view, keys, principal, server);

  const tool = request.tool;
  if (tool === undefined || tool === '') return denied('tools/call without a tool name');
  if (tool.length > MAX_TOOL_NAME_LENGTH)
    return denied(`tool name longer than ${MAX_TOOL_NAME_LENGTH} characters`);

  // Tool names and patterns are lower case by admission; a caller asking for `RunShell` is
  // matched as `runshell`, so a `*shell*` guardrail still applies to it.
  const matched = tool.toLowerCase();
  const candidates = collect(view.enforced, keys, matched);
  const auditCandidates = view.audit.size === 0 ? [] : collect(view.audit, keys, matched);
  const policies = policyIds(candidates, auditCandidates);
  const lazy = lazyArguments(request, tool);

  let decision: Decision | undefined;
  let allowFailure: string | undefined;
  for (const rule of candidates) {
    if (rule.effect !== 'Deny') continue;
    const match = ruleMatches(rule, lazy);
    if (match.matched) {
      decision = {
        effect: 'Deny',
        reason: denyReason(rule, match.failure),
        rule: rule.ref,
        policies,
        audit: [],
      };
      break;
    }
  }
  if (decision === undefined) {
    for (const rule of candidates) {
      if (rule.effect !== 'Allow') continue;
      const match = ruleMatches(rule, lazy);
      if (match.matched) {
        decision = { effect: 'Allow', reason: rule.reason, rule: rule.ref, policies, audit: [] };
        break;
      }
      if (match.failure !== undefined && allowFailure === undefined) {
        allowFailure = `; allow rule ${rule.policy} #${rule.ref.index} was not applied because its condition ${match.failure}, which never counts as a match for Allow (fail closed)`;
      }
    }
  }
  decision ??= {
    effect: 'Deny',
    reason: `no policy allows ${describe(principal)} to call tool "${tool}" on server ${server.namespace}/${server.name}${allowFailure ?? ''}`,
    policies,
    audit: [],
  };
  if (auditCandidates.length > 0) decision.audit = auditFindings(auditCandidates, lazy, decision);
  return decision;
}

/** What the cluster's egress guardrails say about one tool of one server (egressGuardrails). */
export interface EgressGuardrails {
  /** Enforced: the gateway sends these as ToolCallRequest.egressDenied. */
  denied: EgressDenial[];
  /** From auditOnly policies: shown by `mcpworks policy eval`, never enforced. */
  audit: EgressDenial[];
  /**
   * Set when an enforced invalid policy selecting the server has an egressDeny that cannot be
   * read: a call to a tool that declares egress is refused (fail closed); others are unaffected
   * (they have no network).
   */
  refuseEgress?: string;
}

/**
 * The egress guardrails (ClusterAgentPolicy `spec.egressDeny`) that apply to `tool` on `server`:
 * the entries of the cluster policies selecting the server (names/selector and
 * namespaceSelector, as for rules) whose `tools` cover the tool, in canonical order (policy id,
 * then entry index). Independent of the caller: a guardrail is about where code may go.
 */
export function egressGuardrails(
  set: CompiledPolicySet,
  server: ServerRef,
  tool: string,
): EgressGuardrails {
  const { egress } = viewFor(set, server);
  const matched = tool.toLowerCase();
  const denial = (entry: CompiledEgressDeny): EgressDenial => ({
    hosts: [...entry.hosts],
    policy: entry.display,
    reason:
      entry.reason.length > MAX_DENIAL_REASON
        ? `${entry.reason.slice(0, MAX_DENIAL_REASON - 3)}...`
        : entry.reason,
  });
  const covers = (entry: CompiledEgressDeny) =>
    // No declared tool is that long; an over-long name is covered by every guardrail (deny more).
    tool.length > MAX_TOOL_NAME_LENGTH || toolMatches(entry.tools, matched);
  const result: EgressGuardrails = {
    denied: egress.enforced.filter(covers).map(denial),
    audit: egress.audit.filter(covers).map(denial),
  };
  const refusals = egress.unreadable.map((u) => u.why);
  if (result.denied.length > MAX_EGRESS_DENIALS) {
    // More than one call can carry (the executor refuses the request): none is sent, and a tool
    // with egress is refused rather than run with some guardrails silently dropped.
    refusals.push(
      `${result.denied.length} egress guardrails cover tool "${tool}" on server ${server.namespace}/${server.name}, more than the ${MAX_EGRESS_DENIALS} a call can carry; merge egressDeny entries`,
    );
    result.denied = [];
  }
  if (refusals.length > 0) result.refuseEgress = refusals.join('; ');
  return result;
}

/** The executor's bounds on ToolCallRequest.egressDenied (src/executor/request-schema.ts). */
export const MAX_EGRESS_DENIALS = 64;
const MAX_DENIAL_REASON = 1024;

/**
 * The tools `tools/list` shows this caller: a tool is visible when some Allow rule could match it
 * (conditions ignored) and no unconditional Deny matches it. Order of `toolNames` is kept.
 */
export function visibleTools(
  set: CompiledPolicySet,
  request: PolicyRequest,
  toolNames: readonly string[],
): string[] {
  const view = viewFor(set, request.server);
  const keys = principalKeys(request.principal);
  return toolNames.filter((tool) => {
    if (tool.length > MAX_TOOL_NAME_LENGTH) return false;
    const candidates = collect(view.enforced, keys, tool.toLowerCase());
    let allowed = false;
    for (const rule of candidates) {
      if (rule.effect === 'Deny' && rule.conditions.length === 0) return false;
      if (rule.effect === 'Allow') allowed = true;
    }
    return allowed;
  });
}

function listDecision(
  view: ServerView,
  keys: SubjectKey[],
  principal: Principal,
  server: ServerRef,
): Decision {
  const policies = new Set<string>();
  for (const key of keys) {
    const bucket = view.enforced.buckets.get(key);
    if (bucket === undefined || !bucket.hasAllow) continue;
    for (const rules of bucket.exact.values())
      for (const rule of rules) if (rule.effect === 'Allow') policies.add(rule.policy);
    for (const rule of bucket.allTools) if (rule.effect === 'Allow') policies.add(rule.policy);
    for (const pattern of bucket.patterns)
      for (const rule of pattern.rules) if (rule.effect === 'Allow') policies.add(rule.policy);
  }
  if (policies.size === 0) {
    return denied(
      `no policy allows ${describe(principal)} any tool on server ${server.namespace}/${server.name}`,
    );
  }
  return {
    effect: 'Allow',
    reason: 'tools/list: the list is filtered to the tools this caller may call',
    policies: [...policies].sort(compareStrings),
    audit: [],
  };
}

function denied(reason: string): Decision {
  return { effect: 'Deny', reason, policies: [], audit: [] };
}

type Lazy = () => PreparedArguments;

function lazyArguments(request: PolicyRequest, tool: string): Lazy {
  let prepared: PreparedArguments | undefined;
  return () => {
    prepared ??= prepareArguments(request.arguments, tool, subjectForConditions(request.principal));
    return prepared;
  };
}

function subjectForConditions(principal: Principal): Record<string, unknown> {
  const subject: Record<string, unknown> = {
    kind: principal.kind,
    name: principal.name,
    groups: [...principal.groups],
    authMethod: principal.authMethod,
  };
  if (principal.namespace !== undefined) subject['namespace'] = principal.namespace;
  if (principal.serviceAccountName !== undefined)
    subject['serviceAccountName'] = principal.serviceAccountName;
  return subject;
}

/** All conditions must hold. A failed condition matches for Deny and not for Allow. */
function ruleMatches(rule: CompiledRule, lazy: Lazy): { matched: boolean; failure?: string } {
  if (rule.brokenConditions !== undefined) {
    return {
      matched: rule.effect === 'Deny',
      failure: `could not be compiled (${rule.brokenConditions})`,
    };
  }
  // A false condition decides the conjunction whatever the others do (as CEL's `&&` does), so
  // the outcome never depends on the order conditions are listed in.
  // Of several failing conditions the reason names the first by source text, for the same reason.
  let failed: { source: string; error: string } | undefined;
  for (const condition of rule.conditions) {
    const result = condition.evaluate(lazy());
    if (!result.ok) {
      if (failed === undefined || condition.source < failed.source)
        failed = { source: condition.source, error: result.error };
    } else if (!result.value) return { matched: false };
  }
  if (failed !== undefined) {
    return {
      matched: rule.effect === 'Deny',
      failure: `${JSON.stringify(failed.source)} failed: ${failed.error}`,
    };
  }
  return { matched: true };
}

function denyReason(rule: CompiledRule, failure: string | undefined): string {
  let reason = rule.reason;
  if (failure !== undefined)
    reason += ` (condition ${failure}; counted as a match for Deny, fail closed)`;
  if (rule.invalidPolicy !== undefined) reason += ` [${rule.invalidPolicy}]`;
  return reason;
}

function auditFindings(candidates: CompiledRule[], lazy: Lazy, decision: Decision): AuditFinding[] {
  const findings: AuditFinding[] = [];
  let start = 0;
  while (start < candidates.length) {
    const policy = (candidates[start] as CompiledRule).policy;
    let end = start;
    while (end < candidates.length && (candidates[end] as CompiledRule).policy === policy) end++;
    const group = candidates.slice(start, end);
    let winner: { rule: CompiledRule; failure: string | undefined } | undefined;
    for (const effect of ['Deny', 'Allow'] as const) {
      for (const rule of group) {
        if (rule.effect !== effect) continue;
        const match = ruleMatches(rule, lazy);
        if (match.matched) {
          winner = { rule, failure: match.failure };
          break;
        }
      }
      if (winner !== undefined) break;
    }
    if (winner !== undefined) {
      const { rule, failure } = winner;
      const changesDecision =
        rule.effect === 'Deny'
          ? decision.effect === 'Allow'
          : decision.effect === 'Deny' && decision.rule === undefined;
      findings.push({
        policy,
        effect: rule.effect,
        rule: rule.ref,
        reason: rule.effect === 'Deny' ? denyReason(rule, failure) : rule.reason,
        changesDecision,
      });
    }
    start = end;
  }
  return findings;
}

/**
 * Rules of the index that could apply to these subject keys and this tool, in canonical order,
 * without duplicates. The result may be shared with the index: never mutate it.
 */
function collect(index: RuleIndex, keys: SubjectKey[], tool: string): CompiledRule[] {
  if (index.size === 0) return NO_RULES;
  let first: CompiledRule[] | undefined;
  let more: CompiledRule[][] | undefined;
  for (const key of keys) {
    const bucket = index.buckets.get(key);
    if (bucket === undefined) continue;
    const rules = bucketRules(bucket, tool);
    if (rules.length === 0) continue;
    if (first === undefined) first = rules;
    else (more ??= [first]).push(rules);
  }
  if (more !== undefined) return mergeByRank(more);
  return first ?? NO_RULES;
}

function bucketRules(bucket: Bucket, tool: string): CompiledRule[] {
  const cached = bucket.resolved.get(tool);
  if (cached !== undefined) return cached;
  const lists: CompiledRule[][] = [];
  const exact = bucket.exact.get(tool);
  if (exact !== undefined) lists.push(exact);
  if (bucket.allTools.length > 0) lists.push(bucket.allTools);
  for (const pattern of bucket.patterns) if (pattern.matches(tool)) lists.push(pattern.rules);
  const rules =
    lists.length === 0
      ? NO_RULES
      : lists.length === 1
        ? (lists[0] as CompiledRule[])
        : mergeByRank(lists);
  if (bucket.resolved.size < MAX_RESOLVED_TOOLS) bucket.resolved.set(tool, rules);
  return rules;
}

/** Merges lists already in rank order into one, dropping a rule reached through two lists. */
function mergeByRank(lists: CompiledRule[][]): CompiledRule[] {
  const out: CompiledRule[] = [];
  const at = new Array<number>(lists.length).fill(0);
  let lastRank = -1;
  for (;;) {
    let best = -1;
    let bestRank = Infinity;
    for (let i = 0; i < lists.length; i++) {
      const rule = (lists[i] as CompiledRule[])[at[i] as number];
      if (rule !== undefined && rule.rank < bestRank) {
        best = i;
        bestRank = rule.rank;
      }
    }
    if (best === -1) return out;
    const rule = (lists[best] as CompiledRule[])[at[best] as number] as CompiledRule;
    at[best] = (at[best] as number) + 1;
    if (rule.rank !== lastRank) out.push(rule);
    lastRank = rule.rank;
  }
}

/** Policy ids of the candidates, sorted: ranks follow policy ids, so a run of equal ids is one policy. */
function policyIds(candidates: CompiledRule[], auditCandidates: CompiledRule[]): string[] {
  const list =
    auditCandidates.length === 0
      ? candidates
      : [...candidates, ...auditCandidates].sort((a, b) => a.rank - b.rank);
  const ids: string[] = [];
  for (const rule of list) if (ids.at(-1) !== rule.policy) ids.push(rule.policy);
  return ids;
}

/** Subject keys a principal is looked up under; see subjectKeysOf in compile.ts. */
export function principalKeys(principal: Principal): SubjectKey[] {
  const keys: SubjectKey[] = [ANY_PRINCIPAL_KEY];
  switch (principal.kind) {
    case 'Anonymous':
      keys.push('anon');
      return keys; // anonymous callers never match Agent, Group or ServiceAccount subjects
    case 'Agent':
      keys.push(`a:${principal.name}`, 'a*');
      break;
    case 'ServiceAccount': {
      const account = serviceAccountOf(principal);
      if (account !== undefined) {
        keys.push(
          `s:${account.namespace}:${account.name}`,
          `s:${account.namespace}:*`,
          `s*:${account.name}`,
          's*',
        );
      }
      break;
    }
    default:
      return keys; // a principal of unknown kind is matched only by widened Deny rules
  }
  keys.push('g*');
  for (const group of principal.groups) keys.push(`g:${group}`);
  return keys;
}

function serviceAccountOf(principal: Principal): { namespace: string; name: string } | undefined {
  if (principal.namespace !== undefined && principal.serviceAccountName !== undefined) {
    return { namespace: principal.namespace, name: principal.serviceAccountName };
  }
  const parts = principal.name.split(':');
  if (
    parts.length === 4 &&
    parts[0] === 'system' &&
    parts[1] === 'serviceaccount' &&
    parts[2] &&
    parts[3]
  ) {
    return { namespace: parts[2], name: parts[3] };
  }
  return undefined;
}

function describe(principal: Principal): string {
  switch (principal.kind) {
    case 'Anonymous':
      return 'anonymous callers';
    case 'ServiceAccount': {
      const account = serviceAccountOf(principal);
      return account === undefined
        ? `service account "${principal.name}"`
        : `service account ${account.namespace}/${account.name}`;
    }
    case 'Agent':
      return `agent "${principal.name}"`;
  }
}

function viewFor(set: CompiledPolicySet, server: ServerRef): ServerView {
  const cached = set.views.get(server);
  if (cached !== undefined) return cached;
  const key = serverKey(server);
  let view = set.viewsByKey.get(key);
  if (view === undefined) {
    view = buildView(set.policies, server);
    if (set.viewsByKey.size >= MAX_CACHED_VIEWS) set.viewsByKey.clear();
    set.viewsByKey.set(key, view);
  }
  set.views.set(server, view);
  return view;
}

function serverKey(server: ServerRef): string {
  const labels = (record: Record<string, string>) =>
    Object.keys(record)
      .sort()
      .map((k) => `${k}=${record[k]}`)
      .join(',');
  return `${server.namespace}/${server.name}\u0000${labels(server.labels)}\u0000${labels(server.namespaceLabels)}`;
}

function buildView(policies: readonly CompiledPolicy[], server: ServerRef): ServerView {
  const enforced: RuleIndex = { buckets: new Map(), size: 0 };
  const audit: RuleIndex = { buckets: new Map(), size: 0 };
  const egress: ServerView['egress'] = { enforced: [], audit: [], unreadable: [] };
  const ids: string[] = [];
  for (const policy of policies) {
    const guards = policy.egressDeny.length > 0 || policy.egressUnreadable !== undefined;
    if ((policy.rules.length === 0 && !guards) || !policy.selects(server)) continue;
    ids.push(policy.id);
    const index = policy.auditOnly ? audit : enforced;
    for (const rule of policy.rules) addRule(index, rule);
    (policy.auditOnly ? egress.audit : egress.enforced).push(...policy.egressDeny);
    if (policy.egressUnreadable !== undefined && !policy.auditOnly)
      egress.unreadable.push({ policy: policy.id, why: policy.egressUnreadable });
  }
  return { enforced, audit, policies: ids, egress };
}

/** Policies are ranked in order, so every list in a bucket is in canonical order by construction. */
function addRule(index: RuleIndex, rule: CompiledRule): void {
  index.size++;
  for (const key of rule.subjectKeys) {
    let bucket = index.buckets.get(key);
    if (bucket === undefined) {
      bucket = {
        exact: new Map(),
        allTools: [],
        patterns: [],
        hasAllow: false,
        resolved: new Map(),
      };
      index.buckets.set(key, bucket);
    }
    if (rule.effect === 'Allow') bucket.hasAllow = true;
    if (rule.allTools) {
      bucket.allTools.push(rule);
      continue;
    }
    for (const tool of rule.exactTools) {
      const list = bucket.exact.get(tool);
      if (list === undefined) bucket.exact.set(tool, [rule]);
      else list.push(rule);
    }
    for (const { source, matches } of rule.patterns) {
      const group = bucket.patterns.find((p) => p.source === source);
      if (group === undefined) bucket.patterns.push({ source, matches, rules: [rule] });
      else group.rules.push(rule);
    }
  }
}

function ruleFingerprint(policy: CompiledPolicy): string {
  const rules = policy.rules.map((rule) => `${rule.effect}:${rule.ref.index}:${rule.reason}`);
  const egress = policy.egressDeny.map((e) => `${e.index}:${e.hosts.join(',')}:${e.reason}`);
  return [...rules, ...egress, policy.egressUnreadable ?? ''].join('|');
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
