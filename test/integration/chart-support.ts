// Helpers for the chart, kustomize and RBAC tests: run helm and kubectl from the cached
// control-plane components, render manifests, and hand them to a real API server.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { ControlPlane } from '../harness/controlplane.ts';
import { controlPlaneBinDir, isExecutable, repoRoot } from '../harness/paths.ts';

export const chartDir = join(repoRoot, 'charts', 'mcpworks');
/** The Kubernetes version the chart is rendered for (the test control plane's). */
export const KUBE_VERSION = '1.35.4';

export interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [key: string]: unknown;
}

/** The path of helm or kubectl; a missing binary is a failure that says how to get it. */
export function binary(name: 'helm' | 'kubectl'): string {
  const path = join(controlPlaneBinDir(), name);
  if (!isExecutable(path)) {
    throw new Error(`${name} not found at ${path}: run \`make components\` to build it`);
  }
  return path;
}

/** Runs a command with an optional stdin and a deadline; never throws on a non-zero exit. */
export function run(
  file: string,
  args: readonly string[],
  opts: { input?: string; timeoutMs?: number; cwd?: string } = {},
): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: opts.cwd ?? repoRoot,
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: opts.timeoutMs ?? 60_000,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr }),
    );
    child.stdin.end(opts.input ?? '');
  });
}

export async function mustRun(
  file: string,
  args: readonly string[],
  opts: { input?: string; timeoutMs?: number } = {},
): Promise<string> {
  const result = await run(file, args, opts);
  if (result.code !== 0) {
    throw new Error(`${file} ${args.join(' ')} exited ${result.code}:\n${result.stderr}`);
  }
  return result.stdout;
}

export function helmTemplateArgs(
  opts: { namespace: string; valuesFiles?: string[]; set?: string[]; includeCrds?: boolean } = {
    namespace: 'mcpworks-system',
  },
): string[] {
  return [
    'template',
    'mcpworks',
    chartDir,
    '--namespace',
    opts.namespace,
    '--kube-version',
    KUBE_VERSION,
    ...(opts.includeCrds ? ['--include-crds'] : []),
    ...(opts.valuesFiles ?? []).flatMap((f) => ['--values', f]),
    ...(opts.set ?? []).flatMap((s) => ['--set', s]),
  ];
}

export async function helmTemplate(opts: {
  namespace: string;
  valuesFiles?: string[];
  set?: string[];
}): Promise<string> {
  return mustRun(binary('helm'), helmTemplateArgs(opts));
}

export async function kustomize(dir: string): Promise<string> {
  return mustRun(binary('kubectl'), ['kustomize', join(repoRoot, dir)]);
}

/** Every non-empty document of a multi-document YAML stream. */
export function parseObjects(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((doc) => {
      if (doc.errors.length > 0) throw doc.errors[0];
      return doc.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null && typeof o === 'object');
}

export function toYamlStream(objects: readonly object[]): string {
  return objects.map((o) => JSON.stringify(o)).join('\n---\n');
}

/** `kubectl apply --server-side` (for real, or with `--dry-run=server`) as the admin. */
export function kubectlApply(
  cp: ControlPlane,
  manifests: string,
  opts: { dryRun?: boolean; kubeconfig?: string } = {},
): Promise<ToolResult> {
  return run(
    binary('kubectl'),
    [
      '--kubeconfig',
      opts.kubeconfig ?? cp.kubeconfigPath,
      'apply',
      '--server-side',
      '--field-manager=mcpworks-tests',
      ...(opts.dryRun ? ['--dry-run=server'] : []),
      '-f',
      '-',
    ],
    { input: manifests },
  );
}

export async function applyCrds(cp: ControlPlane, manifests: string): Promise<void> {
  const applied = await kubectlApply(cp, manifests);
  if (applied.code !== 0) throw new Error(`applying CRDs failed:\n${applied.stderr}`);
  const names = parseObjects(manifests).map((o) => `crd/${o.metadata.name}`);
  await mustRun(binary('kubectl'), [
    '--kubeconfig',
    cp.kubeconfigPath,
    'wait',
    '--for=condition=Established',
    '--timeout=30s',
    ...names,
  ]);
}

/** The YAML files of a directory, sorted by name, with their contents. */
export function yamlFiles(dir: string): { name: string; text: string }[] {
  return readdirSync(dir)
    .filter((n) => n.endsWith('.yaml') || n.endsWith('.yml'))
    .sort()
    .map((name) => ({ name, text: readFileSync(join(dir, name), 'utf8') }));
}

export type PolicyRule = {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
};

/**
 * A rule set as a sorted list of single permissions `group/resource[/name]:verb`, so two
 * role definitions compare equal whenever they grant exactly the same access.
 */
export function permissions(rules: readonly PolicyRule[]): string[] {
  const out = new Set<string>();
  for (const r of rules) {
    for (const g of r.apiGroups ?? ['']) {
      for (const res of r.resources ?? []) {
        for (const name of r.resourceNames?.length ? r.resourceNames : ['']) {
          for (const v of r.verbs) out.add(`${g}/${res}${name ? `/${name}` : ''}:${v}`);
        }
      }
    }
    for (const url of r.nonResourceURLs ?? []) for (const v of r.verbs) out.add(`url:${url}:${v}`);
  }
  return [...out].sort();
}
