/**
 * The executor's own cgroups. Each sandbox gets one cgroup (per controller on v1) that the executor
 * creates with the exact limits of the tool; nsjail nests the jail inside it. After the sandbox
 * ends, its counters say whether the memory or pids limit was hit, then it is removed.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { mkdir, readdir, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, McpworksError } from '../shared/errors.ts';
import type { CgroupLimits, CgroupPlacement } from './nsjail-config.ts';
import { startupProblem } from './startup-problems.ts';

export interface CgroupRootsV1 {
  version: 'v1';
  memoryMount: string;
  pidsMount: string;
  cpuMount: string;
}
export interface CgroupRootsV2 {
  version: 'v2';
  mount: string;
  /** The executor's own cgroup under which sandboxes are created (delegated, controllers enabled). */
  base: string;
}
export type CgroupRoots = CgroupRootsV1 | CgroupRootsV2;

/** What a sandbox's cgroup recorded. */
export interface CgroupUsage {
  memoryLimitHit: boolean;
  pidsLimitHit: boolean;
  memoryPeakBytes: number | undefined;
  pidsPeak: number | undefined;
}

const V1_CONTROLLERS = ['memory', 'pids', 'cpu'] as const;
/** CFS period of a sandbox cgroup: 100 ms, so a quota bites within one short call. */
export const CPU_PERIOD_US = 100_000;
/** Millicores → quota per period (1000 millicores = one full CPU). */
export function cpuQuotaUs(millicores: number): number {
  return Math.max(1000, Math.round((millicores * CPU_PERIOD_US) / 1000));
}
/** Usage this close to the limit counts as having hit it (the kernel reclaims in page batches). */
const MEMORY_LIMIT_MARGIN = 256 * 1024;

/**
 * Finds the controllers: cgroup v1 hierarchies for memory, pids and cpu (as on this project's CI
 * machines), else a cgroup v2 mount with those controllers available. Throws SandboxUnavailable
 * when neither is there: limits that cannot be enforced are not offered.
 */
export function detectCgroups(root = '/sys/fs/cgroup', ownCgroupV2?: string): CgroupRoots {
  const v1 = V1_CONTROLLERS.every((c) => existsSync(join(root, c, 'cgroup.procs')));
  if (v1 && existsSync(join(root, 'memory', 'memory.limit_in_bytes'))) {
    return {
      version: 'v1',
      memoryMount: join(root, 'memory'),
      pidsMount: join(root, 'pids'),
      cpuMount: join(root, 'cpu'),
    };
  }
  const controllersFile = join(root, 'cgroup.controllers');
  if (existsSync(controllersFile)) {
    const controllers = readFileSync(controllersFile, 'utf8').trim().split(/\s+/);
    const missing = ['memory', 'pids', 'cpu'].filter((c) => !controllers.includes(c));
    if (missing.length === 0) {
      return { version: 'v2', mount: root, base: ownCgroupV2 ?? join(root, 'mcpworks-executor') };
    }
    throw new McpworksError(
      ErrorCode.SandboxUnavailable,
      `cgroup v2 at ${root} lacks the controllers ${missing.join(', ')}`,
    );
  }
  throw new McpworksError(
    ErrorCode.SandboxUnavailable,
    `no cgroup v1 memory/pids/cpu hierarchies and no cgroup v2 mount under ${root}`,
  );
}

export const EXECUTOR_CGROUP = 'mcpworks-executor';

/** mkdir that tolerates an existing directory; never recursive (see prepareCgroupRoots). */
async function mkdirOnce(path: string): Promise<void> {
  try {
    await mkdir(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
}

/** The plain-words reason a cgroup could not be created at `path`. */
export function cgroupCreateProblem(
  path: string,
  error: NodeJS.ErrnoException,
  version: 'v1' | 'v2',
  userNamespace: boolean,
): string {
  const code = error.code ?? 'error';
  if (code === 'EROFS') return startupProblem.cgroupReadOnly(path, 'EROFS');
  if (userNamespace && version === 'v1' && (code === 'EACCES' || code === 'EPERM')) {
    return startupProblem.cgroupV1InUserNamespace(path, code);
  }
  if (version === 'v2') return startupProblem.cgroupV2NotDelegated(path, code);
  return startupProblem.cgroupCreateFailed(path, code, error.message);
}

/**
 * Creates the executor's parent cgroups once at start-up. Each level is made with a plain
 * mkdir: Node's recursive mkdir reports a read-only cgroupfs (EROFS) as ENOENT, which would
 * hide the real reason.
 */
export async function prepareCgroupRoots(
  roots: CgroupRoots,
  context: { userNamespace: boolean } = { userNamespace: false },
): Promise<void> {
  let path = '';
  try {
    if (roots.version === 'v1') {
      for (const mount of [roots.memoryMount, roots.pidsMount, roots.cpuMount]) {
        path = join(mount, EXECUTOR_CGROUP);
        await mkdirOnce(path);
      }
      return;
    }
    path = roots.base;
    await mkdirOnce(path);
    // cgroup v2 forbids processes in a cgroup whose controllers are delegated to children: move
    // this process into a leaf of its own first, then enable the controllers down to the sandboxes.
    const supervisor = join(roots.base, 'supervisor');
    path = supervisor;
    await mkdirOnce(supervisor);
    await writeFile(join(supervisor, 'cgroup.procs'), String(process.pid));
    await writeFile(join(roots.mount, 'cgroup.subtree_control'), '+memory +pids +cpu').catch(
      () => undefined,
    );
    path = roots.base;
    await writeFile(join(roots.base, 'cgroup.subtree_control'), '+memory +pids +cpu');
  } catch (error) {
    throw new McpworksError(
      ErrorCode.SandboxUnavailable,
      cgroupCreateProblem(
        path,
        error as NodeJS.ErrnoException,
        roots.version,
        context.userNamespace,
      ),
      { cause: error },
    );
  }
}

async function readNumber(path: string): Promise<number | undefined> {
  try {
    const text = readFileSync(path, 'utf8').trim();
    const value = Number(text);
    return Number.isFinite(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

async function readKeyed(path: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  try {
    for (const line of readFileSync(path, 'utf8').split('\n')) {
      const [key, value] = line.trim().split(/\s+/);
      if (key !== undefined && value !== undefined) out[key] = Number(value);
    }
  } catch {
    // absent counters read as empty
  }
  return out;
}

/** Removes a cgroup and any child nsjail left behind (when nsjail itself was killed). */
async function removeDir(path: string): Promise<void> {
  for (let attempt = 0; attempt < 40; attempt += 1) {
    try {
      for (const entry of await readdir(path, { withFileTypes: true })) {
        if (entry.isDirectory()) await removeDir(join(path, entry.name));
      }
      await rmdir(path);
      return;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY' && code !== 'ENOTEMPTY') throw error;
      // processes still exiting after a kill
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }
  throw new Error(`cgroup ${path} is still busy`);
}

/** One sandbox's cgroup. */
export interface SandboxCgroup {
  placement: CgroupPlacement;
  usage(): Promise<CgroupUsage>;
  remove(): Promise<void>;
}

export async function createSandboxCgroup(
  roots: CgroupRoots,
  name: string,
  limits: CgroupLimits,
): Promise<SandboxCgroup> {
  if (!/^[a-z0-9-]+$/.test(name)) throw new Error(`invalid sandbox cgroup name ${name}`);
  if (roots.version === 'v1') {
    const relative = `${EXECUTOR_CGROUP}/${name}`;
    const memory = join(roots.memoryMount, relative);
    const pids = join(roots.pidsMount, relative);
    const cpu = join(roots.cpuMount, relative);
    // Synchronous on purpose: each is a ~0.1 ms cgroupfs call, far cheaper than thread-pool hops
    // on the cold-start path.
    mkdirSync(memory);
    mkdirSync(pids);
    mkdirSync(cpu);
    writeFileSync(join(memory, 'memory.limit_in_bytes'), String(limits.memoryBytes));
    // Without this a sandbox could page out to swap beyond its limit where swap exists.
    try {
      writeFileSync(join(memory, 'memory.memsw.limit_in_bytes'), String(limits.memoryBytes));
    } catch {
      // no swap accounting on this kernel: nothing to limit
    }
    writeFileSync(join(pids, 'pids.max'), String(limits.pids));
    // CPU quota on our own cgroup too, with a short period so the limit holds over short calls.
    writeFileSync(join(cpu, 'cpu.cfs_period_us'), String(CPU_PERIOD_US));
    writeFileSync(join(cpu, 'cpu.cfs_quota_us'), String(cpuQuotaUs(limits.cpuMsPerSec)));
    return {
      placement: {
        version: 'v1',
        memoryMount: roots.memoryMount,
        pidsMount: roots.pidsMount,
        cpuMount: roots.cpuMount,
        parent: relative,
      },
      async usage() {
        const [failcnt, peak, pidsPeak, pidsEvents] = await Promise.all([
          readNumber(join(memory, 'memory.failcnt')),
          readNumber(join(memory, 'memory.max_usage_in_bytes')),
          readNumber(join(pids, 'pids.peak')),
          readKeyed(join(pids, 'pids.events')),
        ]);
        return {
          // failcnt is not always charged to this level on v1; a peak at the limit is as telling.
          memoryLimitHit:
            (failcnt ?? 0) > 0 ||
            (peak !== undefined && peak >= limits.memoryBytes - MEMORY_LIMIT_MARGIN),
          pidsLimitHit:
            (pidsPeak !== undefined && pidsPeak >= limits.pids) || (pidsEvents['max'] ?? 0) > 0,
          memoryPeakBytes: peak,
          pidsPeak,
        };
      },
      async remove() {
        await Promise.all([removeDir(memory), removeDir(pids), removeDir(cpu)]);
      },
    };
  }
  const dir = join(roots.base, name);
  await mkdir(dir);
  await writeFile(join(dir, 'memory.max'), String(limits.memoryBytes));
  await writeFile(join(dir, 'memory.swap.max'), '0').catch(() => undefined);
  await writeFile(join(dir, 'pids.max'), String(limits.pids));
  await writeFile(join(dir, 'cpu.max'), `${cpuQuotaUs(limits.cpuMsPerSec)} ${CPU_PERIOD_US}`);
  await writeFile(join(dir, 'cgroup.subtree_control'), '+memory +pids +cpu');
  return {
    placement: { version: 'v2', sandboxCgroup: dir },
    async usage() {
      const [memoryEvents, pidsEvents, peak, pidsPeak] = await Promise.all([
        readKeyed(join(dir, 'memory.events')),
        readKeyed(join(dir, 'pids.events')),
        readNumber(join(dir, 'memory.peak')),
        readNumber(join(dir, 'pids.peak')),
      ]);
      return {
        memoryLimitHit: (memoryEvents['oom_kill'] ?? 0) > 0 || (memoryEvents['max'] ?? 0) > 0,
        pidsLimitHit: (pidsEvents['max'] ?? 0) > 0,
        memoryPeakBytes: peak,
        pidsPeak,
      };
    },
    async remove() {
      await removeDir(dir);
    },
  };
}

/** A sandbox cgroup this old with no process anywhere below it belongs to a crashed executor. */
export const STALE_CGROUP_MS = 15 * 60 * 1000;

function hasProcesses(dir: string): boolean {
  try {
    if (readFileSync(join(dir, 'cgroup.procs'), 'utf8').trim().length > 0) return true;
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory() && hasProcesses(join(dir, entry.name))) return true;
    }
    return false;
  } catch {
    return true; // unreadable: leave it alone
  }
}

/**
 * Removes sandbox cgroups left by executors that died (SIGKILL, OOM): older than STALE_CGROUP_MS
 * and without any process. Live sandboxes always hold processes; a fresh empty one is young.
 */
export async function removeStaleCgroups(roots: CgroupRoots, nowMs: number): Promise<number> {
  const parents =
    roots.version === 'v1'
      ? [roots.memoryMount, roots.pidsMount, roots.cpuMount].map((m) => join(m, EXECUTOR_CGROUP))
      : [roots.base];
  let removed = 0;
  for (const parent of parents) {
    let names: string[];
    try {
      names = readdirSync(parent, { withFileTypes: true })
        .filter((e) => e.isDirectory() && e.name !== 'supervisor')
        .map((e) => e.name);
    } catch {
      continue;
    }
    for (const name of names) {
      const dir = join(parent, name);
      try {
        if (nowMs - statSync(dir).mtimeMs < STALE_CGROUP_MS || hasProcesses(dir)) continue;
        await removeDir(dir);
        removed += 1;
      } catch {
        // still busy or already gone: try again next start
      }
    }
  }
  return removed;
}

/** Removes every sandbox cgroup whose name starts with `prefix` (this executor's leftovers). */
export async function removeCgroupsWithPrefix(roots: CgroupRoots, prefix: string): Promise<void> {
  const parents =
    roots.version === 'v1'
      ? [roots.memoryMount, roots.pidsMount, roots.cpuMount].map((m) => join(m, EXECUTOR_CGROUP))
      : [roots.base];
  for (const parent of parents) {
    let entries: string[];
    try {
      entries = (await readdir(parent, { withFileTypes: true }))
        .filter((e) => e.isDirectory())
        .map((e) => e.name);
    } catch {
      continue;
    }
    for (const name of entries) {
      if (name.startsWith(prefix)) await removeDir(join(parent, name)).catch(() => undefined);
    }
  }
}

/** Reads back the limits of a sandbox cgroup, to prove at start-up that they really apply. */
export async function readAppliedLimits(
  sandbox: SandboxCgroup,
): Promise<{ memoryBytes: number | undefined; pids: number | undefined }> {
  const p = sandbox.placement;
  if (p.version === 'v1') {
    return {
      memoryBytes: await readNumber(join(p.memoryMount, p.parent, 'memory.limit_in_bytes')),
      pids: await readNumber(join(p.pidsMount, p.parent, 'pids.max')),
    };
  }
  return {
    memoryBytes: await readNumber(join(p.sandboxCgroup, 'memory.max')),
    pids: await readNumber(join(p.sandboxCgroup, 'pids.max')),
  };
}
