/**
 * What the executor fixes in its own container before it serves (docs/adr/0004): one fully
 * visible procfs, so that nsjail's per-sandbox /proc passes the kernel's check under kubelet's
 * masked /proc, and its own cgroup mounts writable, so that it can create one cgroup per call.
 * On a plain host (`mcpworks serve`) both are already so and nothing is mounted. Thin I/O over
 * the pure decisions in mountinfo.ts; every failure is a SandboxUnavailable with a message from
 * startup-problems.ts.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { promisify } from 'node:util';
import type { Logger } from '../shared/logger.ts';
import { ErrorCode, McpworksError } from '../shared/errors.ts';
import type { CgroupRoots } from './cgroups.ts';
import {
  effectiveCapabilities,
  fullyVisibleProc,
  inUserNamespace,
  isReadOnly,
  missingCapabilities,
  mountAt,
  parseMountinfo,
  procOvermounts,
  type CapabilityName,
  type MountEntry,
} from './mountinfo.ts';
import { startupProblem } from './startup-problems.ts';

const run = promisify(execFile);

/** The empty 0700 directory of the sandbox image that the clean procfs is mounted on. */
export const CLEAN_PROC_DIR = '/opt/mcpworks/proc';
const MOUNT_CANDIDATES = ['/usr/bin/mount', '/bin/mount'];
/** The per-mount flags every cgroup and proc mount keeps. */
const MOUNT_FLAGS = 'nosuid,nodev,noexec';

export interface ContainerSetupOptions {
  cgroups: CgroupRoots;
  /** nsjail switches root with chroot instead of pivot_root: CAP_SYS_CHROOT is needed too. */
  noPivotRoot: boolean;
  cleanProcDir?: string;
  logger: Logger;
}

function unavailable(message: string, cause?: unknown): McpworksError {
  return new McpworksError(
    ErrorCode.SandboxUnavailable,
    message,
    cause === undefined ? {} : { cause },
  );
}

function readMounts(): MountEntry[] {
  return parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'));
}

/** The first line mount(8) printed, else the error's own message. */
function mountError(error: unknown): string {
  const stderr = (error as { stderr?: string }).stderr?.trim().split('\n')[0];
  return stderr || (error as Error).message;
}

function mountTool(): string {
  const found = MOUNT_CANDIDATES.find((path) => existsSync(path));
  if (found === undefined) throw unavailable(startupProblem.mountToolMissing(MOUNT_CANDIDATES));
  return found;
}

function checkCapabilities(noPivotRoot: boolean): void {
  // Outside a container a non-root executor cannot work either; sandbox-executor warns about it.
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return;
  const effective = effectiveCapabilities(readFileSync('/proc/self/status', 'utf8'));
  if (effective === undefined) return;
  const required: CapabilityName[] = ['SYS_ADMIN', 'SETUID', 'SETGID'];
  if (noPivotRoot) required.push('SYS_CHROOT');
  const missing = missingCapabilities(effective, required);
  if (missing.length > 0) throw unavailable(startupProblem.missingCapabilities(missing));
}

function emptyDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory() && readdirSync(path).length === 0;
  } catch {
    return false;
  }
}

async function ensureFullyVisibleProc(dir: string, logger: Logger): Promise<void> {
  const before = readMounts();
  const visible = fullyVisibleProc(before);
  if (visible !== undefined) {
    logger.debug({ proc: visible }, 'a fully visible procfs exists; no clean procfs mounted');
    return;
  }
  const overmounts = procOvermounts(before);
  if (runsInUserNamespace()) {
    throw unavailable(startupProblem.procMaskedInUserNamespace(overmounts));
  }
  if (!emptyDirectory(dir)) throw unavailable(startupProblem.procDirMissing(dir, overmounts));
  try {
    await run(mountTool(), ['-t', 'proc', '-o', MOUNT_FLAGS, 'proc', dir]);
  } catch (error) {
    if (error instanceof McpworksError) throw error;
    throw unavailable(startupProblem.procMountRefused(dir, mountError(error), overmounts), error);
  }
  if (fullyVisibleProc(readMounts()) === undefined) {
    throw unavailable(
      startupProblem.procMountRefused(dir, 'mounted, but not fully visible', overmounts),
    );
  }
  logger.info(
    { dir, masked: overmounts },
    "mounted a clean procfs: the container's /proc is masked",
  );
}

/** The mount points of the executor's cgroup controllers (v1: memory, pids, cpu; v2: one). */
function cgroupMountPoints(roots: CgroupRoots): string[] {
  const paths =
    roots.version === 'v1' ? [roots.memoryMount, roots.pidsMount, roots.cpuMount] : [roots.mount];
  // /sys/fs/cgroup/cpu is often a symlink to cpu,cpuacct
  return [...new Set(paths.map((path) => realpathSync(path)))];
}

async function ensureWritableCgroups(roots: CgroupRoots, logger: Logger): Promise<void> {
  const mounts = readMounts();
  const readOnly = cgroupMountPoints(roots).filter((path) => {
    const mount = mountAt(mounts, path);
    return mount !== undefined && isReadOnly(mount);
  });
  if (readOnly.length === 0) return;
  for (const path of readOnly) {
    try {
      // A bind remount changes only this mount's flags, not the hierarchy: the container's own
      // cgroup directory becomes writable, nothing above it becomes visible.
      await run(mountTool(), ['-o', `remount,bind,rw,${MOUNT_FLAGS}`, path]);
    } catch (error) {
      if (error instanceof McpworksError) throw error;
      throw unavailable(startupProblem.cgroupReadOnly(path, mountError(error)), error);
    }
    const after = mountAt(readMounts(), path);
    if (after === undefined || isReadOnly(after)) {
      throw unavailable(startupProblem.cgroupReadOnly(path, 'still read-only after the remount'));
    }
  }
  logger.info({ remounted: readOnly }, "made the executor's own cgroup mounts writable");
}

/**
 * Prepares the container for nsjail, in this order: capabilities present, one fully visible
 * procfs, writable cgroup mounts. Throws SandboxUnavailable with the plain-words reason.
 */
export async function prepareContainer(options: ContainerSetupOptions): Promise<void> {
  checkCapabilities(options.noPivotRoot);
  await ensureFullyVisibleProc(options.cleanProcDir ?? CLEAN_PROC_DIR, options.logger);
  await ensureWritableCgroups(options.cgroups, options.logger);
}

/** Whether this process runs in a user namespace (a user-namespaced pod). */
export function runsInUserNamespace(): boolean {
  try {
    return inUserNamespace(readFileSync('/proc/self/uid_map', 'utf8'));
  } catch {
    return false;
  }
}
