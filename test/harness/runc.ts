// Runs a command in an image's root filesystem under runc, as root with every capability, no
// seccomp, an unmasked /proc and its own (empty) network namespace: what a process needs to
// create the namespaces nsjail makes. `buildah run --isolation chroot` cannot: the kernel refuses
// a new user namespace to a chrooted process, and runc enters the root with pivot_root instead.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCommand, type CommandResult } from './buildah.ts';

// Not CAP_SYS_RESOURCE: root on these machines lacks it, and runc fails to apply a cap it lacks.
const ALL_CAPABILITIES = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_DAC_READ_SEARCH',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_NET_ADMIN',
  'CAP_NET_RAW',
  'CAP_IPC_LOCK',
  'CAP_SYS_CHROOT',
  'CAP_SYS_PTRACE',
  'CAP_SYS_ADMIN',
  'CAP_MKNOD',
  'CAP_AUDIT_WRITE',
  'CAP_SETFCAP',
];

/** The OCI runtime config for `argv` in `rootfs` (a pure builder; see the header). */
export function privilegedSpec(rootfs: string, argv: readonly string[], env: readonly string[]) {
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: argv,
      env,
      cwd: '/',
      capabilities: {
        bounding: ALL_CAPABILITIES,
        effective: ALL_CAPABILITIES,
        permitted: ALL_CAPABILITIES,
      },
      noNewPrivileges: false,
    },
    root: { path: rootfs, readonly: false },
    hostname: 'mcpworks-image-check',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      {
        destination: '/dev',
        type: 'tmpfs',
        source: 'tmpfs',
        options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
      },
      {
        destination: '/dev/pts',
        type: 'devpts',
        source: 'devpts',
        options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'],
      },
      {
        destination: '/sys',
        type: 'sysfs',
        source: 'sysfs',
        options: ['nosuid', 'noexec', 'nodev', 'ro'],
      },
      {
        destination: '/tmp',
        type: 'tmpfs',
        source: 'tmpfs',
        options: ['nosuid', 'nodev', 'mode=1777'],
      },
    ],
    linux: {
      namespaces: [
        { type: 'pid' },
        { type: 'mount' },
        { type: 'ipc' },
        { type: 'uts' },
        { type: 'network' },
      ],
      maskedPaths: [],
      readonlyPaths: [],
    },
  };
}

let sequence = 0;

/** Runs `argv` in `rootfs` under runc (state and bundle in `workDir`) and resolves its output. */
export async function runPrivileged(
  rootfs: string,
  argv: readonly string[],
  workDir: string,
  env: readonly string[] = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
): Promise<CommandResult> {
  const id = `mcpworks-image-check-${process.pid}-${++sequence}`;
  const bundle = join(workDir, id);
  const stateRoot = join(workDir, 'state');
  mkdirSync(bundle, { recursive: true });
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(privilegedSpec(rootfs, argv, env)));
  try {
    return await runCommand('runc', ['--root', stateRoot, 'run', '--bundle', bundle, id]);
  } finally {
    await runCommand('runc', ['--root', stateRoot, 'delete', '--force', id]);
    rmSync(bundle, { recursive: true, force: true });
  }
}
