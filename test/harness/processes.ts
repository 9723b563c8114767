// Child processes of the test harness: each in its own process group, logging to a file, and
// never outliving the test process (an exit/signal hook plus a reaper that survives SIGKILL).
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  readonly logPath: string;
  /** Resolves when the process has exited; never rejects. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  hasExited(): boolean;
  /** Keeps the event loop alive until the process exits (the harness unrefs it otherwise). */
  ref(): void;
}

/** A free TCP port on 127.0.0.1 (closed again before it is returned). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('could not allocate a port'));
      });
    });
  });
}

/** Starts `bin` detached in its own process group with stdout and stderr appended to `logPath`. */
export function startProcess(
  name: string,
  bin: string,
  args: string[],
  logPath: string,
  env: NodeJS.ProcessEnv = process.env,
): ManagedProcess {
  const fd = openSync(logPath, 'a');
  let child: ChildProcess;
  try {
    child = spawn(bin, args, { detached: true, stdio: ['ignore', fd, fd], env });
  } finally {
    closeSync(fd);
  }
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      done = true;
      resolve({ code, signal });
    });
    child.once('error', (err) => {
      done = true;
      writeFileSync(logPath, `\nspawn ${bin} failed: ${err.message}\n`, { flag: 'a' });
      resolve({ code: null, signal: null });
    });
  });
  // The harness keeps no reference that should hold the event loop open.
  child.unref();
  if (child.pid === undefined) {
    // spawn failed synchronously (e.g. ENOENT); 'error' follows.
    return { name, pid: -1, logPath, exited, hasExited: () => true, ref: () => {} };
  }
  return { name, pid: child.pid, logPath, exited, hasExited: () => done, ref: () => child.ref() };
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  if (pid <= 0) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/**
 * SIGTERM to the process group, SIGKILL after `graceMs` (at once when 0); resolves once the
 * leader has exited.
 */
export async function stopProcess(p: ManagedProcess, graceMs = 5000): Promise<void> {
  if (p.pid <= 0) return;
  p.ref();
  if (!p.hasExited() && graceMs > 0) {
    killGroup(p.pid, 'SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      p.exited.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), graceMs);
      }),
    ]);
    clearTimeout(timer);
    if (!timedOut) {
      killGroup(p.pid, 'SIGKILL'); // stragglers in the group
      return;
    }
  }
  killGroup(p.pid, 'SIGKILL');
  await p.exited;
}

/** The last `lines` lines of a log file ('' when it cannot be read). */
export function tail(path: string, lines = 40): string {
  try {
    const text = readFileSync(path, 'utf8');
    return text
      .split('\n')
      .slice(-lines - 1)
      .join('\n');
  } catch {
    return '';
  }
}

/**
 * Everything one harness instance must clean up. Registered instances are killed synchronously
 * on process exit and on SIGINT/SIGTERM/SIGHUP; the reaper covers a SIGKILLed test process.
 */
export class Cleanup {
  readonly dir: string;
  private readonly pidsFile: string;
  private readonly pids: number[] = [];
  private reaper: ChildProcess | undefined;

  constructor(dir: string) {
    this.dir = dir;
    this.pidsFile = `${dir}/.pgids`;
    writeFileSync(this.pidsFile, '');
    live.add(this);
    installHooks();
    this.startReaper();
  }

  track(p: ManagedProcess): void {
    if (p.pid <= 0) return;
    this.pids.push(p.pid);
    writeFileSync(this.pidsFile, this.pids.join('\n') + '\n');
  }

  /** A shell that waits for this process to die, then kills the tracked groups and the dir. */
  private startReaper(): void {
    const script = [
      'parent=$1; dir=$2',
      'while kill -0 "$parent" 2>/dev/null; do sleep 1; done',
      'for p in $(cat "$dir/.pgids" 2>/dev/null); do kill -TERM "-$p" 2>/dev/null; done',
      'sleep 2',
      'for p in $(cat "$dir/.pgids" 2>/dev/null); do kill -KILL "-$p" 2>/dev/null; done',
      'rm -rf -- "$dir"',
    ].join('\n');
    this.reaper = spawn('/bin/sh', ['-c', script, 'reaper', String(process.pid), this.dir], {
      detached: true,
      stdio: 'ignore',
    });
    this.reaper.unref();
  }

  /** Stops the reaper (the caller is about to clean up itself). */
  disarm(): void {
    live.delete(this);
    if (this.reaper?.pid) killGroup(this.reaper.pid, 'SIGKILL');
    this.reaper = undefined;
  }

  /** Synchronous last-resort cleanup, for exit and signal hooks. */
  killNow(): void {
    for (const pid of this.pids) killGroup(pid, 'SIGKILL');
    this.disarm();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const live = new Set<Cleanup>();
let hooksInstalled = false;

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', () => {
    for (const c of [...live]) c.killNow();
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = (): void => {
      for (const c of [...live]) c.killNow();
      process.removeListener(signal, handler);
      // Re-raise so the default action (or another listener) still ends the process.
      process.kill(process.pid, signal);
    };
    process.on(signal, handler);
  }
}
