// What the real-node e2e files share: steps that depend on the ones before (a failed step fails
// every later one, naming the first; none is skipped), the cluster's state printed when a step
// fails, and the agent pod's script (test/e2e/real-node-client.mjs) run through kubectl exec.
import { test } from 'node:test';
import type { NodeCluster } from '../harness/node.ts';

export type Kubectl = (
  args: string[],
  input?: string,
  timeoutMs?: number,
) => Promise<{ stdout: string; stderr: string }>;

/** kubectl against a cluster that is started later (in `before`): bound when called. */
export function kubectlOf(cluster: () => NodeCluster): Kubectl {
  return (args, input, timeoutMs = 120_000) =>
    cluster().kubectl(args, { ...(input === undefined ? {} : { input }), timeoutMs });
}

export interface DiagnosticsOptions {
  /** The kinds `kubectl get -A` lists. */
  kinds: string;
  /** Namespaces whose pods are described and whose logs are printed. */
  namespaces: string[];
  /** The namespace of the McpServers described. */
  serverNamespace: string;
  /** Also print each namespace's Events. */
  events?: boolean;
  /** Anything else the file wants printed (the outside's recordings, say). */
  extra?: () => string;
}

/** Prints what an operator would look at first; never throws (kubectl failures are printed). */
export async function printDiagnostics(
  kubectl: Kubectl,
  options: DiagnosticsOptions,
): Promise<void> {
  const show = async (args: string[]) => {
    const out = await kubectl(args, undefined, 30_000).then(
      (r) => r.stdout + r.stderr,
      (e: unknown) => String(e),
    );
    console.log(`# --- kubectl ${args.join(' ')}\n${out}`);
  };
  await show(['get', options.kinds, '-A', '-o', 'wide']);
  for (const ns of options.namespaces) {
    await show(['-n', ns, 'describe', 'pods']);
    if (options.events) await show(['-n', ns, 'get', 'events', '--sort-by=.lastTimestamp']);
    await show([
      '-n',
      ns,
      'logs',
      '--all-containers',
      '--prefix',
      '--tail=80',
      '-l',
      'app.kubernetes.io/name',
    ]);
  }
  await show(['-n', options.serverNamespace, 'describe', 'mcpservers']);
  if (options.extra) console.log(options.extra());
}

/**
 * A `step(name, fn, timeoutMs)` for one file: a test that refuses to run after an earlier step
 * failed, prints the diagnostics when it fails itself, and prints its own duration.
 */
export function dependentSteps(
  diagnostics: () => Promise<void>,
): (name: string, fn: () => Promise<void>, timeoutMs?: number) => void {
  let failedStep: string | undefined;
  return (name, fn, timeoutMs = 300_000) => {
    test(name, { timeout: timeoutMs }, async () => {
      if (failedStep) throw new Error(`not run: an earlier step failed (${failedStep})`);
      const started = Date.now();
      try {
        await fn();
      } catch (error) {
        failedStep = name;
        await diagnostics();
        throw error;
      } finally {
        console.log(`# ${name}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
      }
    });
  };
}

/** What the agent script answers for one tools/call. */
export interface CallResult {
  ok: boolean;
  isError?: boolean;
  text?: string;
  error?: string;
}

/** Runs the agent script in the `agent` pod of `namespace` with one request; its JSON answer. */
export async function runAgent<T = CallResult>(
  kubectl: Kubectl,
  namespace: string,
  request: Record<string, unknown>,
  timeoutMs = 90_000,
): Promise<T> {
  const { stdout } = await kubectl(
    [
      '-n',
      namespace,
      'exec',
      'agent',
      '--',
      'node',
      '/app/e2e/client.mjs',
      JSON.stringify(request),
    ],
    undefined,
    timeoutMs,
  );
  return JSON.parse(stdout) as T;
}

/** `kubectl get … -o json`, parsed. */
export async function getJson<T>(kubectl: Kubectl, args: string[]): Promise<T> {
  return JSON.parse((await kubectl([...args, '-o', 'json'])).stdout) as T;
}
