// The first process of an egress world (see egress-world.ts), started by `unshare` as pid 1 of
// fresh pid, network and mount namespaces:
//   node egress-world-inside.ts --dir DIR [--app MODULE] -- COMMAND ARGS...
// Sets up the network and the name files, starts the recording servers, runs the command and
// exits with its status; the kernel then kills whatever the command left behind.
import { execFileSync, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { appendFileSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  WORLD,
  WORLD_ENV,
  WORLD_INTERFACE_ADDRESSES,
  worldHostsFile,
  worldNsswitch,
  type WorldApp,
  type WorldEvent,
} from './egress-world.ts';
import { echoApp, listen, recordingServers } from './egress-world-server.ts';

function parseArgs(argv: string[]): { dir: string; app?: string; command: string[] } {
  const split = argv.indexOf('--');
  const own = argv.slice(0, split);
  const command = argv.slice(split + 1);
  const value = (flag: string) => {
    const i = own.indexOf(flag);
    return i >= 0 ? own[i + 1] : undefined;
  };
  const dir = value('--dir');
  if (split < 0 || !dir || command.length === 0) {
    throw new Error('usage: egress-world-inside.ts --dir DIR [--app MODULE] -- COMMAND ARGS...');
  }
  return { dir, app: value('--app'), command };
}

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] });

/**
 * Refuses to touch anything unless this is the first process of a new pid namespace whose
 * network namespace has nothing but `lo`: bind-mounting over /etc/hosts anywhere else would
 * change the host.
 */
function assertFreshNamespaces(): void {
  if (process.pid !== 1) throw new Error(`not pid 1 of a new pid namespace (pid ${process.pid})`);
  const links = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(':')[1]?.trim());
  if (links.length !== 1 || links[0] !== 'lo') {
    throw new Error(`not a fresh network namespace (links: ${links.join(', ')})`);
  }
}

function setUpNetwork(): void {
  ip('link', 'set', 'lo', 'up');
  // A veth pair with both ends here stands in for a dummy interface (not every kernel has the
  // dummy module); only the address's interface matters, and it is not loopback.
  ip('link', 'add', WORLD.interface, 'type', 'veth', 'peer', 'name', WORLD.peer);
  ip('link', 'set', WORLD.peer, 'up');
  ip('link', 'set', WORLD.interface, 'up');
  for (const address of WORLD_INTERFACE_ADDRESSES) {
    ip('addr', 'add', `${address}/32`, 'dev', WORLD.interface);
  }
}

function bindNameFiles(dir: string): void {
  writeFileSync(join(dir, 'hosts'), worldHostsFile());
  execFileSync('mount', ['--bind', join(dir, 'hosts'), '/etc/hosts']);
  let nsswitch = '';
  try {
    nsswitch = readFileSync('/etc/nsswitch.conf', 'utf8');
  } catch {
    // glibc's default without the file is "hosts: dns files"; the bind below needs a target
  }
  writeFileSync(join(dir, 'nsswitch.conf'), worldNsswitch(nsswitch));
  if (nsswitch !== '')
    execFileSync('mount', ['--bind', join(dir, 'nsswitch.conf'), '/etc/nsswitch.conf']);
}

async function loadApp(path: string | undefined): Promise<WorldApp> {
  if (!path) return echoApp;
  const mod = (await import(pathToFileURL(path).href)) as { default?: WorldApp };
  if (typeof mod.default !== 'function') throw new Error(`${path} has no default export`);
  return mod.default;
}

function recorder(dir: string): (event: WorldEvent) => void {
  const file = join(dir, 'events.jsonl');
  writeFileSync(file, '');
  // Synchronous, so an event is on disk before the response that follows it is sent.
  return (event) => appendFileSync(file, JSON.stringify(event) + '\n');
}

async function main(): Promise<void> {
  const { dir, app: appPath, command } = parseArgs(process.argv.slice(2));
  assertFreshNamespaces();
  setUpNetwork();
  bindNameFiles(dir);
  writeFileSync(
    join(dir, 'namespaces.json'),
    JSON.stringify({
      net: readlinkSync('/proc/self/ns/net'),
      mnt: readlinkSync('/proc/self/ns/mnt'),
    }),
  );
  const record = recorder(dir);
  const app = await loadApp(appPath);
  const { https, http } = recordingServers(app, record);
  await listen(https, WORLD.httpsPort);
  await listen(http, WORLD.httpPort);
  const udp = createSocket('udp4');
  udp.on('message', (msg, rinfo) =>
    record({
      kind: 'udp',
      localPort: WORLD.udpPort,
      remoteAddress: rinfo.address,
      bytes: msg.length,
    }),
  );
  await new Promise<void>((resolve) => udp.bind(WORLD.udpPort, '0.0.0.0', resolve));

  const child = spawn(command[0]!, command.slice(1), {
    stdio: 'inherit',
    env: { ...process.env, [WORLD_ENV]: dir },
  });
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    process.on(signal, () => child.kill(signal));
  }
  const status = await new Promise<number>((resolve) => {
    child.once('error', (err) => {
      process.stderr.write(`egress world: ${command[0]}: ${err.message}\n`);
      resolve(127);
    });
    child.once('exit', (code, signal) =>
      resolve(code ?? 128 + (signal ? constants.signals[signal] : 0)),
    );
  });
  // Exiting ends the pid namespace: the kernel kills what is left, servers included.
  process.exit(status);
}

main().catch((err: unknown) => {
  process.stderr.write(`egress world: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(125);
});
