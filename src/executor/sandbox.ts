/**
 * One single-use sandbox: an nsjail process whose jailed interpreter is started and waits for
 * exactly one call on stdin. `spawnSandbox` + `run` is a cold call; the warm pool spawns ahead
 * and calls `run` later. After `run` the sandbox is gone (process, workspace, cgroup).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Runtime, ToolLimits } from '../api/v1alpha1/mcpserver.ts';
import type { Clock } from '../shared/clock.ts';
import {
  createSandboxCgroup,
  type CgroupRoots,
  type CgroupUsage,
  type SandboxCgroup,
} from './cgroups.ts';
import {
  buildLaunchCommand,
  buildNsjailArgs,
  sandboxCgroupLimits,
  type JailLayout,
  type RootSwitch,
} from './nsjail-config.ts';
import { LOG_CAP_BYTES, monotonicMicros, type SandboxRun } from './protocol.ts';
import type { RuntimeLayout } from './runtime-files.ts';
import { CA_BUNDLE_NAME, EGRESS_SOCKET_NAME, egressEnvironment } from './egress/jail.ts';

export const RESULT_FD = 3;
export const JAIL_LOG_FD = 4;
const LOG_TAIL_BYTES = 8192;
const READY_MARKER = 0x06;

/** Everything a sandbox needs that is fixed for the executor's lifetime. */
export interface SandboxEnvironment {
  nsjailPath: string;
  /** POSIX shell that starts nsjail inside its cgroup on cgroup v1 (`buildLaunchCommand`). */
  shellPath: string;
  seccompPolicyPath: string;
  /** How nsjail enters the jail root (`chroot` where pivot_root is not allowed, in pods). */
  rootSwitch: RootSwitch;
  cgroups: CgroupRoots;
  runtimes: Readonly<Record<Runtime, RuntimeLayout>>;
  bootstraps: Readonly<Record<Runtime, string>>;
  /**
   * Each runtime's jail layout: its prepared read-only root (runtime files, /etc, symlinks) and
   * the device nodes bound on top. Fixed at start-up: nothing is assembled per call.
   */
  layouts: Readonly<Record<Runtime, JailLayout>>;
  /** How egress sandboxes are built; undefined when this executor cannot offer egress. */
  egress?: EgressSandboxEnvironment;
  clock: Clock;
  /** Unique lower-case name for the next sandbox's cgroup. */
  nextName(): string;
  /** Registers background clean-up so that closing the executor can wait for it. */
  track(cleanup: Promise<void>): Promise<void>;
}

/** What egress sandboxes need beyond the others, fixed for the executor's lifetime. */
export interface EgressSandboxEnvironment {
  /** The seccomp variant that admits loopback TCP sockets (egress/jail.ts egressSeccompPolicy). */
  seccompPolicyPath: string;
  /** The CA bundle file bound read-only into each egress jail. */
  caBundle: string;
  /** The executor's private directory; each egress sandbox gets a fresh one inside it. */
  parentDir: string;
}

export interface RunOptions {
  timeoutSeconds: number;
  maxOutputBytes: number;
  signal?: AbortSignal;
}

/** The environment every sandbox starts with; the tool's declared variables are added per call. */
export const BASE_ENV: Readonly<Record<string, string>> = {
  PATH: '/usr/bin:/bin',
  LANG: 'C.UTF-8',
};

/**
 * The jailed command. A warm sandbox's bootstrap gets `prewarm` (it takes a dummy call's path
 * before reporting ready, so the call does not pay first-touch costs); a cold one does not,
 * since its call is already waiting and the dummy would only add work.
 */
function command(
  runtime: Runtime,
  interpreter: string,
  bootstrap: string,
  prewarm: boolean,
): string[] {
  const mode = prewarm ? ['prewarm'] : [];
  switch (runtime) {
    case 'python':
      return [interpreter, '-I', '-S', '-B', '-X', 'utf8', '-c', bootstrap, ...mode];
    case 'node':
      return [interpreter, '-e', bootstrap, ...mode];
    case 'bash':
      return [interpreter, '--noprofile', '--norc', '-c', bootstrap];
  }
}

/** Keeps the last `max` bytes of a stream. */
class Tail {
  private chunks: Buffer[] = [];
  private size = 0;
  private readonly max: number;
  constructor(max: number) {
    this.max = max;
  }
  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size - (this.chunks[0]?.length ?? 0) >= this.max && this.chunks.length > 1) {
      this.size -= this.chunks.shift()!.length;
    }
  }
  text(): string {
    const all = Buffer.concat(this.chunks);
    return all.subarray(Math.max(0, all.length - this.max)).toString('utf8');
  }
}

export interface Sandbox {
  readonly runtime: Runtime;
  readonly limits: ToolLimits;
  /**
   * Egress sandboxes only: the host path where the call's proxy must listen (in the sandbox's
   * private directory, bound at /run/mcpworks inside). Removed with the sandbox.
   */
  readonly egressSocketPath?: string;
  /** Monotonic ms at spawn. */
  readonly spawnedAt: number;
  /** False once the process ended or the sandbox was used or discarded. */
  readonly usable: boolean;
  /** Writes `call` (the stdin bytes encodeCall built for this runtime) and waits for the result. */
  run(call: Buffer, options: RunOptions): Promise<SandboxRun>;
  /** Resolves when the interpreter is up and waiting (or the sandbox died). */
  readonly ready: Promise<void>;
  /** Kills an unused sandbox and removes its cgroup. */
  discard(): Promise<void>;
}

export async function spawnSandbox(
  env: SandboxEnvironment,
  runtime: Runtime,
  limits: ToolLimits,
  backstop: { wallTimeLimitSeconds: number; cpuTimeLimitSeconds: number },
  options: { prewarm?: boolean; egress?: boolean } = {},
): Promise<Sandbox> {
  const layout = env.runtimes[runtime];
  const egress = options.egress === true ? env.egress : undefined;
  if (options.egress === true && egress === undefined)
    throw new Error('this executor cannot build egress sandboxes');
  const cgroup: SandboxCgroup = await createSandboxCgroup(
    env.cgroups,
    env.nextName(),
    sandboxCgroupLimits(limits, env.cgroups.version),
  );
  // The sandbox's private directory (its random name sits in the executor's unlistable egress
  // directory): readable by nsjail's mount step and the jail's uid, which connects to the socket,
  // never writable by them (and bound read-only); the CA bundle is bound over the empty file.
  let egressDir: string | undefined;
  if (egress !== undefined) {
    try {
      egressDir = mkdtempSync(join(egress.parentDir, 'sb-'));
      chmodSync(egressDir, 0o755);
      writeFileSync(join(egressDir, CA_BUNDLE_NAME), '', { mode: 0o644 });
    } catch (error) {
      if (egressDir !== undefined) rmSync(egressDir, { recursive: true, force: true });
      await cgroup.remove().catch(() => undefined);
      throw error;
    }
  }
  const removeEgressDir = () => {
    if (egressDir !== undefined) rmSync(egressDir, { recursive: true, force: true });
  };
  const args = buildNsjailArgs({
    nsjailPath: env.nsjailPath,
    command: command(
      runtime,
      layout.interpreter,
      env.bootstraps[runtime],
      options.prewarm ?? false,
    ),
    layout: env.layouts[runtime],
    limits,
    wallTimeLimitSeconds: backstop.wallTimeLimitSeconds,
    cpuTimeLimitSeconds: backstop.cpuTimeLimitSeconds,
    seccompPolicyPath: egress?.seccompPolicyPath ?? env.seccompPolicyPath,
    cgroup: cgroup.placement,
    env: egress === undefined ? BASE_ENV : { ...BASE_ENV, ...egressEnvironment() },
    passFds: [RESULT_FD],
    logFd: JAIL_LOG_FD,
    hostname: 'sandbox',
    rootSwitch: env.rootSwitch,
    ...(egress !== undefined && egressDir !== undefined
      ? { egress: { hostDir: egressDir, caBundle: egress.caBundle } }
      : {}),
  });

  const launch = buildLaunchCommand(
    { nsjailPath: env.nsjailPath, cgroup: cgroup.placement, logFd: JAIL_LOG_FD },
    args,
    env.shellPath,
  );
  let child: ChildProcess;
  try {
    child = spawn(launch.command, launch.args, {
      stdio: ['pipe', 'pipe', 'pipe', 'pipe', 'pipe'],
      env: {},
      detached: false,
    });
  } catch (error) {
    removeEgressDir();
    await cgroup.remove().catch(() => undefined);
    throw error;
  }
  const spawnedAt = env.clock.monotonicMs();
  const logTail = new Tail(LOG_TAIL_BYTES);
  const jailLog = new Tail(LOG_TAIL_BYTES);
  const resultChunks: Buffer[] = [];
  let resultBytes = 0;
  let keptBytes = 0;
  let maxOutputBytes = Number.POSITIVE_INFINITY;
  let outputExceeded = false;
  let logBytes = 0;
  let logsExceeded = false;
  let used = false;
  let exited = false;
  let onOutputExceeded: (() => void) | undefined;

  const resultStream = (
    runtime === 'bash' ? child.stdout : child.stdio[RESULT_FD]
  ) as Readable | null;
  // python/node end their one JSON frame with a newline (JSON text has none inside): the call is
  // complete then, and the sandbox is killed without waiting for the interpreter and the
  // namespaces to wind down (nsjail keeps its own copy of the channel open until it exits).
  // bash reports its script's exit status on fd 3 ("<status>\n") after closing its own stdout.
  let statusText = '';
  let markStatus: (status: number) => void = () => undefined;
  const statusReported = new Promise<number>((resolve) => {
    markStatus = resolve;
  });
  if (runtime === 'bash') {
    (child.stdio[RESULT_FD] as Readable | null)?.on('data', (chunk: Buffer) => {
      statusText += chunk.toString('latin1');
      const match = /^(\d{1,3})\n/.exec(statusText);
      if (match) markStatus(Number(match[1]));
    });
  }
  let frameUs: number | undefined;
  let markFrameEnd: () => void = () => undefined;
  const frameEnded = new Promise<void>((resolve) => {
    markFrameEnd = resolve;
  });
  resultStream?.on('data', (chunk: Buffer) => {
    resultBytes += chunk.length;
    if (keptBytes < maxOutputBytes) {
      const keep = chunk.subarray(0, Math.min(chunk.length, maxOutputBytes - keptBytes));
      resultChunks.push(keep);
      keptBytes += keep.length;
    }
    if (resultBytes > maxOutputBytes && !outputExceeded) {
      outputExceeded = true;
      onOutputExceeded?.();
    }
    if (runtime !== 'bash' && frameUs === undefined && chunk.includes(0x0a)) {
      frameUs = monotonicMicros();
      markFrameEnd();
    }
  });
  let readySeen = false;
  let markReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => {
    markReady = resolve;
  });
  const pushLog = (chunk: Buffer) => {
    if (logsExceeded) return;
    logBytes += chunk.length;
    logTail.push(chunk);
    if (logBytes > LOG_CAP_BYTES) {
      logsExceeded = true;
      // Stop reading at once: the pipes fill, the tool blocks, the kill ends it.
      child.stderr?.pause();
      if (runtime !== 'bash') child.stdout?.pause();
      kill();
    }
  };
  child.stderr?.on('data', (chunk: Buffer) => {
    // The bootstrap's first stderr byte (0x06) says the interpreter is up and waiting.
    if (!readySeen && chunk[0] === READY_MARKER) {
      readySeen = true;
      markReady();
      if (chunk.length > 1) pushLog(chunk.subarray(1));
      return;
    }
    pushLog(chunk);
  });
  if (runtime !== 'bash') child.stdout?.on('data', pushLog);
  (child.stdio[JAIL_LOG_FD] as Readable | null)?.on('data', (chunk: Buffer) => jailLog.push(chunk));
  child.stdin?.on('error', () => undefined); // EPIPE when the jail died first: reported by the exit status

  const closed = new Promise<{ code: number | null }>((resolve) => {
    let exitCode: number | null = null;
    let settled = false;
    const settle = () => {
      if (!settled) {
        settled = true;
        resolve({ code: exitCode });
      }
    };
    child.on('exit', (code) => {
      exited = true;
      exitCode = code;
      // All pipes normally close with the jail; never wait on one a stray holder keeps open.
      setTimeout(() => {
        for (const stream of [child.stdout, child.stderr, ...child.stdio.slice(3)])
          (stream as Readable | null)?.destroy();
        settle();
      }, 200).unref();
    });
    child.on('close', () => settle());
    child.on('error', () => {
      exited = true;
      settle();
    });
  });

  const kill = () => {
    if (!exited) child.kill('SIGKILL');
  };

  let removal: Promise<void> | undefined;
  const removeCgroup = () => (removal ??= env.track(cgroup.remove().catch(() => undefined)));
  // The private directory goes with the jail (every path out of the sandbox ends in `closed`).
  void env.track(closed.then(() => removeEgressDir()).catch(() => undefined));

  void closed.then(() => markReady());

  return {
    runtime,
    limits,
    ...(egressDir === undefined ? {} : { egressSocketPath: join(egressDir, EGRESS_SOCKET_NAME) }),
    spawnedAt,
    ready,
    get usable() {
      return !used && !exited;
    },
    async discard() {
      used = true;
      kill();
      await closed;
      await removeCgroup();
    },
    async run(call, options) {
      if (used) throw new Error('sandbox already used');
      used = true;
      maxOutputBytes = options.maxOutputBytes;
      const started = env.clock.monotonicMs();
      let timedOut = false;
      let aborted = false;
      onOutputExceeded = kill;
      if (resultBytes > maxOutputBytes) {
        outputExceeded = true;
        kill();
      }
      const timer = setTimeout(() => {
        timedOut = true;
        kill();
      }, options.timeoutSeconds * 1000);
      const onAbort = () => {
        aborted = true;
        kill();
      };
      options.signal?.addEventListener('abort', onAbort, { once: true });
      if (options.signal?.aborted) onAbort();
      const writeUs = monotonicMicros();
      let frame: unknown;
      let countersUs: number | undefined;
      try {
        child.stdin?.end(call);
      } catch {
        // reported through the exit status
      }
      let reportedStatus = 0;
      const early =
        runtime === 'bash'
          ? statusReported.then(async (status) => {
              reportedStatus = status;
              // The script has exited, so all it wrote is already in the stdout pipe (written
              // before the status): one more poll phase reads it. EOF never comes early, since
              // nsjail itself holds a copy of the pipe until the sandbox is gone.
              await new Promise((resolve) => setImmediate(resolve));
              await new Promise((resolve) => setImmediate(resolve));
              return 'frame' as const;
            })
          : frameEnded.then(() => {
              frame = completeFrame(resultChunks, outputExceeded);
              return frame === undefined ? undefined : ('frame' as const);
            });
      const first = await Promise.race([closed.then(() => 'exit' as const), early]);
      let code: number | null;
      let usage: CgroupUsage = {
        memoryLimitHit: false,
        pidsLimitHit: false,
        memoryPeakBytes: undefined,
        pidsPeak: undefined,
      };
      if (first === 'frame') {
        // Complete answer: destroy the sandbox (and anything it left running) in the background.
        clearTimeout(timer);
        kill();
        code = runtime === 'bash' ? reportedStatus : 0;
        // A bash script can report its status while what it started in the background is still
        // running (a fork bomb of `b | b &`): let the kill finish, so the counters and stderr
        // are complete before they decide the outcome.
        if (runtime === 'bash') await closed;
        // The counters still tell whether a limit shaped the answer (a fork bomb's error frame).
        try {
          usage = await cgroup.usage();
        } catch {
          // unreadable counters: the frame alone decides
        }
        countersUs = monotonicMicros();
        void closed.then(removeCgroup);
      } else {
        code = (await closed).code;
        clearTimeout(timer);
        try {
          usage = await cgroup.usage();
        } catch {
          // counters unreadable: limits are still enforced, only the outcome is less specific
        }
        void removeCgroup();
      }
      options.signal?.removeEventListener('abort', onAbort);
      const durationMs = env.clock.monotonicMs() - started;
      return {
        runtime,
        exitCode: code,
        timedOut,
        outputExceeded,
        aborted,
        logsExceeded,
        result: Buffer.concat(resultChunks),
        resultBytes,
        logTail: logTail.text(),
        jailLog: jailLog.text(),
        usage,
        ...(frame === undefined ? {} : { frame }),
        marks: {
          writeUs,
          ...(frameUs === undefined ? {} : { frameUs }),
          ...(countersUs === undefined ? {} : { countersUs }),
        },
        durationMs,
        maxOutputBytes: options.maxOutputBytes,
        timeoutSeconds: options.timeoutSeconds,
        memoryMiB: limits.memoryMiB,
        pids: limits.pids,
      };
    },
  };
}

/**
 * The frame when the result channel holds one whole JSON frame (python/node write exactly one),
 * parsed here once for the classification too; undefined when it is not one.
 */
function completeFrame(chunks: Buffer[], exceeded: boolean): unknown {
  if (exceeded || chunks.length === 0) return undefined;
  try {
    const frame = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { ok?: unknown };
    return typeof frame === 'object' && frame !== null && typeof frame.ok === 'boolean'
      ? frame
      : undefined;
  } catch {
    return undefined;
  }
}
