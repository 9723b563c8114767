/**
 * Pure translation of one sandbox's shape (runtime files, limits, cgroup placement) into the nsjail
 * command line. No I/O: every path and number it needs is passed in, so the whole security
 * configuration of a sandbox can be read and tested as data.
 */
import type { ToolLimits } from '../api/v1alpha1/mcpserver.ts';

export const MIB = 1024 * 1024;

/** The uid/gid the code runs as, inside the jail and outside it (never root on the host). */
export const SANDBOX_ID = 65534;

/** Where the size-limited writable workspace is mounted, and the code's working directory. */
export const WORKSPACE = '/tmp';

/**
 * nsjail itself puts the jail in a child cgroup of `parent` and applies its own limit there; the
 * executor owns `parent` and sets the exact limit on it. nsjail's child limit is set slightly
 * higher so the executor's cgroup is the one that trips, and its counters (failcnt, pids.peak,
 * memory.events) tell the outcome after nsjail has removed its child.
 */
export const CGROUP_CHILD_SLACK = { memoryBytes: 4 * MIB, pids: 1 } as const;

export type CgroupPlacement =
  | {
      version: 'v1';
      memoryMount: string;
      pidsMount: string;
      cpuMount: string;
      /** Per-sandbox cgroup, relative to each controller mount (same name under all three). */
      parent: string;
    }
  | {
      version: 'v2';
      /** Absolute path of the per-sandbox cgroup (nsjail creates its child inside). */
      sandboxCgroup: string;
    };

export interface JailLayout {
  /**
   * A prepared host directory mounted read-only as the jail's `/` (nsjail `--chroot`); without it
   * the root is an empty read-only tmpfs. Everything else here is mounted on top.
   */
  root?: string;
  /** Host files or directories bound read-only: `source` on the host at `target` inside. */
  readOnlyBinds: ReadonlyArray<{ source: string; target: string }>;
  /** Symlinks created inside: `link` → `target` (e.g. /lib → usr/lib on merged-usr systems). */
  symlinks: ReadonlyArray<{ link: string; target: string }>;
  /** Generated /etc files: inside path → host path of the generated file. */
  etcFiles: Readonly<Record<string, string>>;
  /** Device nodes bound inside (e.g. /dev/null, /dev/urandom). */
  devices: readonly string[];
}

export interface JailSpec {
  nsjailPath: string;
  /** Command run inside the jail, argv[0] an absolute path inside it. */
  command: readonly string[];
  layout: JailLayout;
  limits: ToolLimits;
  /** Hard wall-clock backstop enforced by nsjail; the runner kills earlier on the tool's timeout. */
  wallTimeLimitSeconds: number;
  /** CPU seconds backstop (RLIMIT_CPU). */
  cpuTimeLimitSeconds: number;
  seccompPolicyPath: string;
  cgroup: CgroupPlacement;
  /** Environment of the jailed process; nothing else is inherited. */
  env: Readonly<Record<string, string>>;
  /** Extra file descriptors the jailed process keeps (the result channel). */
  passFds: readonly number[];
  /** nsjail's own log goes here, apart from the jailed process's stderr. */
  logFd: number;
  hostname: string;
}

export interface CgroupLimits {
  memoryBytes: number;
  pids: number;
  cpuMsPerSec: number;
}

/** The limits the executor writes on its own per-sandbox cgroup (exact, as the tool asked). */
export function cgroupLimits(limits: ToolLimits): CgroupLimits {
  return {
    memoryBytes: limits.memoryMiB * MIB,
    pids: limits.pids,
    cpuMsPerSec: limits.cpuMillicores,
  };
}

function cgroupArgs(spec: JailSpec): string[] {
  const exact = cgroupLimits(spec.limits);
  if (spec.cgroup.version === 'v1') {
    const c = spec.cgroup;
    return [
      `--cgroup_mem_max=${exact.memoryBytes + CGROUP_CHILD_SLACK.memoryBytes}`,
      `--cgroup_mem_mount=${c.memoryMount}`,
      `--cgroup_mem_parent=${c.parent}`,
      `--cgroup_pids_max=${exact.pids + CGROUP_CHILD_SLACK.pids}`,
      `--cgroup_pids_mount=${c.pidsMount}`,
      `--cgroup_pids_parent=${c.parent}`,
      `--cgroup_cpu_ms_per_sec=${exact.cpuMsPerSec}`,
      `--cgroup_cpu_mount=${c.cpuMount}`,
      `--cgroup_cpu_parent=${c.parent}`,
    ];
  }
  return [
    '--use_cgroupv2',
    `--cgroupv2_mount=${spec.cgroup.sandboxCgroup}`,
    `--cgroup_mem_max=${exact.memoryBytes + CGROUP_CHILD_SLACK.memoryBytes}`,
    `--cgroup_pids_max=${exact.pids + CGROUP_CHILD_SLACK.pids}`,
    `--cgroup_cpu_ms_per_sec=${exact.cpuMsPerSec}`,
  ];
}

function rlimitArgs(spec: JailSpec): string[] {
  const fsizeMb = Math.max(1, spec.limits.tmpfsMiB);
  return [
    // Address space stays unlimited: V8 reserves large virtual ranges; memory is capped by the cgroup.
    '--rlimit_as=max',
    `--rlimit_cpu=${spec.cpuTimeLimitSeconds}`,
    `--rlimit_fsize=${fsizeMb}`,
    '--rlimit_nofile=256',
    // RLIMIT_NPROC counts per host uid, shared by all sandboxes: the pids cgroup limits each one.
    '--rlimit_nproc=max',
    '--rlimit_stack=8',
    '--rlimit_core=0',
    '--rlimit_memlock=0',
    '--rlimit_msgqueue=0',
    '--rlimit_rtprio=0',
  ];
}

/** The nsjail argv (without argv[0]) for one sandbox. */
export function buildNsjailArgs(spec: JailSpec): string[] {
  if (spec.command.length === 0 || !spec.command[0]!.startsWith('/')) {
    throw new Error('jail command must start with an absolute path');
  }
  const args: string[] = [
    '--mode=o',
    '--log_fd=' + String(spec.logFd),
    '--quiet',
    `--hostname=${spec.hostname}`,
    // Map exactly one id: the code is 65534 inside and 65534 (not root) on the host.
    `--user=${SANDBOX_ID}:${SANDBOX_ID}:1`,
    `--group=${SANDBOX_ID}:${SANDBOX_ID}:1`,
    `--time_limit=${spec.wallTimeLimitSeconds}`,
    `--seccomp_policy=${spec.seccompPolicyPath}`,
    `--cwd=${WORKSPACE}`,
    // Fresh, read-only procfs of the jail's own pid namespace.
    '--proc_path=/proc',
    ...rlimitArgs(spec),
    ...cgroupArgs(spec),
  ];
  // nsjail mounts the chroot directory read-only (no --rw is ever passed).
  if (spec.layout.root !== undefined) {
    if (!spec.layout.root.startsWith('/')) throw new Error('jail root must be an absolute path');
    args.push(`--chroot=${spec.layout.root}`);
  }
  for (const { source, target } of spec.layout.readOnlyBinds) {
    args.push(
      source === target ? `--bindmount_ro=${source}` : `--bindmount_ro=${source}:${target}`,
    );
  }
  for (const [inside, host] of Object.entries(spec.layout.etcFiles)) {
    args.push(`--bindmount_ro=${host}:${inside}`);
  }
  for (const device of spec.layout.devices) args.push(`--bindmount=${device}`);
  for (const { link, target } of spec.layout.symlinks) args.push(`--symlink=${target}:${link}`);
  args.push(`--mount=none:${WORKSPACE}:tmpfs:size=${spec.limits.tmpfsMiB * MIB},mode=0700`);
  // POSIX shared memory and semaphores (python multiprocessing); memory-backed, so charged to the
  // memory cgroup like everything else.
  args.push(`--mount=none:/dev/shm:tmpfs:size=${spec.limits.tmpfsMiB * MIB},mode=0700`);
  for (const [name, value] of Object.entries(spec.env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name))
      throw new Error(`invalid environment variable name: ${name}`);
    args.push(`--env=${name}=${value}`);
  }
  for (const fd of spec.passFds) args.push(`--pass_fd=${fd}`);
  args.push('--', ...spec.command);
  return args;
}
