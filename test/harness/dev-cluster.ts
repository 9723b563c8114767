// A local cluster in the background for manual work and `mcpworks controller` runs:
//   node test/harness/dev-cluster.ts up [--no-node]   starts it (once), prints `export KUBECONFIG=...`
//   node test/harness/dev-cluster.ts down             stops it
// `up` starts this same file as a detached `serve` process that owns the cluster; its state (pid,
// kubeconfig, log) lives in <cache>/dev-cluster. Every `up` starts an empty cluster. As root, it
// has a real node (node.ts: kubelet, containerd, CoreDNS) that runs pods from imported images;
// `--no-node` (or not root) gives the API server and controller manager only.
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startControlPlane } from './controlplane.ts';
import { cleanUpStaleNode, isAlive, readState as readNodeState } from './node-host.ts';
import { startNodeCluster } from './node.ts';
import { cacheDir } from './paths.ts';
import { tail } from './processes.ts';

const stateDir = join(cacheDir(), 'dev-cluster');
const stateFile = join(stateDir, 'state.json');
const kubeconfig = join(stateDir, 'kubeconfig');
const logFile = join(stateDir, 'dev-cluster.log');

interface State {
  pid: number;
  server: string;
  kubeconfig: string;
  binDir: string;
  /** With a node: how to import an image into its containerd. */
  importCommand?: string;
}

function readState(): State | undefined {
  try {
    return JSON.parse(readFileSync(stateFile, 'utf8')) as State;
  } catch {
    return undefined;
  }
}

/** True when `pid` is alive and is this program's serve process (not a recycled pid). */
function isServing(pid: number): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes('dev-cluster.ts') && cmdline.includes('serve');
  } catch {
    return false;
  }
}

function printUsage(state: State): void {
  console.log(`export KUBECONFIG=${state.kubeconfig}`);
  console.log(`# API server ${state.server}; kubectl and helm are in ${state.binDir}`);
  if (state.importCommand) {
    console.log(`# a node runs pods; import an image with: ${state.importCommand} <image.tar>`);
  }
  console.log('# stop it with: make dev-cluster-down');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function up(): Promise<number> {
  const existing = readState();
  if (existing && isServing(existing.pid)) {
    printUsage(existing);
    return 0;
  }
  rmSync(stateDir, { recursive: true, force: true });
  mkdirSync(stateDir, { recursive: true });
  const log = openSync(logFile, 'a');
  const serveArgs = process.argv.includes('--no-node') ? ['serve', '--no-node'] : ['serve'];
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), ...serveArgs], {
    detached: true,
    stdio: ['ignore', log, log],
  });
  child.unref();
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    const state = readState();
    if (state && state.pid === child.pid) {
      printUsage(state);
      return 0;
    }
    if (child.exitCode !== null || !isServing(child.pid ?? -1)) break;
    await sleep(200);
  }
  console.error(`dev-cluster: the control plane did not start; log ${logFile}:\n${tail(logFile)}`);
  if (child.pid && isServing(child.pid)) process.kill(child.pid, 'SIGTERM');
  return 1;
}

async function serve(): Promise<number> {
  const withNode = !process.argv.includes('--no-node') && process.getuid?.() === 0;
  const node = withNode ? await startNodeCluster() : undefined;
  const cp = node?.controlPlane ?? (await startControlPlane({ controllerManager: true }));
  copyFileSync(cp.kubeconfigPath, kubeconfig);
  const state: State = {
    pid: process.pid,
    server: cp.server,
    kubeconfig,
    binDir: cp.binDir,
    ...(node && { importCommand: node.importCommand }),
  };
  writeFileSync(stateFile, JSON.stringify(state, null, 2) + '\n');
  console.log(`dev-cluster: serving ${cp.server} (pid ${process.pid})`);
  // Signal listeners do not keep the event loop alive; this interval does, until a signal.
  const keepAlive = setInterval(() => {}, 60_000);
  await new Promise<void>((resolve) => {
    for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.once(signal, resolve);
  });
  clearInterval(keepAlive);
  for (const problem of (await node?.stop()) ?? []) console.error(`dev-cluster: ${problem}`);
  await cp.stop();
  console.log('dev-cluster: stopped');
  return 0;
}

async function down(): Promise<number> {
  const state = readState();
  if (!state || !isServing(state.pid)) {
    // A node left behind by a serve process (or a test) that was killed.
    await cleanUpStaleNodeIfOwnerDead();
    rmSync(stateDir, { recursive: true, force: true });
    console.log('dev-cluster: not running');
    return 0;
  }
  process.kill(state.pid, 'SIGTERM');
  const deadline = Date.now() + 15_000;
  while (isServing(state.pid) && Date.now() < deadline) await sleep(100);
  if (isServing(state.pid)) process.kill(state.pid, 'SIGKILL');
  await cleanUpStaleNodeIfOwnerDead();
  rmSync(stateDir, { recursive: true, force: true });
  console.log('dev-cluster: stopped');
  return 0;
}

async function cleanUpStaleNodeIfOwnerDead(): Promise<void> {
  const node = await readNodeState();
  if (node && !isAlive(node.owner)) await cleanUpStaleNode((line) => console.log(line));
}

const commands: Record<string, () => Promise<number>> = { up, down, serve };
const command = commands[process.argv[2] ?? ''];
if (!command) {
  console.error('usage: node test/harness/dev-cluster.ts up [--no-node] | down');
  process.exitCode = 2;
} else {
  process.exitCode = await command();
}
