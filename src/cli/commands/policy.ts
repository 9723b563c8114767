/**
 * `mcpworks policy eval -f <file|dir>... --request '<json>'` prints the decision for one request
 * (exit 0 Allow, 1 Deny, 2 bad input); `mcpworks policy test -f <file|dir>... <cases.yaml>` runs
 * test cases, one line each (exit 0 all pass, 1 a mismatch, 2 bad input: an invalid policy, case
 * or file, named with its file and field). The engine is the one the gateway runs.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join, resolve } from 'node:path';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { z } from 'zod';
import { describe, formatPath, validateObject } from '../../api/manifests.ts';
import type { AgentPolicy, ClusterAgentPolicy, McpServer } from '../../api/v1alpha1/index.ts';
import { egressVerdict } from '../../gateway/policy/egress.ts';
import {
  compilePolicySet,
  decide,
  egressGuardrails,
  visibleTools,
  type CompiledPolicySet,
} from '../../gateway/policy/engine.ts';
import { CliPolicyRequestSchema, toPolicyRequest } from '../../gateway/policy/request.ts';
import { policyId, type Decision } from '../../gateway/policy/types.ts';
import { parseCommandArgs } from '../args.ts';
import type { CommandIo } from '../io.ts';

const USAGE = `usage:
  mcpworks policy eval -f <file|dir>... --request '<json>'
  mcpworks policy test -f <file|dir>... <cases.yaml>

  -f, --file      policy manifests (AgentPolicy, ClusterAgentPolicy; McpServers give server labels); repeatable
  -r, --request   eval: the request as JSON:
                  {"server": "ns/name", "subject": {"kind": "Agent|Group|ServiceAccount|Anonymous",
                   "name": "...", "namespace": "...", "groups": ["..."]}, "method": "tools/call",
                   "tool": "name", "arguments": {}, "serverLabels": {}, "namespaceLabels": {},
                   "egress": {"host": "api.example.com", "port": 443}}
                  with "egress", the answer includes the egress guardrails' verdict on that host
  cases.yaml      test: cases: [{name, request: <as above>, expect: Allow|Deny,
                  expectEgress: Denied|NotDenied}] (at least one of expect, expectEgress)

exit codes: eval 0 Allow, 1 Deny (also when a guardrail denies the "egress" host), 2 bad input;
            test 0 all pass, 1 a case failed, 2 bad input
`;

const EXIT = { ok: 0, denyOrMismatch: 1, badInput: 2 } as const;

export async function run(argv: string[], io: CommandIo): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h') {
    (sub === undefined ? io.stderr : io.stdout)(USAGE);
    return sub === undefined ? EXIT.badInput : EXIT.ok;
  }
  const parsed = parseCommandArgs('policy', USAGE, io, {
    args: rest,
    allowPositionals: true,
    options: {
      file: { type: 'string', short: 'f', multiple: true },
      request: { type: 'string', short: 'r' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (parsed === undefined) return EXIT.badInput;
  if (parsed.values.help === true) {
    io.stdout(USAGE);
    return EXIT.ok;
  }
  const files = (parsed.values.file ?? []).map((f) => resolve(io.cwd, f));
  if (files.length === 0) return usageError(io, 'at least one -f <file|dir> is required');
  switch (sub) {
    case 'eval':
      if (parsed.values.request === undefined) return usageError(io, 'eval needs --request <json>');
      if (parsed.positionals.length > 0)
        return usageError(io, `unexpected argument "${parsed.positionals[0]}"`);
      return evaluate(files, parsed.values.request, io);
    case 'test':
      if (parsed.positionals.length !== 1)
        return usageError(io, 'test needs exactly one cases file');
      if (parsed.values.request !== undefined) return usageError(io, '--request is for eval');
      return runCases(files, resolve(io.cwd, parsed.positionals[0] as string), io);
    default:
      return usageError(io, `unknown subcommand "${sub}"`);
  }
}

function usageError(io: CommandIo, text: string): number {
  io.stderr(`mcpworks policy: ${text}\n\n${USAGE}`);
  return EXIT.badInput;
}

interface Loaded {
  set: CompiledPolicySet;
  servers: McpServer[];
  /** Labels of the Namespace manifests found beside the policies, for namespaceSelectors. */
  namespaceLabels: Map<string, Record<string, string>>;
}

const POLICY_KINDS = new Set(['AgentPolicy', 'ClusterAgentPolicy', 'McpServer']);

/**
 * Loads and compiles the policies; prints every problem (file, object, field) and returns
 * undefined on any. Documents are validated by the API's own validateObject; kinds the policy
 * engine does not use (Deployments, Secrets, ... in a GitOps directory) are skipped, and
 * Namespaces only lend their labels.
 */
async function loadPolicies(paths: string[], io: CommandIo): Promise<Loaded | undefined> {
  const problems: string[] = [];
  const agentPolicies: AgentPolicy[] = [];
  const clusterPolicies: ClusterAgentPolicy[] = [];
  const servers: McpServer[] = [];
  const namespaceLabels = new Map<string, Record<string, string>>();
  const fileOf = new Map<string, string[]>();
  for (const file of await expand(paths, problems)) {
    let documents: unknown[];
    try {
      documents = parseAllDocuments(await readFile(file, 'utf8')).map((doc) => {
        if (doc.errors.length > 0) throw new Error(doc.errors[0]?.message ?? 'invalid YAML');
        return doc.toJS() as unknown;
      });
    } catch (error) {
      problems.push(`${file}: ${message(error)}`);
      continue;
    }
    for (const raw of documents.flatMap((d) => (isList(d) ? d.items : [d]))) {
      if (raw === null || raw === undefined) continue;
      const object = raw as {
        apiVersion?: unknown;
        kind?: unknown;
        metadata?: { name?: unknown; labels?: unknown };
      };
      if (object.apiVersion === 'v1' && object.kind === 'Namespace') {
        if (typeof object.metadata?.name === 'string') {
          namespaceLabels.set(
            object.metadata.name,
            (object.metadata.labels ?? {}) as Record<string, string>,
          );
        }
        continue;
      }
      if (
        !POLICY_KINDS.has(String(object.kind)) &&
        !String(object.apiVersion).startsWith('mcpworks.io/')
      )
        continue;
      const result = validateObject(withDefaultNamespace(raw));
      if (!result.ok) {
        for (const error of result.errors) problems.push(`${file}: ${describe(raw)}: ${error}`);
        continue;
      }
      const policy = result.object;
      if (policy.kind === 'AgentPolicy') {
        agentPolicies.push(policy);
        note(fileOf, `AgentPolicy/${policy.metadata.namespace}/${policy.metadata.name}`, file);
      } else if (policy.kind === 'ClusterAgentPolicy') {
        clusterPolicies.push(policy);
        note(fileOf, `ClusterAgentPolicy/${policy.metadata.name}`, file);
      } else if (policy.kind === 'McpServer') servers.push(policy);
    }
  }
  const { set, errors } = compilePolicySet({ agentPolicies, clusterPolicies });
  for (const error of errors) {
    const where = (fileOf.get(error.policy) ?? ['<unknown file>']).join(', ');
    problems.push(`${where}: ${error.policy}: ${error.path}: ${error.message}`);
  }
  if (problems.length > 0) {
    io.stderr(`mcpworks policy: invalid policies:\n${problems.map((p) => `  ${p}`).join('\n')}\n`);
    return undefined;
  }
  if (agentPolicies.length + clusterPolicies.length === 0) {
    io.stderr(`mcpworks policy: no AgentPolicy or ClusterAgentPolicy in ${paths.join(', ')}\n`);
    return undefined;
  }
  return { set, servers, namespaceLabels };
}

function isList(value: unknown): value is { items: unknown[] } {
  const object = value as { kind?: unknown; items?: unknown } | null;
  return (
    typeof object === 'object' &&
    object !== null &&
    object.kind === 'List' &&
    Array.isArray(object.items)
  );
}

/** As the API server does: a namespaced object without a namespace is in "default". */
function withDefaultNamespace(raw: unknown): unknown {
  const object = raw as { kind?: unknown; metadata?: Record<string, unknown> };
  if (
    typeof object !== 'object' ||
    object === null ||
    typeof object.metadata !== 'object' ||
    object.metadata === null
  ) {
    return raw;
  }
  if (object.kind === 'ClusterAgentPolicy') {
    const { namespace: _dropped, ...metadata } = object.metadata;
    return { ...object, metadata };
  }
  return { ...object, metadata: { namespace: 'default', ...object.metadata } };
}

function note(map: Map<string, string[]>, id: string, file: string): void {
  const files = map.get(id);
  if (files === undefined) map.set(id, [file]);
  else files.push(file);
}

/** Files of the given paths, as `kubectl apply -f`: directories one level deep, YAML and JSON only. */
async function expand(paths: string[], problems: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const path of paths) {
    try {
      if (!(await stat(path)).isDirectory()) {
        out.push(path);
        continue;
      }
      const entries = await readdir(path, { withFileTypes: true });
      for (const name of entries.map((e) => (e.isFile() ? e.name : '')).sort()) {
        if (
          ['.yaml', '.yml', '.json'].includes(extname(name)) &&
          !/^kustomization\.ya?ml$/i.test(name)
        ) {
          out.push(join(path, name));
        }
      }
    } catch (error) {
      problems.push(`${path}: ${message(error)}`);
    }
  }
  return out;
}

async function evaluate(paths: string[], requestText: string, io: CommandIo): Promise<number> {
  let json: unknown;
  try {
    json = JSON.parse(requestText);
  } catch (error) {
    io.stderr(`mcpworks policy: --request is not valid JSON: ${message(error)}\n`);
    return EXIT.badInput;
  }
  const loaded = await loadPolicies(paths, io);
  if (loaded === undefined) return EXIT.badInput;
  const request = buildRequest(json, loaded);
  if (!request.ok) {
    io.stderr(`mcpworks policy: invalid --request: ${request.problems.join('; ')}\n`);
    return EXIT.badInput;
  }
  const decision = decide(loaded.set, request.request);
  const output: Record<string, unknown> = { ...present(decision) };
  if (request.request.method === 'tools/list' && request.tools !== undefined) {
    output['tools'] =
      decision.effect === 'Allow' ? visibleTools(loaded.set, request.request, request.tools) : [];
  }
  const egress = request.egress === undefined ? undefined : egressAnswer(loaded, request);
  if (egress !== undefined) output['egress'] = egress;
  io.stdout(`${JSON.stringify(output, null, 2)}\n`);
  return decision.effect === 'Allow' && egress?.denied !== true ? EXIT.ok : EXIT.denyOrMismatch;
}

/**
 * The egress guardrails' verdict on the request's `egress` host for its tool, as the gateway
 * and the executor's proxy apply them: denied by which guardrail and why, or not denied by any
 * (the tool's own egress rules still decide). An unreadable guardrail selecting the server
 * refuses the whole call of a tool that declares egress; audit-only guardrails are listed apart.
 */
function egressAnswer(loaded: Loaded, built: Built & { ok: true }) {
  const { host, port } = built.egress as { host: string; port: number };
  const guardrails = egressGuardrails(
    loaded.set,
    built.request.server,
    built.request.tool as string,
  );
  const verdict = egressVerdict(guardrails.denied, host);
  const audit = guardrails.audit.flatMap((denial) => {
    const would = egressVerdict([denial], host);
    return would.denied
      ? [{ policy: would.policy, reason: would.reason, pattern: would.pattern }]
      : [];
  });
  const answer: Record<string, unknown> & { denied: boolean } =
    guardrails.refuseEgress !== undefined
      ? {
          host,
          port,
          denied: true,
          reason: `a tool that declares egress is refused on this server: ${guardrails.refuseEgress}`,
        }
      : { host, port, ...verdict };
  if (audit.length > 0) answer['audit'] = audit;
  return answer;
}

function present(decision: Decision) {
  return {
    effect: decision.effect,
    reason: decision.reason,
    ...(decision.rule === undefined ? {} : { rule: decision.rule }),
    policies: decision.policies,
    ...(decision.audit.length === 0 ? {} : { audit: decision.audit }),
  };
}

type Built =
  | {
      ok: true;
      request: ReturnType<typeof toPolicyRequest> & { ok: true } extends { request: infer R }
        ? R
        : never;
      tools?: string[];
      egress?: { host: string; port: number };
    }
  | { ok: false; problems: string[] };

function buildRequest(json: unknown, loaded: Loaded, prefix = ''): Built {
  const parsed = CliPolicyRequestSchema.safeParse(json);
  if (!parsed.success) {
    return {
      ok: false,
      problems: parsed.error.issues.map(
        (issue) => `${prefix}${formatPath(issue.path)}: ${issue.message}`,
      ),
    };
  }
  const [namespace, name] = parsed.data.server.split('/');
  const manifest = loaded.servers.find(
    (s) => s.metadata.name === name && (s.metadata.namespace ?? 'default') === namespace,
  );
  const mapped = toPolicyRequest(
    parsed.data,
    manifest?.metadata.labels ?? {},
    loaded.namespaceLabels.get(namespace ?? '') ?? {},
  );
  if (!mapped.ok) return { ok: false, problems: [`${prefix}${mapped.path}: ${mapped.message}`] };
  const { egress } = parsed.data;
  if (egress !== undefined && (mapped.request.method !== 'tools/call' || !mapped.request.tool))
    return { ok: false, problems: [`${prefix}egress: needs method tools/call and a tool`] };
  const tools = manifest?.spec.tools?.map((tool) => tool.name);
  return {
    ok: true,
    request: mapped.request,
    ...(tools === undefined ? {} : { tools }),
    ...(egress === undefined ? {} : { egress }),
  };
}

const CasesFileSchema = z.strictObject({
  cases: z
    .array(
      z
        .strictObject({
          name: z.string().min(1),
          request: z.unknown(),
          expect: z.enum(['Allow', 'Deny']).optional(),
          /** The guardrails' verdict on `request.egress`. */
          expectEgress: z.enum(['Denied', 'NotDenied']).optional(),
        })
        .refine((c) => c.expect !== undefined || c.expectEgress !== undefined, {
          message: 'set expect, expectEgress, or both',
          path: ['expect'],
        }),
    )
    .min(1),
});

async function runCases(paths: string[], casesFile: string, io: CommandIo): Promise<number> {
  let document: unknown;
  try {
    document = parseYaml(await readFile(casesFile, 'utf8'));
  } catch (error) {
    io.stderr(`mcpworks policy: ${casesFile}: ${message(error)}\n`);
    return EXIT.badInput;
  }
  const cases = CasesFileSchema.safeParse(document);
  if (!cases.success) {
    const lines = cases.error.issues.map(
      (issue) => `  ${casesFile}: ${formatPath(issue.path)}: ${issue.message}`,
    );
    io.stderr(`mcpworks policy: invalid cases file:\n${lines.join('\n')}\n`);
    return EXIT.badInput;
  }
  const loaded = await loadPolicies(paths, io);
  if (loaded === undefined) return EXIT.badInput;

  let passed = 0;
  let failed = 0;
  let invalid = 0;
  cases.data.cases.forEach((testCase, index) => {
    const built = buildRequest(testCase.request, loaded, `cases[${index}].request.`);
    if (!built.ok) {
      invalid++;
      io.stdout(`ERROR ${testCase.name}: ${casesFile}: ${built.problems.join('; ')}\n`);
      return;
    }
    if (testCase.expectEgress !== undefined && built.egress === undefined) {
      invalid++;
      io.stdout(
        `ERROR ${testCase.name}: ${casesFile}: cases[${index}].request.egress: required by expectEgress\n`,
      );
      return;
    }
    const decision = decide(loaded.set, built.request);
    const problems: string[] = [];
    const seen: string[] = [];
    if (testCase.expect !== undefined) {
      if (decision.effect === testCase.expect) seen.push(`${decision.effect} (${decision.reason})`);
      else {
        const rule = decision.rule === undefined ? 'no rule (default deny)' : ruleName(decision);
        problems.push(
          `expected ${testCase.expect}, got ${decision.effect} by ${rule}: ${decision.reason}`,
        );
      }
    }
    if (testCase.expectEgress !== undefined) {
      const answer = egressAnswer(loaded, built);
      const got = answer.denied ? 'Denied' : 'NotDenied';
      const by = typeof answer['policy'] === 'string' ? ` by ${answer['policy']}` : '';
      const text = `egress to ${answer['host']}: ${got}${by} (${String(answer['reason'])})`;
      if (got === testCase.expectEgress) seen.push(text);
      else problems.push(`expected egress ${testCase.expectEgress}, got ${text}`);
    }
    if (problems.length === 0) {
      passed++;
      io.stdout(`PASS  ${testCase.name}: ${seen.join('; ')}\n`);
    } else {
      failed++;
      io.stdout(`FAIL  ${testCase.name}: ${problems.join('; ')}\n`);
    }
  });
  io.stdout(`\n${passed} passed, ${failed} failed${invalid > 0 ? `, ${invalid} invalid` : ''}\n`);
  if (invalid > 0) return EXIT.badInput;
  return failed > 0 ? EXIT.denyOrMismatch : EXIT.ok;
}

function ruleName(decision: Decision): string {
  const rule = decision.rule;
  if (rule === undefined) return '';
  return `${policyId(rule)} rule ${rule.index}`;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
