/**
 * The executor's start-up problems in plain words: what is missing and which pod setting fixes
 * it. Pure; docs/troubleshooting.md quotes these messages verbatim. Each one stops the executor
 * before it serves (fail closed) and is written to the log and the pod's termination message.
 */
import type { CapabilityName } from './mountinfo.ts';

/** The capabilities the executor's Deployment adds (docs/adr/0004-executor-privileges.md). */
const CAPS_FIX = 'capabilities: {drop: [ALL], add: [SYS_ADMIN, SETUID, SETGID, SYS_CHROOT]}';
const USERNS_CGROUP_FIX =
  'on cgroup v2 nodes a user-namespaced executor also needs containerd >= 2.1 with ' +
  'cgroup_writable = true';

export const startupProblem = {
  missingCapabilities(missing: readonly CapabilityName[]): string {
    const names = missing.map((c) => `CAP_${c}`).join(', ');
    return (
      `missing capability: the executor runs as root but lacks ${names}, which nsjail needs to ` +
      `build each sandbox; run the executor container as uid 0 with ${CAPS_FIX}`
    );
  },

  mountToolMissing(candidates: readonly string[]): string {
    return (
      `mount(8) is not in the image (looked for ${candidates.join(', ')}); the executor needs ` +
      'it to mount a clean procfs and to make its cgroup writable; use the mcpworks sandbox image ' +
      '(util-linux is part of its base)'
    );
  },

  procDirMissing(dir: string, overmounts: readonly string[]): string {
    return (
      `/proc is masked (${summary(overmounts)} are mounted over it) and ${dir}, the empty ` +
      'directory the executor mounts a clean procfs on, does not exist or is not empty; without ' +
      "one fully visible procfs the kernel refuses each sandbox's own /proc; use the mcpworks " +
      'sandbox image (it has that directory), or run a user-namespaced pod (hostUsers: false, ' +
      'procMount: Unmasked)'
    );
  },

  procMaskedInUserNamespace(overmounts: readonly string[]): string {
    return (
      `/proc mount refused: this pod runs in a user namespace (hostUsers: false) and its /proc ` +
      `is masked (${summary(overmounts)}); there the kernel refuses every new procfs, the ` +
      "executor's clean one and each sandbox's own; set securityContext.procMount: Unmasked on " +
      'the executor container (the UserNamespace security mode does)'
    );
  },

  procMountRefused(dir: string, detail: string, overmounts: readonly string[]): string {
    return (
      `/proc mount refused: mounting a clean procfs on ${dir} failed (${detail}); the ` +
      `container's /proc is masked (${summary(overmounts)}) and without one fully visible ` +
      "procfs the kernel refuses each sandbox's own /proc; the container needs CAP_SYS_ADMIN " +
      '(capabilities.add: [SYS_ADMIN]) and no AppArmor confinement ' +
      '(appArmorProfile.type: Unconfined), or run a user-namespaced pod (hostUsers: false, ' +
      'procMount: Unmasked)'
    );
  },

  cgroupReadOnly(path: string, detail: string): string {
    return (
      `read-only cgroupfs: ${path} is mounted read-only and could not be made writable ` +
      `(${detail}); the executor creates one cgroup per call there to enforce the memory, pids ` +
      "and cpu limits; the container needs CAP_SYS_ADMIN in the node's user namespace " +
      '(capabilities.add: [SYS_ADMIN], no hostUsers: false) and appArmorProfile.type: ' +
      `Unconfined; ${USERNS_CGROUP_FIX}`
    );
  },

  cgroupV1InUserNamespace(path: string, code: string): string {
    return (
      'cgroup v1 limits cannot be applied in a user-namespaced pod (hostUsers: false): the ' +
      `kernel refuses to create the executor's cgroup ${path} from a user namespace (${code}); ` +
      'use securityMode Standard on cgroup v1 nodes, or run user-namespaced executors on ' +
      'cgroup v2 nodes with containerd >= 2.1 and cgroup_writable = true'
    );
  },

  cgroupCreateFailed(path: string, code: string, message: string): string {
    return `cannot create the executor's cgroup ${path} (${code}: ${message})`;
  },

  cgroupV2NotDelegated(path: string, detail: string): string {
    return (
      `cannot take over the cgroup v2 subtree at ${path} (${detail}): the executor must be ` +
      'able to move itself into a child cgroup and enable the memory, pids and cpu controllers ' +
      `below it; the cgroup must be writable by the container; ${USERNS_CGROUP_FIX}`
    );
  },
};

function summary(paths: readonly string[]): string {
  if (paths.length === 0) return 'paths below /proc';
  const shown = paths.slice(0, 3).join(', ');
  return paths.length > 3 ? `${shown}, …` : shown;
}

/**
 * Known nsjail start-up failures (its `[E]`/`[F]` log lines, as seen in pods) → what is missing
 * and what fixes it. Undefined when the log names nothing known.
 */
const JAIL_FAILURES: ReadonlyArray<{ pattern: RegExp; explain: string }> = [
  {
    pattern: /procfs mount may fail|mount\('none' -> '[^']*\/proc'\).*not permitted/i,
    explain:
      "/proc mount refused: the kernel refused the sandbox's own procfs because the container " +
      "has no fully visible /proc (kubelet's masked paths); the executor's clean procfs is " +
      'missing or was unmounted; restart the executor, or run a user-namespaced pod ' +
      '(hostUsers: false, procMount: Unmasked)',
  },
  {
    pattern: /pivot_root\(.*not permitted/i,
    explain:
      "pivot_root refused: the container runtime's seccomp profile (RuntimeDefault) does not " +
      'allow pivot_root whatever the capabilities; run the executor with --no-pivot-root (the ' +
      "controller's executor Deployment does) and add SYS_CHROOT, or use a Localhost seccomp " +
      'profile that allows pivot_root',
  },
  {
    pattern: /chroot\(.*not permitted/i,
    explain:
      "chroot refused: the container runtime's seccomp profile allows chroot only with " +
      'CAP_SYS_CHROOT; add SYS_CHROOT to securityContext.capabilities.add',
  },
  {
    pattern: /(uid_map|gid_map|setgroups).*not permitted/i,
    explain:
      'uid/gid mapping refused: nsjail needs CAP_SETUID and CAP_SETGID to map the sandbox user; ' +
      'add SETUID and SETGID to securityContext.capabilities.add',
  },
  {
    pattern: /(clone|unshare)\(.*not permitted/i,
    explain:
      'namespace creation refused: nsjail needs CAP_SYS_ADMIN (capabilities.add: [SYS_ADMIN]) ' +
      'and user namespaces enabled on the node (user.max_user_namespaces > 0)',
  },
];

export function explainJailFailure(jailLog: string): string | undefined {
  return JAIL_FAILURES.find(({ pattern }) => pattern.test(jailLog))?.explain;
}
