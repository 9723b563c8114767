/**
 * Pure reading of `/proc/self/mountinfo` and `/proc/self/status`: what the executor's container
 * gives it (a masked /proc, read-only cgroup mounts, which capabilities), so that start-up can
 * decide what to fix and say in plain words what is missing. No I/O here.
 */

export interface MountEntry {
  id: number;
  parentId: number;
  /** The path inside the filesystem that is mounted here (`/` for a whole procfs). */
  root: string;
  mountPoint: string;
  /** Per-mount options (`ro`/`rw`, `nosuid`, …): what a bind remount changes. */
  options: readonly string[];
  fsType: string;
  source: string;
  superOptions: readonly string[];
}

/** mountinfo escapes space, tab, newline and backslash as octal (`\040`). */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) =>
    String.fromCharCode(parseInt(octal, 8)),
  );
}

/** Parses mountinfo text (proc(5)); malformed lines are skipped. */
export function parseMountinfo(text: string): MountEntry[] {
  const mounts: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.trim().split(' ');
    const separator = fields.indexOf('-', 6);
    if (fields.length < 10 || separator < 0 || fields.length < separator + 3) continue;
    mounts.push({
      id: Number(fields[0]),
      parentId: Number(fields[1]),
      root: unescape(fields[3]!),
      mountPoint: unescape(fields[4]!),
      options: fields[5]!.split(','),
      fsType: fields[separator + 1]!,
      source: unescape(fields[separator + 2]!),
      superOptions: (fields[separator + 3] ?? '').split(','),
    });
  }
  return mounts;
}

/** The mount seen at `path`: the last one mounted there (later mounts hide earlier ones). */
export function mountAt(mounts: readonly MountEntry[], path: string): MountEntry | undefined {
  let found: MountEntry | undefined;
  for (const mount of mounts) if (mount.mountPoint === path) found = mount;
  return found;
}

export function isReadOnly(mount: MountEntry): boolean {
  return mount.options.includes('ro');
}

/**
 * Directories below /proc that the kernel keeps permanently empty: a mount on one does not hide
 * anything, so it does not make the procfs less than fully visible (binfmt_misc on most hosts).
 */
const PERMANENTLY_EMPTY_PROC_DIRS = ['/sys/fs/binfmt_misc'];

/**
 * Whether the mount namespace holds a fully visible procfs: a whole procfs (root `/`), not hidden
 * by a later mount at the same place, with nothing mounted below it. The kernel refuses a new
 * procfs in a new user namespace (nsjail's /proc) unless one exists (fs/namespace.c,
 * mnt_already_visible); kubelet's masked and read-only /proc paths are mounts below /proc.
 * Returns the mount point of one, or undefined.
 */
export function fullyVisibleProc(mounts: readonly MountEntry[]): string | undefined {
  for (const proc of mounts) {
    if (proc.fsType !== 'proc' || proc.root !== '/') continue;
    if (mountAt(mounts, proc.mountPoint) !== proc) continue;
    const below = `${proc.mountPoint === '/' ? '' : proc.mountPoint}/`;
    const covered = mounts.some(
      (other) =>
        other !== proc &&
        other.mountPoint.startsWith(below) &&
        !PERMANENTLY_EMPTY_PROC_DIRS.some((dir) => other.mountPoint === proc.mountPoint + dir),
    );
    if (!covered) return proc.mountPoint;
  }
  return undefined;
}

/** The paths below /proc that hide parts of it (for the log and the error message). */
export function procOvermounts(mounts: readonly MountEntry[]): string[] {
  return mounts
    .filter((m) => m.mountPoint.startsWith('/proc/'))
    .filter((m) => !PERMANENTLY_EMPTY_PROC_DIRS.some((dir) => m.mountPoint === '/proc' + dir))
    .map((m) => m.mountPoint);
}

/** Linux capability numbers the executor needs (linux/capability.h). */
export const Capability = {
  SETGID: 6,
  SETUID: 7,
  SYS_CHROOT: 18,
  SYS_ADMIN: 21,
} as const;
export type CapabilityName = keyof typeof Capability;

/** The effective capability set from `/proc/self/status` (`CapEff:` hex), or undefined. */
export function effectiveCapabilities(status: string): bigint | undefined {
  const match = /^CapEff:\s*([0-9a-f]+)\s*$/m.exec(status);
  return match ? BigInt(`0x${match[1]}`) : undefined;
}

/** The capabilities of `required` that `effective` lacks, in the order given. */
export function missingCapabilities(
  effective: bigint,
  required: readonly CapabilityName[],
): CapabilityName[] {
  return required.filter((name) => (effective & (1n << BigInt(Capability[name]))) === 0n);
}

/**
 * Whether this process runs in a user namespace other than the initial one: the initial
 * namespace maps every id (`0 0 4294967295`); a user-namespaced pod maps a range.
 */
export function inUserNamespace(uidMap: string): boolean {
  const lines = uidMap.trim().split('\n');
  if (lines.length !== 1) return true;
  const [inside, outside, count] = lines[0]!.trim().split(/\s+/);
  return !(inside === '0' && outside === '0' && count === '4294967295');
}
