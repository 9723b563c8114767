/**
 * The only /etc the code sees: minimal generated files, bound read-only. The host's (or the
 * kubelet's) passwd, hosts and resolv.conf never enter the sandbox.
 */
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SANDBOX_ID } from './nsjail-config.ts';

export const ETC_FILES: Readonly<Record<string, string>> = {
  passwd: `root:x:0:0:root:/nonexistent:/usr/sbin/nologin\nnobody:x:${SANDBOX_ID}:${SANDBOX_ID}:nobody:/tmp:/usr/sbin/nologin\n`,
  group: `root:x:0:\nnogroup:x:${SANDBOX_ID}:\n`,
  hosts: '127.0.0.1\tlocalhost\n::1\tlocalhost\n',
  // No resolver: the sandbox has no network, and DNS must not leak names either.
  'resolv.conf': '# no name resolution inside the sandbox\n',
  'nsswitch.conf': 'passwd: files\ngroup: files\nhosts: files\n',
  hostname: 'sandbox\n',
};

/** Writes the files into a fresh private directory; returns inside path → host path. */
export function writeEtcFiles(parent = tmpdir()): { dir: string; files: Record<string, string> } {
  const dir = mkdtempSync(join(parent, 'mcpworks-etc-'));
  chmodSync(dir, 0o755);
  const files: Record<string, string> = {};
  for (const [name, content] of Object.entries(ETC_FILES)) {
    const path = join(dir, name);
    writeFileSync(path, content, { mode: 0o644 });
    files[`/etc/${name}`] = path;
  }
  return { dir, files };
}
