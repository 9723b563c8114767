/**
 * Pure translation of one sandbox's shape (runtime files, limits, cgroup placement) into the nsjail
 * command line. No I/O: every path and number it needs is passed in, so the whole security
 * configuration of a sandbox can be read and tested as data.
 */
import type { ToolLimits } from '../api/v1alpha1/mcpserver.ts';
import { CA_BUNDLE_NAME, EGRESS_MOUNT } from './egress/jail.ts';

export const MIB = 1024 * 1024;

/** The uid/gid the code runs as, inside the jail and outside it (never root on the host). */
export const SANDBOX_ID = 65534;

/** Where the size-limited writable workspace is mounted, and the code's working directory. */
export const WORKSPACE = '/tmp';

/**
 * cgroup v2: nsjail itself puts the jail in a child cgroup of the sandbox cgroup and applies its
 * own limit there; the executor owns the sandbox cgroup and sets the exact limit on it. nsjail's
 * child limit is set slightly higher so the executor's cgroup is the one that trips, and its
 * counters (memory.events, pids.events) tell the outcome after nsjail has removed its child.
 */
export const CGROUP_CHILD_SLACK = { memoryBytes: 4 * MIB, pids: 1 } as const;

/**
 * cgroup v1: nsjail runs inside the sandbox cgroup (see `buildLaunchCommand`), so the jail is
 * born there and nsjail gets no cgroup options. nsjail's own process is then charged too: one
 * pid and ~1 MiB of memory (measured: 840 kB anonymous RSS), added to the sandbox's limits so the
 * code keeps what the tool asked for.
 */
export const SUPERVISOR_SLACK = { memoryBytes: 2 * MIB, pids: 1 } as const;

export type CgroupPlacement =
  | {
      version: 'v1';
      memoryMount: string;
      pidsMount: string;
      cpuMount: string;
      /**
       * Per-sandbox cgroup, relative to each controller mount (same name under all three).
       * nsjail is started inside it (`buildLaunchCommand`).
       */
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

/**
 * How nsjail makes the jail root its `/`: `pivot_root` (nsjail's default; the old root is
 * unmounted), or `chroot` after moving the new root over `/` (`--no_pivotroot`), for containers
 * whose runtime seccomp profile refuses pivot_root (containerd's and moby's RuntimeDefault). The
 * old root then stays mounted beneath, out of reach: the jailed process holds no capabilities and
 * the Kafel policy kills mount, umount, chroot, pivot_root, unshare and setns (ADR 0004).
 */
export type RootSwitch = 'pivot_root' | 'chroot';

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
  rootSwitch: RootSwitch;
  /**
   * Egress sandboxes only: the sandbox's private host directory (where the executor puts the
   * proxy's socket for the call), bound read-only at EGRESS_MOUNT, and the CA bundle bound
   * read-only over its empty `ca.crt` there. Without it nothing of the kind is inside.
   */
  egress?: { hostDir: string; caBundle: string };
}

export interface CgroupLimits {
  memoryBytes: number;
  pids: number;
  cpuMsPerSec: number;
}

/** The limits the tool asked for (exact). */
export function cgroupLimits(limits: ToolLimits): CgroupLimits {
  return {
    memoryBytes: limits.memoryMiB * MIB,
    pids: limits.pids,
    cpuMsPerSec: limits.cpuMillicores,
  };
}

/**
 * The limits the executor writes on a sandbox cgroup: the tool's, plus nsjail's own share on
 * cgroup v1, where nsjail runs inside that cgroup.
 */
export function sandboxCgroupLimits(limits: ToolLimits, version: 'v1' | 'v2'): CgroupLimits {
  const exact = cgroupLimits(limits);
  if (version === 'v2') return exact;
  return {
    memoryBytes: exact.memoryBytes + SUPERVISOR_SLACK.memoryBytes,
    pids: exact.pids + SUPERVISOR_SLACK.pids,
    cpuMsPerSec: exact.cpuMsPerSec,
  };
}

function cgroupArgs(spec: JailSpec): string[] {
  const exact = cgroupLimits(spec.limits);
  // v1: nsjail already runs in the sandbox cgroup, so the jail is born there. Letting nsjail
  // attach it to a child cgroup instead costs an RCU grace period per call (~7 ms idle, 10-25 ms
  // loaded): the kernel takes its global threadgroup lock to move another process, but not for
  // a thread that moves itself, which is what `buildLaunchCommand` does.
  if (spec.cgroup.version === 'v1') return [];
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
  if (spec.rootSwitch === 'chroot') args.push('--no_pivotroot');
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
  if (spec.egress !== undefined) {
    const { hostDir, caBundle } = spec.egress;
    if (!hostDir.startsWith('/') || !caBundle.startsWith('/'))
      throw new Error('egress paths must be absolute');
    args.push(`--bindmount_ro=${hostDir}:${EGRESS_MOUNT}`);
    args.push(`--bindmount_ro=${caBundle}:${EGRESS_MOUNT}/${CA_BUNDLE_NAME}`);
  }
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

/**
 * Script of the cgroup v1 launcher: joins the sandbox cgroup of each controller (writing 0 to
 * `tasks` moves the writing thread itself, which the kernel does without its global lock), then
 * becomes nsjail. Any failure ends it with nsjail's start-up failure status and an nsjail-style
 * fatal line on the jail log, before nsjail (and the code) ever runs. The paths arrive as
 * arguments, never inside the script.
 */
export function cgroupV1Launcher(logFd: number): string {
  if (!Number.isInteger(logFd) || logFd < 0) throw new Error('invalid log fd');
  return [
    'for tasks in "$1" "$2" "$3"; do',
    `  echo 0 > "$tasks" || { echo "[F] cannot join the sandbox cgroup $tasks" >&${logFd}; exit 255; }`,
    'done',
    'shift 3',
    'exec "$@"',
  ].join('\n');
}

/** How to start nsjail for a sandbox: directly (v2), or through the v1 cgroup launcher. */
export function buildLaunchCommand(
  spec: Pick<JailSpec, 'nsjailPath' | 'cgroup' | 'logFd'>,
  nsjailArgs: readonly string[],
  shellPath: string,
): { command: string; args: string[] } {
  if (spec.cgroup.version === 'v2') return { command: spec.nsjailPath, args: [...nsjailArgs] };
  const c = spec.cgroup;
  return {
    command: shellPath,
    args: [
      '-c',
      cgroupV1Launcher(spec.logFd),
      'mcpworks-launch',
      `${c.memoryMount}/${c.parent}/tasks`,
      `${c.pidsMount}/${c.parent}/tasks`,
      `${c.cpuMount}/${c.parent}/tasks`,
      spec.nsjailPath,
      ...nsjailArgs,
    ],
  };
}
