/**
 * The only /etc the code sees: minimal generated files, placed in each runtime's read-only root. The host's (or the
 * kubelet's) passwd, hosts and resolv.conf never enter the sandbox.
 */
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
