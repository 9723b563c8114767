// What the test node changes on the host, recorded before it starts and undone on teardown:
// sysctls, directories kubelet and the plugins hard-code, iptables chains, nftables tables, the
// bridge, the test's outside link (OUTSIDE_LINK), pod network namespaces, mounts, cgroups and every process it started. One node runs
// per machine (these are machine-wide); a state file under /run/mcpworks-node holds the record,
// so teardown also happens after the owning test process died: by the reaper (node-reaper.ts),
// by the next startNodeCluster, or by `dev-cluster down`.
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmdirSync, statSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GUARD_TABLE, type NodeNetwork } from './node-config.ts';

export const LOCK_DIR = '/run/mcpworks-node';
const STATE_FILE = join(LOCK_DIR, 'state.json');

/** Set by kubelet (vm.*, kernel.*), the bridge plugin (ip_forward) or kube-proxy. */
export const RECORDED_SYSCTLS = [
  'vm.overcommit_memory',
  'vm.panic_on_oom',
  'kernel.panic',
  'kernel.panic_on_oops',
  'kernel.keys.root_maxkeys',
  'kernel.keys.root_maxbytes',
  'net.ipv4.ip_forward',
  'net.ipv4.conf.all.route_localnet',
  'net.ipv6.conf.all.forwarding',
  'net.bridge.bridge-nf-call-iptables',
  'net.bridge.bridge-nf-call-ip6tables',
] as const;

/** Paths outside the node's state directory that kubelet, containerd or CNI create. */
export const HOST_PATHS = [
  '/var/lib/kubelet',
  '/var/log/containers',
  '/var/log/pods',
  '/usr/libexec/kubernetes',
  '/run/containerd',
  '/run/netns',
  '/var/lib/cni',
  '/opt/containerd',
] as const;

const IPTABLES = ['iptables', 'ip6tables'] as const;
const IPTABLES_TABLES = ['filter', 'nat', 'mangle', 'raw'] as const;

export interface ProcessRef {
  name: string;
  pid: number;
  /** /proc/<pid>/stat start time: tells a recycled pid from ours. */
  start: string;
}

export interface NodeState {
  owner: ProcessRef;
  dir: string;
  net: NodeNetwork;
  containerdSocket: string;
  processes: ProcessRef[];
  sysctls: Record<string, string>;
  /** HOST_PATHS that did not exist before the node started (removed on teardown). */
  createdPaths: string[];
  netnsBefore: string[];
  /** "iptables filter" → chains that existed before. */
  chainsBefore: Record<string, string[]>;
  nftTablesBefore: string[];
  /** cgroup hierarchies that had no kubepods cgroup before. */
  kubepodsCgroups: string[];
  /** The cgroup v2 the components run in (the guard limits its sockets); removed on teardown. */
  componentCgroup: string;
  /**
   * The outside link and the addresses it carries, recorded before it is made (a run that
   * crashes in between leaves nothing the next one does not remove); absent: none.
   */
  outside?: { link: string; addresses: string[] };
}

/** The cgroup v2 mount: /sys/fs/cgroup/unified on hybrid cgroup v1 machines. */
function cgroup2Root(): string {
  return existsSync('/sys/fs/cgroup/unified/cgroup.procs')
    ? '/sys/fs/cgroup/unified'
    : '/sys/fs/cgroup';
}

async function run(cmd: string, args: string[], input?: string): Promise<string> {
  return await new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${stderr || err.message}`));
      else resolve(stdout);
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

const sysctlPath = (key: string) => `/proc/sys/${key.replaceAll('.', '/')}`;

export function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start at ") ".
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

export const processRef = (name: string, pid: number): ProcessRef => ({
  name,
  pid,
  start: processStart(pid) ?? '',
});

export const isAlive = (p: ProcessRef): boolean => p.pid > 0 && processStart(p.pid) === p.start;

function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

async function chainsOf(tool: string, table: string): Promise<string[]> {
  try {
    const out = await run(tool, ['-w', '-t', table, '-S']);
    return out
      .split('\n')
      .filter((l) => l.startsWith('-N '))
      .map((l) => l.slice(3).trim());
  } catch {
    return [];
  }
}

async function nftTables(): Promise<string[]> {
  const out = await run('nft', ['list', 'tables']).catch(() => '');
  return out
    .split('\n')
    .map((l) => l.replace(/^table /, '').trim())
    .filter(Boolean);
}

const cgroupHierarchies = (): string[] => {
  try {
    return readdirSync('/sys/fs/cgroup').map((h) => join('/sys/fs/cgroup', h));
  } catch {
    return [];
  }
};

const listNetns = (): string[] => {
  try {
    return readdirSync('/run/netns');
  } catch {
    return [];
  }
};

/** Reads everything the node is about to change. */
export async function recordHost(
  owner: ProcessRef,
  dir: string,
  net: NodeNetwork,
  containerdSocket: string,
): Promise<NodeState> {
  const sysctls: Record<string, string> = {};
  for (const key of RECORDED_SYSCTLS) {
    try {
      sysctls[key] = readFileSync(sysctlPath(key), 'utf8').trim();
    } catch {
      // not on this kernel
    }
  }
  const chainsBefore: Record<string, string[]> = {};
  for (const tool of IPTABLES)
    for (const table of IPTABLES_TABLES)
      chainsBefore[`${tool} ${table}`] = await chainsOf(tool, table);
  return {
    owner,
    dir,
    net,
    containerdSocket,
    processes: [],
    sysctls,
    createdPaths: HOST_PATHS.filter((p) => !existsSync(p)),
    netnsBefore: listNetns(),
    chainsBefore,
    nftTablesBefore: await nftTables(),
    kubepodsCgroups: cgroupHierarchies().filter((h) => !existsSync(join(h, 'kubepods'))),
    componentCgroup: join(cgroup2Root(), 'mcpworks-node'),
  };
}

export async function writeState(state: NodeState): Promise<void> {
  await writeFile(`${STATE_FILE}.tmp`, JSON.stringify(state, null, 2) + '\n');
  await rename(`${STATE_FILE}.tmp`, STATE_FILE);
}

export async function readState(): Promise<NodeState | undefined> {
  try {
    return JSON.parse(await readFile(STATE_FILE, 'utf8')) as NodeState;
  } catch {
    return undefined;
  }
}

/**
 * Takes the machine's node lock for `owner`. A lock whose owner died is cleaned up first (its
 * node torn down from the state file); a live owner is waited for up to `timeoutMs`.
 */
export async function acquireNodeLock(owner: ProcessRef, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await mkdir(LOCK_DIR);
      await writeFile(join(LOCK_DIR, 'owner.json'), JSON.stringify(owner) + '\n');
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = await lockOwner();
    if (!holder || !isAlive(holder)) {
      if (!(await cleanUpStaleNode())) await new Promise((r) => setTimeout(r, 500));
      continue;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `test node: the machine's node is in use by pid ${holder.pid} (${LOCK_DIR}); ` +
          'one node runs per machine. Stop it (make dev-cluster-down) or wait for that test.',
      );
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function lockOwner(): Promise<ProcessRef | undefined> {
  try {
    return JSON.parse(await readFile(join(LOCK_DIR, 'owner.json'), 'utf8')) as ProcessRef;
  } catch {
    // A lock being created this instant has no owner yet: treat it as live for a moment.
    await new Promise((r) => setTimeout(r, 200));
    try {
      return JSON.parse(await readFile(join(LOCK_DIR, 'owner.json'), 'utf8')) as ProcessRef;
    } catch {
      return undefined;
    }
  }
}

/**
 * Tears down a node whose owner is gone. The lock stays in place until the host is restored (a
 * new owner must not record a half-restored host); `cleaning/` inside it, made atomically, says
 * which process does it, so of two finding the same stale lock only one cleans up. Returns true
 * when it cleaned (or the lock was gone), false when another live process is cleaning.
 */
export async function cleanUpStaleNode(log: (line: string) => void = () => {}): Promise<boolean> {
  const claim = join(LOCK_DIR, 'cleaning');
  const cleanerFile = join(claim, 'cleaner.json');
  try {
    await mkdir(claim);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return true; // the lock itself is gone
    if (code !== 'EEXIST') throw err;
    let cleaner: ProcessRef | undefined;
    try {
      cleaner = JSON.parse(await readFile(cleanerFile, 'utf8')) as ProcessRef;
    } catch {
      // Just claimed, not yet written: give its cleaner a moment.
      const made = statSync(claim, { throwIfNoEntry: false });
      if (made && Date.now() - made.mtimeMs < 2000) return false;
    }
    if (cleaner && isAlive(cleaner)) return false;
    await rm(claim, { recursive: true, force: true }); // its cleaner died: claim it anew
    return false;
  }
  await writeFile(cleanerFile, JSON.stringify(processRef('cleaner', process.pid)) + '\n');
  const state = await readState();
  if (state) {
    log(`test node: cleaning up after pid ${state.owner.pid} (${state.dir})`);
    for (const problem of await tearDownHost(state)) log(`test node: ${problem}`);
  }
  await releaseNodeLock();
  return true;
}

export async function releaseNodeLock(): Promise<void> {
  await rm(LOCK_DIR, { recursive: true, force: true });
}

/** Every pid in the kubepods cgroups (the pods' containers, pause processes included). */
function podPids(): number[] {
  const pids = new Set<number>();
  const walk = (dir: string): void => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.isDirectory()) walk(join(dir, e.name));
      else if (e.name === 'cgroup.procs') {
        let procs: string;
        try {
          procs = readFileSync(join(dir, e.name), 'utf8');
        } catch {
          continue; // the cgroup went away between listing and reading (its pod ended)
        }
        for (const l of procs.split('\n')) {
          if (l.trim()) pids.add(Number(l));
        }
      }
    }
  };
  for (const h of cgroupHierarchies()) walk(join(h, 'kubepods'));
  return [...pids];
}

/** containerd shims of this node: they name its socket on their command line. */
function shimPids(containerdSocket: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (cmdline.includes(containerdSocket) && cmdline.some((a) => a.includes('shim'))) {
        out.push(Number(entry));
      }
    } catch {
      // gone
    }
  }
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Mount points under any of `roots`, deepest first. */
function mountsUnder(roots: readonly string[]): string[] {
  const points = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((p): p is string => !!p)
    .map((p) => p.replace(/\\040/g, ' '))
    .filter((p) => roots.some((r) => p === r || p.startsWith(r + '/')));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

function removeCgroupTree(dir: string): void {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) if (e.isDirectory()) removeCgroupTree(join(dir, e.name));
  try {
    rmdirSync(dir);
  } catch {
    // still busy, or already gone
  }
}

/**
 * Undoes everything recorded in `state`: kills the node's processes by pid (components, pod
 * processes, shims), unmounts, removes the bridge, guard table, new iptables chains, new
 * directories and cgroups, restores the sysctls, removes the state directory. Idempotent;
 * returns what it could not undo.
 */
export async function tearDownHost(state: NodeState): Promise<string[]> {
  const problems: string[] = [];
  const attempt = async (what: string, fn: () => Promise<unknown> | unknown): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      problems.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  // kubelet first, so it restarts nothing; then the pods; then containerd, its shims, the rest.
  const kubelet = state.processes.filter((p) => p.name === 'kubelet' && isAlive(p));
  for (const p of kubelet) kill(p.pid, 'SIGKILL');
  for (let i = 0; i < 50; i++) {
    const pids = [...podPids(), ...shimPids(state.containerdSocket)];
    if (pids.length === 0) break;
    for (const pid of pids) kill(pid, 'SIGKILL');
    await sleep(100);
  }
  for (const p of state.processes) if (isAlive(p)) kill(p.pid, 'SIGKILL');
  for (let i = 0; i < 50 && state.processes.some(isAlive); i++) await sleep(100);
  for (const p of state.processes.filter(isAlive)) problems.push(`${p.name} (${p.pid}) still runs`);

  const newNetns = listNetns().filter((n) => !state.netnsBefore.includes(n));
  const roots = [state.dir, ...newNetns.map((n) => join('/run/netns', n)), ...state.createdPaths];
  // A point can be mounted more than once (shared /run/netns): unmount until none is left.
  for (let pass = 0; pass < 5; pass++) {
    const points = mountsUnder(roots);
    if (points.length === 0) break;
    for (const point of points) {
      await run('umount', ['-l', point]).catch((err: Error) => {
        if (pass === 4) problems.push(`umount ${point}: ${err.message}`);
      });
    }
  }
  for (const n of newNetns)
    await attempt(`netns ${n}`, () => rm(join('/run/netns', n), { force: true }));

  for (const h of state.kubepodsCgroups) removeCgroupTree(join(h, 'kubepods'));
  if (state.componentCgroup) removeCgroupTree(state.componentCgroup);

  await attempt('iptables', () => removeNewChains(state.chainsBefore));
  await attempt('nft guard', async () => {
    if ((await nftTables()).includes(`inet ${GUARD_TABLE}`)) {
      await run('nft', ['delete', 'table', 'inet', GUARD_TABLE]);
    }
  });
  await attempt('nft tables', () => removeNewEmptyTables(state.nftTablesBefore));
  if (state.outside) {
    const { link } = state.outside;
    // Deleting one end of the pair deletes both, and the addresses with them.
    await attempt(`outside link ${link}`, async () => {
      if (existsSync(`/sys/class/net/${link}`)) await run('ip', ['link', 'delete', link]);
    });
  }
  await attempt(`bridge ${state.net.bridge}`, async () => {
    if (existsSync(`/sys/class/net/${state.net.bridge}`)) {
      await run('ip', ['link', 'delete', state.net.bridge]);
    }
  });
  for (const [key, value] of Object.entries(state.sysctls)) {
    await attempt(`sysctl ${key}`, async () => {
      const path = sysctlPath(key);
      if (existsSync(path) && readFileSync(path, 'utf8').trim() !== value) {
        await writeFile(path, value + '\n');
      }
    });
  }
  // Never rm -rf through a mount that is still there; remove everything else.
  for (const p of [...state.createdPaths, state.dir]) {
    const left = mountsUnder([p]);
    if (left.length > 0) problems.push(`${p} not removed, still mounted: ${left.join(', ')}`);
    else await attempt(`rm ${p}`, () => rm(p, { recursive: true, force: true }));
  }
  return problems;
}

/** Deletes the iptables chains that did not exist before, and the rules that jump to them. */
async function removeNewChains(before: Record<string, string[]>): Promise<void> {
  for (const tool of IPTABLES) {
    for (const table of IPTABLES_TABLES) {
      const old = new Set(before[`${tool} ${table}`] ?? []);
      const rules = await run(tool, ['-w', '-t', table, '-S']).catch(() => '');
      const added = (await chainsOf(tool, table)).filter((c) => !old.has(c));
      if (added.length === 0) continue;
      const isNew = new Set(added);
      const restore = [`*${table}`];
      for (const line of rules.split('\n')) {
        const m = /^-A (\S+) .*-[jg] (\S+)/.exec(line);
        if (m && isNew.has(m[2] ?? '') && !isNew.has(m[1] ?? '')) {
          restore.push('-D' + line.slice(2));
        }
      }
      for (const c of added) restore.push(`-F ${c}`);
      for (const c of added) restore.push(`-X ${c}`);
      restore.push('COMMIT', '');
      await run(`${tool}-restore`, ['-w', '--noflush'], restore.join('\n'));
    }
  }
}

/** iptables-nft leaves its tables behind; drop those that are new and now hold no rule. */
async function removeNewEmptyTables(before: readonly string[]): Promise<void> {
  for (const t of await nftTables()) {
    if (before.includes(t)) continue;
    const [family, name] = t.split(' ');
    if (!family || !name) continue;
    const body = await run('nft', ['list', 'table', family, name]);
    const hasRules = body
      .split('\n')
      .map((l) => l.trim())
      .some((l) => l && !/^(table|chain|type|policy|\}|comment)/.test(l));
    if (!hasRules) await run('nft', ['delete', 'table', family, name]);
  }
}
