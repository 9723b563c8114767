// The "outside world" of the egress tests: a command runs in fresh network, mount and pid
// namespaces where a few host names (in a bind-mounted /etc/hosts) point at addresses of an
// interface that only exists there, and an HTTPS server on those addresses records every request
// it gets. The world ends with the command: the kernel kills every process of the pid namespace
// when its first process (egress-world-inside.ts) exits, and the namespaces, the interface and
// the mounts go with them. Nothing in the host's namespaces is changed.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cleanup, startProcess, stopProcess, tail } from './processes.ts';
import { repoRoot } from './paths.ts';

/**
 * The world's names and addresses. The public ones are just past TEST-NET-3 (203.0.113.0/24,
 * which the egress proxy refuses as `documentation`): src/executor/egress/addresses.ts classifies
 * them as public, a reader sees at once that they are test addresses, and since they exist only
 * in the world's network namespace, which has no route anywhere, whoever holds them on the
 * internet is never contacted. `example.com` is reserved for documentation (RFC 2606).
 */
export const WORLD = {
  /** The API host the example's tools are allowed to reach. */
  apiHost: 'tickets.example.com',
  apiAddress: '203.0.114.10',
  /** A second public host that no tool is allowed. */
  otherHost: 'billing.example.com',
  otherAddress: '203.0.114.11',
  /** A name that resolves to a private address (DNS rebinding towards the inside). */
  privateHost: 'intranet.example.com',
  privateAddress: '10.77.0.10',
  /** A name that resolves to loopback (where the executor's own services listen). */
  loopbackHost: 'loopback.example.com',
  loopbackAddress: '127.0.0.1',
  /** The interface that carries the addresses (one end of a veth pair, both ends in the world). */
  interface: 'world0',
  peer: 'world1',
  httpsPort: 443,
  httpPort: 80,
  udpPort: 53,
} as const;

/** The world's CA certificate: tools trust it to reach the world's HTTPS server. */
export const WORLD_CA = join(repoRoot, 'test', 'fixtures', 'egress-world', 'ca.crt');
export const WORLD_CERT = join(repoRoot, 'test', 'fixtures', 'egress-world', 'server.crt');
export const WORLD_KEY = join(repoRoot, 'test', 'fixtures', 'egress-world', 'server.key');

/** Set, to the world's directory, in the environment of the command run inside the world. */
export const WORLD_ENV = 'MCPWORKS_EGRESS_WORLD';

const INSIDE = join(repoRoot, 'test', 'harness', 'egress-world-inside.ts');

/** Addresses the world's interface carries (each a /32). */
export const WORLD_INTERFACE_ADDRESSES = [
  WORLD.apiAddress,
  WORLD.otherAddress,
  WORLD.privateAddress,
];

/** The world's /etc/hosts: localhost, and each world name on its own line. */
export function worldHostsFile(): string {
  return [
    '127.0.0.1 localhost',
    '::1 localhost',
    `${WORLD.apiAddress} ${WORLD.apiHost}`,
    `${WORLD.otherAddress} ${WORLD.otherHost}`,
    `${WORLD.privateAddress} ${WORLD.privateHost}`,
    `${WORLD.loopbackAddress} ${WORLD.loopbackHost}`,
    '',
  ].join('\n');
}

/**
 * The host's nsswitch.conf with `hosts: files` only: a name the world does not know fails to
 * resolve instead of reaching the host's resolver (a local caching daemon is reachable over a
 * Unix socket even from an empty network namespace).
 */
export function worldNsswitch(hostNsswitch: string): string {
  const lines = hostNsswitch.split('\n').filter((l) => !/^\s*hosts\s*:/.test(l));
  return [...lines.filter((l, i) => l !== '' || i < lines.length - 1), 'hosts: files', ''].join(
    '\n',
  );
}

export interface RecordedConnection {
  kind: 'connection';
  protocol: 'https' | 'http';
  localAddress: string;
  localPort: number;
  remoteAddress: string;
}

export interface RecordedRequest {
  kind: 'request';
  protocol: 'https' | 'http';
  localAddress: string;
  localPort: number;
  /** The TLS server name the client sent (https only). */
  servername?: string;
  method: string;
  /** The Host header. */
  host: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export interface RecordedDatagram {
  kind: 'udp';
  localPort: number;
  remoteAddress: string;
  bytes: number;
}

export type WorldEvent = RecordedConnection | RecordedRequest | RecordedDatagram;

/** What the world's servers answer; an app module's default export returns it. */
export interface WorldResponse {
  status: number;
  headers?: Record<string, string>;
  /** A string is sent as is, anything else as JSON. */
  body?: unknown;
}
export type WorldApp = (request: RecordedRequest) => WorldResponse | Promise<WorldResponse>;

/** Parses an events.jsonl file (missing: no events). */
export function readWorldEvents(dir: string): WorldEvent[] {
  let text: string;
  try {
    text = readFileSync(join(dir, 'events.jsonl'), 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as WorldEvent);
}

/** For code running inside the world: its directory and what its servers recorded so far. */
export interface InsideWorld {
  dir: string;
  events(): WorldEvent[];
  requests(): RecordedRequest[];
}

/** The world this process runs in, or undefined outside of one. */
export function insideEgressWorld(env: NodeJS.ProcessEnv = process.env): InsideWorld | undefined {
  const dir = env[WORLD_ENV];
  if (!dir) return undefined;
  const events = () => readWorldEvents(dir);
  return {
    dir,
    events,
    requests: () => events().filter((e): e is RecordedRequest => e.kind === 'request'),
  };
}

/** Namespace ids of the world, as /proc/<pid>/ns/* name them (`net:[4026532176]`). */
export interface WorldNamespaces {
  net: string;
  mnt: string;
}

/** What a host looked like before a world ran, to compare with after (see worldLeftovers). */
interface HostSnapshot {
  hosts: string;
  nsswitch: string;
  mounts: string[];
}

export interface WorldRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** stdout and stderr of the world and the command, interleaved. */
  output: string;
  /** Everything the world's servers recorded. */
  events: WorldEvent[];
  /** The world's namespaces (undefined when it failed before it was set up). */
  namespaces: WorldNamespaces | undefined;
  timedOut: boolean;
  /** The host before the run, for worldLeftovers. */
  before: HostSnapshot;
  /** The world's directory on the host (removed when the run returns). */
  dir: string;
}

export interface WorldOptions {
  /** A module whose default export is a WorldApp; default: a JSON echo of the request. */
  app?: string;
  env?: NodeJS.ProcessEnv;
  /** The world (and the command in it) is killed after this long; default 10 minutes. */
  timeoutMs?: number;
}

const mountPoints = (): string[] =>
  readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((p): p is string => !!p);

const readOr = (path: string): string => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
};

function snapshotHost(): HostSnapshot {
  return {
    hosts: readOr('/etc/hosts'),
    nsswitch: readOr('/etc/nsswitch.conf'),
    mounts: mountPoints(),
  };
}

/**
 * Runs `bin args` inside a new world and resolves when the world has ended (the command
 * exited, or `timeoutMs` passed and the world was killed). Every process of the world is gone by
 * then; worldLeftovers checks that nothing else is left either.
 */
export async function runInEgressWorld(
  bin: string,
  args: string[],
  options: WorldOptions = {},
): Promise<WorldRun> {
  const dir = mkdtempSync(join(tmpdir(), 'mcpworks-world-'));
  const cleanup = new Cleanup(dir);
  const before = snapshotHost();
  const env = { ...(options.env ?? process.env) };
  // A nested `node --test` must report for itself, not to the outer runner.
  delete env.NODE_TEST_CONTEXT;
  const world = startProcess(
    'egress-world',
    'unshare',
    [
      '--net',
      '--mount',
      '--propagation',
      'private',
      '--pid',
      '--fork',
      '--mount-proc',
      '--kill-child',
      '--',
      process.execPath,
      INSIDE,
      '--dir',
      dir,
      ...(options.app ? ['--app', options.app] : []),
      '--',
      bin,
      ...args,
    ],
    join(dir, 'world.log'),
    env,
  );
  cleanup.track(world);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void stopProcess(world, 0);
  }, options.timeoutMs ?? 600_000);
  const { code, signal } = await world.exited;
  clearTimeout(timer);
  // Stragglers of the group outside the pid namespace (there should be none).
  await stopProcess(world, 0);
  cleanup.disarm();
  let namespaces: WorldNamespaces | undefined;
  try {
    namespaces = JSON.parse(readFileSync(join(dir, 'namespaces.json'), 'utf8')) as WorldNamespaces;
  } catch {
    namespaces = undefined;
  }
  // The kernel kills the rest of the pid namespace when its first process exits, but not
  // synchronously: wait (bounded) until nothing runs in the world's namespaces any more.
  if (namespaces) {
    const deadline = Date.now() + 10_000;
    while (
      (pidsInNamespace('net', namespaces.net).length > 0 ||
        pidsInNamespace('mnt', namespaces.mnt).length > 0) &&
      Date.now() < deadline
    ) {
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  const run: WorldRun = {
    code,
    signal,
    output: tail(join(dir, 'world.log'), 100_000),
    events: readWorldEvents(dir),
    namespaces,
    timedOut,
    before,
    dir,
  };
  rmSync(dir, { recursive: true, force: true });
  return run;
}

/** Every pid whose namespace `kind` is `id`. */
function pidsInNamespace(kind: 'net' | 'mnt', id: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readlinkSync(`/proc/${entry}/ns/${kind}`) === id) pids.push(Number(entry));
    } catch {
      // gone, or a kernel thread
    }
  }
  return pids;
}

/**
 * What a finished world left on the host: processes in its namespaces, its interfaces, a change
 * to /etc/hosts or /etc/nsswitch.conf, new mounts, its directory. Empty when it cleaned up.
 */
export function worldLeftovers(run: WorldRun): string[] {
  const problems: string[] = [];
  if (!run.namespaces) problems.push('the world never reported its namespaces');
  else {
    for (const kind of ['net', 'mnt'] as const) {
      const pids = pidsInNamespace(kind, run.namespaces[kind]);
      if (pids.length > 0) problems.push(`processes left in ${run.namespaces[kind]}: ${pids}`);
    }
  }
  const links = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' });
  for (const name of [WORLD.interface, WORLD.peer]) {
    if (new RegExp(`^\\d+: ${name}[@:]`, 'm').test(links)) problems.push(`interface ${name} left`);
  }
  const after = snapshotHost();
  if (after.hosts !== run.before.hosts) problems.push('/etc/hosts changed on the host');
  if (after.nsswitch !== run.before.nsswitch) problems.push('/etc/nsswitch.conf changed');
  // Only the points the world mounts over: other tests on the machine may mount elsewhere.
  const ours = (m: string) =>
    ['/etc/hosts', '/etc/nsswitch.conf', '/proc'].includes(m) || m.startsWith(run.dir);
  const points = (mounts: string[]) => mounts.filter(ours).join('\n');
  if (points(after.mounts) !== points(run.before.mounts)) {
    problems.push(`mounts changed on the host: ${after.mounts.filter(ours).join(', ')}`);
  }
  if (existsSync(run.dir)) problems.push(`${run.dir} left`);
  return problems;
}

/**
 * Runs a test file with `node --test` inside a world. The world's test files run themselves
 * this way: outside a world (insideEgressWorld() is undefined) they define one test that calls
 * this and checks the run; inside, their real tests.
 */
export async function runTestFileInWorld(
  file: string,
  options: WorldOptions = {},
): Promise<WorldRun> {
  return await runInEgressWorld(
    process.execPath,
    ['--test', '--test-reporter=spec', '--test-concurrency=1', file],
    options,
  );
}

/** The totals a spec reporter printed at the end of `output` (missing ones are -1). */
export function specTotals(
  output: string,
): Record<'tests' | 'pass' | 'fail' | 'skipped' | 'todo' | 'cancelled', number> {
  const total = (name: string) => {
    const all = [...output.matchAll(new RegExp(`^ℹ ${name} (\\d+)$`, 'gm'))];
    return all.length === 0 ? -1 : Number(all.at(-1)![1]);
  };
  return {
    tests: total('tests'),
    pass: total('pass'),
    fail: total('fail'),
    skipped: total('skipped'),
    todo: total('todo'),
    cancelled: total('cancelled'),
  };
}

/** The inner run's result lines (✔ / ✖ and a name), to repeat as the outer test's diagnostics. */
export function specResultLines(output: string): string[] {
  return output.split('\n').filter((l) => /^\s*[✔✖] /.test(l));
}
