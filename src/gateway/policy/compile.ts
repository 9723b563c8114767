import type { z } from 'zod';
import {
  AgentPolicySchema,
  ClusterAgentPolicySchema,
  EffectSchema,
  EgressDenySchema,
  PolicySubjectSchema,
  ServerSelectorSchema,
  ToolPatternSchema,
} from '../../api/v1alpha1/agentpolicy.ts';
import { LabelSelectorSchema } from '../../api/v1alpha1/common.ts';
import { compileCondition, type CompiledCondition } from './conditions.ts';
import { compileGlob, GlobError, isLiteralGlob, type GlobMatcher } from './glob.ts';
import { normaliseHostName } from '../../executor/egress/allowlist.ts';
import { compileLabelSelector, type LabelPredicate } from './selectors.ts';
import type { DecidingRule, Effect, PolicyCompileError, ServerRef } from './types.ts';

/**
 * Turns one AgentPolicy / ClusterAgentPolicy object (parsed or raw from the API server) into
 * compiled rules, collecting every error with its field path.
 *
 * Fail closed: a policy with any error is invalid; none of its Allow rules apply, but each of its
 * Deny rules still does, and every part of a Deny rule (subjects, tools, conditions, effect) or of
 * the policy's server selection that cannot be compiled is widened to match everything. A broken
 * policy can only ever deny more, never allow more.
 */

export type PolicyKind = 'AgentPolicy' | 'ClusterAgentPolicy';

/** Index keys a rule is filed under; see `principalKeys` in engine.ts. */
export type SubjectKey = string;
export const ANY_PRINCIPAL_KEY = '*all';

export interface CompiledRule {
  policy: string;
  ref: DecidingRule;
  effect: Effect;
  reason: string;
  auditOnly: boolean;
  subjectKeys: SubjectKey[];
  allTools: boolean;
  exactTools: string[];
  /** Glob patterns (not `*`, not literal), with their source so the index can share one test per pattern. */
  patterns: { source: string; matches: GlobMatcher }[];
  conditions: CompiledCondition[];
  /** Deny rules only: why the conditions were dropped (they could not be compiled), making the rule unconditional. */
  brokenConditions?: string;
  /** Set when the rule belongs to an invalid policy (only Deny rules survive). */
  invalidPolicy?: string;
  /** Canonical order: by policy id, then rule index; assigned when the set is built. */
  rank: number;
}

/** One `spec.egressDeny` entry of a ClusterAgentPolicy. */
export interface CompiledEgressDeny {
  /** `ClusterAgentPolicy/<name>`. */
  policy: string;
  /** `ClusterAgentPolicy <name>`, as EgressDenial.policy and the attempt records name it. */
  display: string;
  index: number;
  /** Normalised (lower case, no trailing dot): `name` or `*.suffix`. */
  hosts: string[];
  tools: ToolMatch;
  reason: string;
  auditOnly: boolean;
}

/** Which tool names a rule or guardrail covers. */
export interface ToolMatch {
  allTools: boolean;
  exactTools: string[];
  /** Glob patterns (not `*`, not literal), with their source so the index can share one test per pattern. */
  patterns: { source: string; matches: GlobMatcher }[];
}

export interface CompiledPolicy {
  id: string;
  kind: PolicyKind;
  namespace?: string;
  name: string;
  auditOnly: boolean;
  valid: boolean;
  selects: (server: ServerRef) => boolean;
  rules: CompiledRule[];
  /** ClusterAgentPolicy only; the readable entries, also of an invalid policy. */
  egressDeny: CompiledEgressDeny[];
  /** Why some egressDeny entry could not be read (tools with egress are refused; see above). */
  egressUnreadable?: string;
}

const MAX_RULES = 256;
/** The schema's bound, which the executor's request schema also holds a denial to. */
const MAX_DENY_HOSTS = 64;

export function compilePolicy(
  raw: unknown,
  kind: PolicyKind,
): { policy: CompiledPolicy; errors: PolicyCompileError[] } {
  const errors: { path: string; message: string }[] = [];
  const fail = (path: string, message: string) => errors.push({ path, message });
  const object = asRecord(raw);
  const metadata = asRecord(object?.['metadata']);
  const spec = asRecord(object?.['spec']);

  let name =
    typeof metadata?.['name'] === 'string' && metadata['name'] !== ''
      ? metadata['name']
      : undefined;
  if (name === undefined) {
    fail('metadata.name', 'required');
    name = '<unnamed>';
  }
  let namespace: string | undefined;
  if (kind === 'AgentPolicy') {
    namespace =
      typeof metadata?.['namespace'] === 'string' && metadata['namespace'] !== ''
        ? metadata['namespace']
        : undefined;
    if (namespace === undefined) fail('metadata.namespace', 'required for an AgentPolicy');
  }
  const id =
    kind === 'AgentPolicy'
      ? `AgentPolicy/${namespace ?? '<none>'}/${name}`
      : `ClusterAgentPolicy/${name}`;

  // Whole-object schema check first, so that every constraint of the API (including ones this
  // compiler does not re-derive) makes the policy invalid with the API's own field path.
  const schema = kind === 'AgentPolicy' ? AgentPolicySchema : ClusterAgentPolicySchema;
  // `status` is the controller's, not the author's: it never makes a policy invalid.
  const { status: _status, ...authored } = object ?? {};
  const parsed = schema.safeParse(object === undefined ? raw : authored);
  if (!parsed.success)
    for (const issue of parsed.error.issues) fail(formatPath(issue.path), issue.message);

  let auditOnly = false;
  if (spec?.['auditOnly'] !== undefined) {
    if (typeof spec['auditOnly'] === 'boolean') auditOnly = spec['auditOnly'];
    else fail('spec.auditOnly', 'must be a boolean');
  }

  const selects = compileSelection(kind, namespace, spec, fail);
  const rules: CompiledRule[] = [];
  const rawRules = spec?.['rules'];
  const rawEgressDeny = kind === 'ClusterAgentPolicy' ? spec?.['egressDeny'] : undefined;
  const egress = compileEgressDeny(rawEgressDeny, { id, name, auditOnly }, fail);
  if (rawRules === undefined && rawEgressDeny !== undefined) {
    // A guardrail-only ClusterAgentPolicy: the schema check above has said whether that is valid.
  } else if (!Array.isArray(rawRules)) {
    fail('spec.rules', 'must be a list of rules');
    // Nothing tells us what the policy meant to deny: deny everything it covers until fixed.
    rules.push(denyEverything(id, kind, namespace, name, auditOnly, 'spec.rules is not a list'));
  } else {
    if (rawRules.length === 0 && kind === 'AgentPolicy')
      fail('spec.rules', 'must have at least one rule');
    if (rawRules.length > MAX_RULES) fail('spec.rules', `must have at most ${MAX_RULES} rules`);
    rawRules.forEach((rawRule, index) => {
      rules.push(compileRule(rawRule, index, { id, kind, namespace, name, auditOnly }, fail));
    });
  }

  const unique = dedupe(errors);
  const valid = unique.length === 0;
  const firstError = unique[0];
  const invalidNote = `policy ${id} is invalid (${firstError?.path}: ${firstError?.message})`;
  const kept = valid
    ? rules
    : rules
        .filter((rule) => rule.effect === 'Deny')
        .map((rule) => ({
          ...rule,
          invalidPolicy: `${invalidNote}; its Deny rules apply, widened where broken, until it is fixed`,
        }));
  const egressDeny = valid
    ? egress.entries
    : egress.entries.map((entry) => ({
        ...entry,
        reason: `${entry.reason} [${invalidNote}; its egressDeny applies, widened where broken, until it is fixed]`,
      }));
  return {
    policy: {
      id,
      kind,
      ...(namespace === undefined ? {} : { namespace }),
      name,
      auditOnly,
      valid,
      selects: selects(valid),
      rules: kept,
      egressDeny,
      ...(egress.unreadable === undefined
        ? {}
        : {
            egressUnreadable: `${invalidNote}: ${egress.unreadable}; nothing says which hosts it forbids, so tools with egress are refused on the servers it selects until it is fixed`,
          }),
    },
    errors: unique.map((error) => ({ policy: id, ...error })),
  };
}

type Fail = (path: string, message: string) => void;

/** Returns, for a valid or invalid policy, which servers its rules apply to (broken parts widen). */
function compileSelection(
  kind: PolicyKind,
  namespace: string | undefined,
  spec: Record<string, unknown> | undefined,
  fail: Fail,
): (valid: boolean) => (server: ServerRef) => boolean {
  let serversBroken = false;
  let names: Set<string> | undefined;
  let labels: LabelPredicate | undefined;
  const servers = ServerSelectorSchema.safeParse(spec?.['servers']);
  if (!servers.success) serversBroken = true;
  else {
    if (servers.data.names !== undefined) names = new Set(servers.data.names);
    if (servers.data.selector !== undefined) {
      const compiled = compileLabelSelector(servers.data.selector);
      if (typeof compiled === 'function') labels = compiled;
      else {
        fail(`spec.servers.selector.${compiled.path}`, compiled.error);
        serversBroken = true;
      }
    }
  }
  let namespaces: LabelPredicate = () => true;
  let namespacesBroken = false;
  if (kind === 'ClusterAgentPolicy') {
    const selector = LabelSelectorSchema.safeParse(spec?.['namespaceSelector'] ?? {});
    if (!selector.success) namespacesBroken = true;
    else {
      const compiled = compileLabelSelector(selector.data);
      if (typeof compiled === 'function') namespaces = compiled;
      else {
        fail(`spec.namespaceSelector.${compiled.path}`, compiled.error);
        namespacesBroken = true;
      }
    }
  }
  const byServer = (server: ServerRef): boolean => {
    if (names === undefined && labels === undefined) return true; // `servers: {}` selects all, like an empty label selector
    return (names?.has(server.name) ?? false) || (labels?.(server.labels) ?? false);
  };
  return (valid) => {
    // An invalid policy keeps only Deny rules; its broken selection widens to everything in scope.
    const serverOk = !valid && serversBroken ? () => true : byServer;
    const namespaceOk: (server: ServerRef) => boolean =
      kind === 'AgentPolicy'
        ? namespace === undefined
          ? () => !valid // no namespace: invalid, Deny rules apply everywhere
          : (server) => server.namespace === namespace
        : !valid && namespacesBroken
          ? () => true
          : (server) => namespaces(server.namespaceLabels);
    return (server) => namespaceOk(server) && serverOk(server);
  };
}

interface PolicyFacts {
  id: string;
  kind: PolicyKind;
  namespace: string | undefined;
  name: string;
  auditOnly: boolean;
}

function compileRule(raw: unknown, index: number, facts: PolicyFacts, fail: Fail): CompiledRule {
  const at = `spec.rules[${index}]`;
  const rule = asRecord(raw);
  const effectParse = EffectSchema.safeParse(rule?.['effect']);
  // An unreadable effect is treated as Deny: the safe reading of a rule we cannot understand.
  const effect: Effect = effectParse.success ? effectParse.data : 'Deny';
  if (!effectParse.success) fail(`${at}.effect`, 'must be Allow or Deny');

  const reason =
    typeof rule?.['reason'] === 'string' && rule['reason'] !== ''
      ? rule['reason']
      : `rule ${index} of ${facts.id} (no valid reason given)`;

  const subjectKeys = new Set<SubjectKey>();
  const rawSubjects = rule?.['subjects'];
  if (!Array.isArray(rawSubjects) || rawSubjects.length === 0) {
    fail(`${at}.subjects`, 'must be a non-empty list');
    subjectKeys.add(ANY_PRINCIPAL_KEY);
  } else {
    rawSubjects.forEach((rawSubject, i) => {
      for (const key of subjectKeysOf(rawSubject, facts, `${at}.subjects[${i}]`, fail))
        subjectKeys.add(key);
    });
  }

  const { allTools, exactTools, patterns } = compileTools(rule?.['tools'], `${at}.tools`, fail);

  const conditions: CompiledCondition[] = [];
  const broken: string[] = [];
  const rawConditions = rule?.['conditions'];
  if (rawConditions !== undefined) {
    if (!Array.isArray(rawConditions)) {
      fail(`${at}.conditions`, 'must be a list of CEL expressions');
      broken.push('conditions is not a list');
    } else {
      rawConditions.forEach((source, i) => {
        const path = `${at}.conditions[${i}]`;
        if (typeof source !== 'string' || source === '') {
          fail(path, 'must be a non-empty CEL expression');
          broken.push(`condition ${i} is not a string`);
          return;
        }
        const compiled = compileCondition(source);
        if ('error' in compiled) {
          fail(path, compiled.error);
          broken.push(`condition ${i} ${compiled.error}`);
        } else conditions.push(compiled);
      });
    }
  }

  const ref: DecidingRule =
    facts.kind === 'AgentPolicy'
      ? { kind: 'AgentPolicy', namespace: facts.namespace ?? '<none>', name: facts.name, index }
      : { kind: 'ClusterAgentPolicy', name: facts.name, index };
  return {
    policy: facts.id,
    ref,
    effect,
    reason,
    auditOnly: facts.auditOnly,
    subjectKeys: [...subjectKeys].sort(),
    allTools,
    exactTools,
    patterns,
    conditions: broken.length > 0 ? [] : conditions,
    ...(broken.length > 0 ? { brokenConditions: broken.join('; ') } : {}),
    rank: 0,
  };
}

/** A rule's `tools`: a non-empty list of globs; whatever cannot be compiled widens to every tool. */
function compileTools(rawTools: unknown, at: string, fail: Fail): ToolMatch {
  let allTools = false;
  const exactTools = new Set<string>();
  const patterns: { source: string; matches: GlobMatcher }[] = [];
  if (!Array.isArray(rawTools) || rawTools.length === 0) {
    fail(at, 'must be a non-empty list');
    allTools = true;
  } else {
    rawTools.forEach((rawTool, i) => {
      const path = `${at}[${i}]`;
      const pattern = ToolPatternSchema.safeParse(rawTool);
      if (!pattern.success) {
        fail(path, pattern.error.issues[0]?.message ?? 'invalid tool pattern');
        allTools = true;
        return;
      }
      if (pattern.data === '*') allTools = true;
      else if (isLiteralGlob(pattern.data)) exactTools.add(pattern.data);
      else {
        try {
          if (!patterns.some((p) => p.source === pattern.data)) {
            patterns.push({ source: pattern.data, matches: compileGlob(pattern.data) });
          }
        } catch (error) {
          fail(path, error instanceof GlobError ? error.message : String(error));
          allTools = true;
        }
      }
    });
  }
  return { allTools, exactTools: [...exactTools].sort(), patterns };
}

/** Whether a lower-cased tool name is covered. */
export function toolMatches(match: ToolMatch, tool: string): boolean {
  return (
    match.allTools ||
    match.exactTools.includes(tool) ||
    match.patterns.some((pattern) => pattern.matches(tool))
  );
}

/**
 * `spec.egressDeny`: every readable entry, and why the list (or an entry's hosts) could not be
 * read, if so. A missing `tools` is every tool; a broken one widens to every tool; a missing
 * reason gets a default.
 */
function compileEgressDeny(
  raw: unknown,
  facts: { id: string; name: string; auditOnly: boolean },
  fail: Fail,
): { entries: CompiledEgressDeny[]; unreadable?: string } {
  if (raw === undefined) return { entries: [] };
  if (!Array.isArray(raw)) {
    fail('spec.egressDeny', 'must be a list of guardrails');
    return { entries: [], unreadable: 'spec.egressDeny is not a list' };
  }
  const entries: CompiledEgressDeny[] = [];
  const unreadable: string[] = [];
  raw.forEach((rawEntry, index) => {
    const at = `spec.egressDeny[${index}]`;
    const entry = asRecord(rawEntry);
    const rawHosts = entry?.['hosts'];
    const hosts: string[] = [];
    if (!Array.isArray(rawHosts) || rawHosts.length === 0 || rawHosts.length > MAX_DENY_HOSTS) {
      fail(`${at}.hosts`, `must be a list of 1 to ${MAX_DENY_HOSTS} host patterns`);
      unreadable.push(`${at}.hosts is not a list of 1 to ${MAX_DENY_HOSTS} host patterns`);
      return;
    }
    const hostSchema = EgressDenySchema.shape.hosts.element;
    for (const [i, rawHost] of rawHosts.entries()) {
      const host = hostSchema.safeParse(rawHost);
      const normalised = host.success ? normaliseHostPattern(host.data) : undefined;
      if (normalised === undefined) {
        fail(`${at}.hosts[${i}]`, host.error?.issues[0]?.message ?? 'not a host pattern');
        unreadable.push(`${at}.hosts[${i}] is not a host pattern`);
        return;
      }
      if (!hosts.includes(normalised)) hosts.push(normalised);
    }
    const tools: ToolMatch =
      entry?.['tools'] === undefined
        ? { allTools: true, exactTools: [], patterns: [] }
        : compileTools(entry['tools'], `${at}.tools`, fail);
    const reason =
      typeof entry?.['reason'] === 'string' && entry['reason'] !== ''
        ? entry['reason']
        : `egress guardrail ${index} of ${facts.id} (no valid reason given)`;
    entries.push({
      policy: facts.id,
      display: `ClusterAgentPolicy ${facts.name}`,
      index,
      hosts,
      tools,
      reason,
      auditOnly: facts.auditOnly,
    });
  });
  return unreadable.length === 0 ? { entries } : { entries, unreadable: unreadable.join('; ') };
}

/** `API.Example.com.` → `api.example.com`, `*.Corp.Example.` → `*.corp.example`; undefined when neither. */
export function normaliseHostPattern(pattern: string): string | undefined {
  if (pattern.startsWith('*.')) {
    const suffix = normaliseHostName(pattern.slice(2));
    return suffix === undefined || !suffix.includes('.') ? undefined : `*.${suffix}`;
  }
  return normaliseHostName(pattern);
}

/**
 * Index keys: `a:<agent>`, `a*` (every agent), `g:<group>`, `g*` (every non-anonymous caller),
 * `s:<ns>:<sa>`, `s:<ns>:*`, `s*:<sa>` / `s*` (ClusterAgentPolicy subjects without a namespace:
 * any namespace), `anon`, and ANY_PRINCIPAL_KEY for a broken Deny subject.
 */
function subjectKeysOf(raw: unknown, facts: PolicyFacts, path: string, fail: Fail): SubjectKey[] {
  const parsed = PolicySubjectSchema.safeParse(raw);
  if (!parsed.success) {
    for (const issue of parsed.error.issues)
      fail(issue.path.length > 0 ? `${path}.${formatPath(issue.path)}` : path, issue.message);
    const kind = asRecord(raw)?.['kind'];
    return [widenedKey(kind)];
  }
  const { kind, name, namespace } = parsed.data;
  if (kind === 'Anonymous') return ['anon'];
  if (name === undefined) {
    fail(`${path}.name`, `required for a ${kind} subject (use "*" for every ${kind})`);
    return [widenedKey(kind)];
  }
  switch (kind) {
    case 'Agent':
      return [name === '*' ? 'a*' : `a:${name}`];
    case 'Group':
      return [name === '*' ? 'g*' : `g:${name}`];
    case 'ServiceAccount': {
      const ns = namespace ?? facts.namespace;
      if (ns === undefined) return [name === '*' ? 's*' : `s*:${name}`];
      return [`s:${ns}:${name === '*' ? '*' : name}`];
    }
  }
}

function widenedKey(kind: unknown): SubjectKey {
  switch (kind) {
    case 'Agent':
      return 'a*';
    case 'Group':
      return 'g*';
    case 'ServiceAccount':
      return 's*';
    case 'Anonymous':
      return 'anon';
    default:
      return ANY_PRINCIPAL_KEY;
  }
}

function denyEverything(
  id: string,
  kind: PolicyKind,
  namespace: string | undefined,
  name: string,
  auditOnly: boolean,
  why: string,
): CompiledRule {
  return {
    policy: id,
    ref:
      kind === 'AgentPolicy'
        ? { kind, namespace: namespace ?? '<none>', name, index: 0 }
        : { kind, name, index: 0 },
    effect: 'Deny',
    reason: `policy ${id} is invalid (${why}) and denies everything it covers until it is fixed`,
    auditOnly,
    subjectKeys: [ANY_PRINCIPAL_KEY],
    allTools: true,
    exactTools: [],
    patterns: [],
    conditions: [],
    rank: 0,
  };
}

function asRecord(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

/** `['spec', 'rules', 2, 'tools', 0]` → `spec.rules[2].tools[0]`. */
export function formatPath(path: readonly PropertyKey[] | z.core.$ZodIssue['path']): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else out += out === '' ? String(segment) : `.${String(segment)}`;
  }
  return out;
}

function dedupe(errors: { path: string; message: string }[]): { path: string; message: string }[] {
  const seen = new Set<string>();
  return errors.filter((error) => {
    const key = `${error.path}\u0000${error.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
