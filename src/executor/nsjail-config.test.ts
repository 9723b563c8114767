import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  buildLaunchCommand,
  buildNsjailArgs,
  CGROUP_CHILD_SLACK,
  cgroupV1Launcher,
  MIB,
  sandboxCgroupLimits,
  SUPERVISOR_SLACK,
  type JailSpec,
} from './nsjail-config.ts';

function spec(overrides: Partial<JailSpec> = {}): JailSpec {
  return {
    nsjailPath: '/usr/bin/nsjail',
    command: ['/usr/bin/python3.11', '-c', 'pass'],
    layout: {
      readOnlyBinds: [
        { source: '/usr/bin/python3.11', target: '/usr/bin/python3.11' },
        { source: '/usr/bin/mawk', target: '/usr/bin/awk' },
      ],
      symlinks: [{ link: '/lib64', target: 'usr/lib64' }],
      etcFiles: { '/etc/passwd': '/gen/passwd' },
      devices: ['/dev/null'],
    },
    limits: { memoryMiB: 128, cpuMillicores: 500, pids: 16, maxOutputBytes: 4096, tmpfsMiB: 8 },
    wallTimeLimitSeconds: 7,
    cpuTimeLimitSeconds: 6,
    seccompPolicyPath: '/policy.kafel',
    cgroup: {
      version: 'v1',
      memoryMount: '/sys/fs/cgroup/memory',
      pidsMount: '/sys/fs/cgroup/pids',
      cpuMount: '/sys/fs/cgroup/cpu',
      parent: 'mcpworks-executor/abc-1',
    },
    env: { PATH: '/usr/bin' },
    passFds: [3],
    logFd: 4,
    hostname: 'sandbox',
    rootSwitch: 'pivot_root',
    ...overrides,
  };
}

const has = (args: string[], flag: string) => args.includes(flag);

describe('buildNsjailArgs', () => {
  test('binds the egress directory and the CA bundle read-only only for egress sandboxes', () => {
    const plain = buildNsjailArgs(spec());
    assert.ok(!plain.some((arg) => arg.includes('/run/mcpworks')), 'nothing at the mount point');
    const args = buildNsjailArgs(
      spec({ egress: { hostDir: '/var/egress/sb-1', caBundle: '/etc/ssl/certs/ca.pem' } }),
    );
    const dir = args.indexOf('--bindmount_ro=/var/egress/sb-1:/run/mcpworks');
    const ca = args.indexOf('--bindmount_ro=/etc/ssl/certs/ca.pem:/run/mcpworks/ca.crt');
    assert.ok(dir > 0 && ca > dir, 'the directory first, the bundle over its file');
    assert.ok(ca < args.indexOf('--'));
    assert.ok(!args.some((arg) => arg.startsWith('--bindmount=/var/egress')), 'never writable');
    assert.throws(() => buildNsjailArgs(spec({ egress: { hostDir: 'rel', caBundle: '/ca' } })));
  });

  test('enters the jail with pivot_root by default, with chroot (--no_pivotroot) in pods', () => {
    assert.ok(!has(buildNsjailArgs(spec()), '--no_pivotroot'));
    const args = buildNsjailArgs(spec({ rootSwitch: 'chroot' }));
    assert.ok(has(args, '--no_pivotroot'));
    assert.ok(args.indexOf('--no_pivotroot') < args.indexOf('--'), 'an nsjail flag, not argv');
  });

  test('runs once, as 65534 mapped to 65534 on the host (never host root)', () => {
    const args = buildNsjailArgs(spec());
    assert.ok(has(args, '--mode=o'));
    assert.ok(has(args, '--user=65534:65534:1'));
    assert.ok(has(args, '--group=65534:65534:1'));
  });

  test('disables no namespace and no network isolation', () => {
    const args = buildNsjailArgs(spec());
    assert.equal(
      args.filter(
        (a) =>
          a.startsWith('--disable_clone') ||
          a === '-N' ||
          a.startsWith('--macvlan') ||
          a === '--use_pasta',
      ).length,
      0,
    );
  });

  test('always applies the seccomp policy', () => {
    assert.ok(has(buildNsjailArgs(spec()), '--seccomp_policy=/policy.kafel'));
  });

  test('on v1, starts nsjail inside all three sandbox cgroups and gives it no cgroup options', () => {
    const args = buildNsjailArgs(spec());
    assert.ok(!args.some((a) => a.startsWith('--cgroup') || a === '--use_cgroupv2'));
    const launch = buildLaunchCommand(spec(), args, '/bin/sh');
    assert.equal(launch.command, '/bin/sh');
    assert.deepEqual(launch.args.slice(0, 2), ['-c', cgroupV1Launcher(4)]);
    assert.deepEqual(launch.args.slice(3), [
      '/sys/fs/cgroup/memory/mcpworks-executor/abc-1/tasks',
      '/sys/fs/cgroup/pids/mcpworks-executor/abc-1/tasks',
      '/sys/fs/cgroup/cpu/mcpworks-executor/abc-1/tasks',
      '/usr/bin/nsjail',
      ...args,
    ]);
  });

  test('the v1 launcher joins each cgroup by moving itself, and never runs nsjail on failure', () => {
    const script = cgroupV1Launcher(4);
    assert.match(script, /echo 0 > "\$tasks" \|\| \{ echo "\[F\] [^"]*" >&4; exit 255; \}/);
    assert.ok(script.indexOf('exit 255') < script.indexOf('exec "$@"'));
  });

  test('on v1 the sandbox cgroup also holds nsjail: one pid and a little memory more', () => {
    const limits = spec().limits;
    assert.deepEqual(sandboxCgroupLimits(limits, 'v1'), {
      memoryBytes: 128 * MIB + SUPERVISOR_SLACK.memoryBytes,
      pids: 16 + SUPERVISOR_SLACK.pids,
      cpuMsPerSec: 500,
    });
    assert.deepEqual(sandboxCgroupLimits(limits, 'v2'), {
      memoryBytes: 128 * MIB,
      pids: 16,
      cpuMsPerSec: 500,
    });
  });

  test('on v2, nsjail starts directly and nests the jail with a slightly looser child limit', () => {
    const v2 = spec({ cgroup: { version: 'v2', sandboxCgroup: '/sys/fs/cgroup/x/abc-1' } });
    const args = buildNsjailArgs(v2);
    assert.ok(has(args, `--cgroup_mem_max=${128 * MIB + CGROUP_CHILD_SLACK.memoryBytes}`));
    assert.ok(has(args, `--cgroup_pids_max=${16 + CGROUP_CHILD_SLACK.pids}`));
    assert.ok(has(args, '--cgroup_cpu_ms_per_sec=500'));
    assert.deepEqual(buildLaunchCommand(v2, args, '/bin/sh'), {
      command: '/usr/bin/nsjail',
      args,
    });
  });

  test('uses the cgroup v2 options on v2', () => {
    const args = buildNsjailArgs(
      spec({ cgroup: { version: 'v2', sandboxCgroup: '/sys/fs/cgroup/x/abc-1' } }),
    );
    assert.ok(has(args, '--use_cgroupv2'));
    assert.ok(has(args, '--cgroupv2_mount=/sys/fs/cgroup/x/abc-1'));
    assert.ok(!args.some((a) => a.startsWith('--cgroup_mem_parent')));
  });

  test('mounts a size-limited tmpfs workspace and makes it the working directory', () => {
    const args = buildNsjailArgs(spec());
    assert.ok(has(args, `--mount=none:/tmp:tmpfs:size=${8 * MIB},mode=0700`));
    assert.ok(has(args, '--cwd=/tmp'));
    assert.ok(has(args, '--rlimit_fsize=8'));
  });

  test('binds runtime files read-only, renaming where the inside name differs', () => {
    const args = buildNsjailArgs(spec());
    assert.ok(has(args, '--bindmount_ro=/usr/bin/python3.11'));
    assert.ok(has(args, '--bindmount_ro=/usr/bin/mawk:/usr/bin/awk'));
    assert.ok(has(args, '--bindmount_ro=/gen/passwd:/etc/passwd'));
    assert.deepEqual(
      args.filter((a) => a.startsWith('--bindmount=')),
      ['--bindmount=/dev/null'],
    );
  });

  test('mounts a prepared root as / read-only when the layout has one', () => {
    const args = buildNsjailArgs(
      spec({ layout: { ...spec().layout, root: '/var/lib/mcpworks/root-python' } }),
    );
    assert.ok(has(args, '--chroot=/var/lib/mcpworks/root-python'));
    assert.ok(!has(args, '--rw'));
  });

  test('has no chroot without a prepared root (an empty read-only tmpfs root)', () => {
    const args = buildNsjailArgs(spec());
    assert.ok(!args.some((a) => a.startsWith('--chroot') || a === '--rw'));
  });

  test('rejects a relative root', () => {
    assert.throws(
      () => buildNsjailArgs(spec({ layout: { ...spec().layout, root: 'root-python' } })),
      /absolute path/,
    );
  });

  test('passes only the declared environment and the result fd', () => {
    const args = buildNsjailArgs(spec());
    assert.deepEqual(
      args.filter((a) => a.startsWith('--env')),
      ['--env=PATH=/usr/bin'],
    );
    assert.ok(!has(args, '--keep_env'));
    assert.deepEqual(
      args.filter((a) => a.startsWith('--pass_fd')),
      ['--pass_fd=3'],
    );
  });

  test('sets the wall-clock and CPU backstops', () => {
    const args = buildNsjailArgs(spec());
    assert.ok(has(args, '--time_limit=7'));
    assert.ok(has(args, '--rlimit_cpu=6'));
    assert.ok(has(args, '--rlimit_core=0'));
  });

  test('ends with the command after --', () => {
    const args = buildNsjailArgs(spec());
    assert.deepEqual(args.slice(args.indexOf('--')), ['--', '/usr/bin/python3.11', '-c', 'pass']);
  });

  test('rejects an invalid environment variable name', () => {
    assert.throws(
      () => buildNsjailArgs(spec({ env: { 'A=B': 'x' } })),
      /invalid environment variable/,
    );
  });

  test('rejects a relative command', () => {
    assert.throws(() => buildNsjailArgs(spec({ command: ['python3'] })), /absolute path/);
  });
});
