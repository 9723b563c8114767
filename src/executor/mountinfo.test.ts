import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  effectiveCapabilities,
  fullyVisibleProc,
  inUserNamespace,
  isReadOnly,
  missingCapabilities,
  mountAt,
  parseMountinfo,
  procOvermounts,
} from './mountinfo.ts';

/** The executor container's mountinfo as runc gets it from containerd's CRI plugin (trimmed). */
const POD = [
  '73 72 0:43 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw',
  '79 78 0:48 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - tmpfs tmpfs rw,mode=755',
  '83 79 0:32 /kubepods/burstable/pod1/ctr /sys/fs/cgroup/memory ro,nosuid,nodev,noexec,relatime - cgroup cgroup rw,memory',
  '49 73 0:43 /bus /proc/bus ro,nosuid,nodev,noexec,relatime - proc proc rw',
  '52 73 0:43 /sys /proc/sys ro,nosuid,nodev,noexec,relatime - proc proc rw',
  '53 73 0:49 / /proc/acpi ro,relatime - tmpfs tmpfs ro',
  '54 73 0:44 /null /proc/keys rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755',
].join('\n');
/** After the executor's clean-procfs step. */
const POD_WITH_CLEAN_PROC = `${POD}\n90 81 0:50 / /opt/mcpworks/proc rw,nosuid,nodev,noexec,relatime - proc proc rw`;
/** A plain systemd host: binfmt_misc below /proc is on a permanently empty directory. */
const HOST = [
  '22 27 0:21 / /proc rw,relatime - proc proc rw',
  '44 22 0:40 / /proc/sys/fs/binfmt_misc rw,relatime shared:25 - autofs systemd-1 rw,fd=29',
  '32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu',
].join('\n');

describe('parseMountinfo', () => {
  test('reads mount point, root, per-mount options and type, optional fields included', () => {
    const [proc, binfmt] = parseMountinfo(HOST);
    assert.equal(proc!.mountPoint, '/proc');
    assert.equal(proc!.fsType, 'proc');
    assert.equal(binfmt!.fsType, 'autofs');
    assert.equal(binfmt!.source, 'systemd-1');
  });

  test('decodes octal escapes and skips malformed lines', () => {
    const mounts = parseMountinfo('garbage\n1 0 0:1 / /a\\040b rw - tmpfs none rw\n');
    assert.equal(mounts.length, 1);
    assert.equal(mounts[0]!.mountPoint, '/a b');
  });

  test('a cgroup mount read-only per mount is read-only, whatever its superblock says', () => {
    const memory = mountAt(parseMountinfo(POD), '/sys/fs/cgroup/memory');
    assert.ok(memory && isReadOnly(memory));
    assert.equal(isReadOnly(mountAt(parseMountinfo(HOST), '/sys/fs/cgroup/cpu')!), false);
  });
});

describe('fullyVisibleProc decides the clean-procfs step', () => {
  test("kubelet's masked /proc is not fully visible: the step is needed", () => {
    assert.equal(fullyVisibleProc(parseMountinfo(POD)), undefined);
    assert.deepEqual(procOvermounts(parseMountinfo(POD)), [
      '/proc/bus',
      '/proc/sys',
      '/proc/acpi',
      '/proc/keys',
    ]);
  });

  test('after the step the clean procfs is the fully visible one', () => {
    assert.equal(fullyVisibleProc(parseMountinfo(POD_WITH_CLEAN_PROC)), '/opt/mcpworks/proc');
  });

  test('a plain host (binfmt_misc below /proc) needs no step', () => {
    assert.equal(fullyVisibleProc(parseMountinfo(HOST)), '/proc');
  });

  test('a bind of part of a procfs (root other than /) does not count', () => {
    const mounts = parseMountinfo('5 1 0:43 /sys /mnt rw - proc proc rw');
    assert.equal(fullyVisibleProc(mounts), undefined);
  });

  test('a procfs hidden by a later mount at the same place does not count', () => {
    const mounts = parseMountinfo(
      '5 1 0:43 / /x rw - proc proc rw\n6 1 0:44 / /x rw - tmpfs tmpfs rw',
    );
    assert.equal(fullyVisibleProc(mounts), undefined);
  });
});

describe('capabilities and user namespaces', () => {
  test("the pod's CapEff (SYS_ADMIN, SETUID, SETGID, SYS_CHROOT) lacks nothing", () => {
    const eff = effectiveCapabilities('Name:\tnode\nCapEff:\t00000000002400c0\n');
    assert.equal(eff, 0x2400c0n);
    assert.deepEqual(
      missingCapabilities(eff!, ['SYS_ADMIN', 'SETUID', 'SETGID', 'SYS_CHROOT']),
      [],
    );
  });

  test('without SYS_CHROOT it is named', () => {
    const eff = effectiveCapabilities('CapEff:\t00000000002000c0\n')!;
    assert.deepEqual(missingCapabilities(eff, ['SYS_ADMIN', 'SETUID', 'SETGID', 'SYS_CHROOT']), [
      'SYS_CHROOT',
    ]);
  });

  test('the initial user namespace maps every id; a user-namespaced pod maps a range', () => {
    assert.equal(inUserNamespace('         0          0 4294967295\n'), false);
    assert.equal(inUserNamespace('         0     100000      65536\n'), true);
  });
});
