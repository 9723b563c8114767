/**
 * The in-process executor: every call in a fresh nsjail sandbox (taken from the warm pool when
 * one with exactly the tool's limits is ready, else started cold), with a concurrency limit that
 * refuses rather than queues. Used by `mcpworks serve` and by the executor service.
 */
import { randomBytes } from 'node:crypto';
import {
  accessSync,
  chmodSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statfsSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RUNTIMES, type Runtime, type ToolLimits } from '../api/v1alpha1/mcpserver.ts';
import { systemClock } from '../shared/clock.ts';
import { ErrorCode, McpworksError, isMcpworksError } from '../shared/errors.ts';
import { silentLogger, type Logger } from '../shared/logger.ts';
import {
  egressLogSummary,
  egressRecords,
  egressSeccompPolicy,
  sandboxReportedAttempts,
} from './egress/jail.ts';
import {
  createEgressProxy,
  type EgressAttempt,
  type EgressProxy,
  type Resolver,
} from './egress/proxy.ts';
import {
  createSandboxCgroup,
  detectCgroups,
  prepareCgroupRoots,
  readAppliedLimits,
  removeCgroupsWithPrefix,
  removeStaleCgroups,
} from './cgroups.ts';
import { prepareContainer, runsInUserNamespace } from './container-setup.ts';
import { ETC_FILES } from './etc-files.ts';
import { explainJailFailure } from './startup-problems.ts';
import { cgroupLimits, type JailLayout } from './nsjail-config.ts';
import { packageFiles } from './packages.ts';
import { callTimings, classifyRun, encodeCall, type SandboxRun } from './protocol.ts';
import {
  DEFAULT_RUNTIME_PATHS,
  resolveRuntimeLayout,
  rootSymlinks,
  type RuntimeLayout,
} from './runtime-files.ts';
import {
  buildRuntimeRoot,
  removeRuntimeRoot,
  removeStaleRuntimeRoots,
  verifyRuntimeRoot,
  type RuntimeRootSpec,
} from './runtime-root.ts';
import {
  spawnSandbox,
  type EgressSandboxEnvironment,
  type Sandbox,
  type SandboxEnvironment,
} from './sandbox.ts';
import { parseToolCallRequest } from './request-schema.ts';
import { createRedactor, redactResult, type SecretValue } from './redaction.ts';
import { resolveSecretEnv } from './secrets.ts';
import {
  RefusalReason,
  SandboxOutcome,
  type SandboxExecutor,
  type SandboxExecutorOptions,
  type ResolvedTool,
  type ToolCallRequest,
  type RuntimePaths,
  type ToolCallResult,
} from './types.ts';
import { WarmPool } from './warm-pool.ts';

export const DEFAULT_SECCOMP_POLICY = fileURLToPath(
  new URL('../../sandbox-image/seccomp.kafel', import.meta.url),
);
const BOOTSTRAP_FILES: Record<Runtime, string> = {
  python: 'python.py',
  node: 'node.cjs',
  bash: 'bash.sh',
};

/** Where the system CA bundle usually is (Debian/Ubuntu/Alpine, then Fedora/RHEL). */
export const SYSTEM_CA_BUNDLES = [
  '/etc/ssl/certs/ca-certificates.crt',
  '/etc/pki/tls/certs/ca-bundle.crt',
] as const;

/**
 * TEST ONLY, deliberately a second argument of createSandboxExecutor and not part of
 * SandboxExecutorOptions: no CLI flag, configuration or environment variable reaches it, and
 * `serve` / `executor` never pass it. Tests use it to reach a loopback HTTPS upstream through the
 * real egress proxy (see EgressProxyOptions.testOnlyAllowedAddresses).
 */
export interface SandboxExecutorTestOnlyOptions {
  /** The egress proxy's name resolution (e.g. allowed.test → 127.0.0.1). */
  egressResolve?: Resolver;
  /** Exact addresses the egress proxy treats as public. */
  egressAllowedAddresses?: readonly string[];
}

/** Prefix of the executor's private egress directory (the seccomp variant, per-sandbox dirs). */
const EGRESS_DIR_PREFIX = 'mcpworks-egress-';

/**
 * What egress sandboxes need, prepared once at start: the CA bundle, the seccomp variant
 * written into a fresh private directory (where each egress sandbox gets its own directory).
 * Returns why egress is unavailable instead when it cannot be offered here.
 */
function prepareEgress(
  options: SandboxExecutorOptions,
  seccompPolicyPath: string,
  logger: Logger,
): { egress: EgressSandboxEnvironment } | { unavailable: string } {
  // An explicit bundle was checked when the executor was created (createSandboxExecutor).
  const caBundle = options.caBundle ?? SYSTEM_CA_BUNDLES.find((path) => existsSync(path));
  if (caBundle === undefined) {
    const reason = 'no CA bundle (set --ca-bundle): tools with egress cannot run on this executor';
    logger.warn({ searched: SYSTEM_CA_BUNDLES }, reason);
    return { unavailable: reason };
  }
  let policy: string;
  try {
    policy = egressSeccompPolicy(readFileSync(seccompPolicyPath, 'utf8'));
  } catch (error) {
    const reason = 'the seccomp policy has no egress variant: tools with egress cannot run here';
    logger.warn({ err: error, seccompPolicyPath }, reason);
    return { unavailable: reason };
  }
  const parent = options.runtimeRootParent ?? tmpdir();
  // Named like the runtime roots (`<prefix><pid>-`), so a later executor sweeps it if this one dies.
  removeStaleRuntimeRoots(parent, EGRESS_DIR_PREFIX);
  const parentDir = mkdtempSync(join(parent, `${EGRESS_DIR_PREFIX}${process.pid}-`));
  // Searchable, not listable: nsjail's mount step (not root in the jail's user namespace) must
  // reach each sandbox directory by name; nobody can list the random names.
  chmodSync(parentDir, 0o711);
  const policyPath = join(parentDir, 'seccomp-egress.kafel');
  writeFileSync(policyPath, policy, { mode: 0o644 });
  return { egress: { seccompPolicyPath: policyPath, caBundle, parentDir } };
}

/** Starts nsjail inside its sandbox cgroup on cgroup v1 (see buildLaunchCommand). */
const LAUNCH_SHELL = '/bin/sh';

/** A warm sandbox is replaced after this long unused. */
const WARM_MAX_IDLE_MS = 120_000;
/** The longest tool timeout the API allows (seconds); bounds a warm sandbox's nsjail time limit. */
const MAX_TOOL_TIMEOUT_SECONDS = 300;

/** Limits a call runs with by default (the API's defaults), used to pre-warm each runtime. */
export const DEFAULT_LIMITS: ToolLimits = {
  memoryMiB: 256,
  cpuMillicores: 1000,
  pids: 64,
  maxOutputBytes: 1024 * 1024,
  tmpfsMiB: 64,
};

function loadBootstraps(): Record<Runtime, string> {
  const out = {} as Record<Runtime, string>;
  for (const runtime of RUNTIMES) {
    out[runtime] = readFileSync(
      new URL(`./bootstrap/${BOOTSTRAP_FILES[runtime]}`, import.meta.url),
      'utf8',
    );
  }
  return out;
}

function validateOptions(options: SandboxExecutorOptions): void {
  const warm = options.warmPoolSize ?? 2;
  const concurrency = options.maxConcurrency ?? 8;
  if (!Number.isInteger(warm) || warm < 0 || warm > 64) {
    throw new McpworksError(ErrorCode.InvalidInput, 'warmPoolSize must be an integer in 0..64');
  }
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 256) {
    throw new McpworksError(ErrorCode.InvalidInput, 'maxConcurrency must be an integer in 1..256');
  }
}

function unavailable(reason: string, cause?: unknown): McpworksError {
  return new McpworksError(
    ErrorCode.SandboxUnavailable,
    reason,
    cause === undefined ? {} : { cause },
  );
}

function refusal(outcome: SandboxOutcome, message: string, executor: string): ToolCallResult {
  return {
    outcome,
    isError: true,
    content: [{ type: 'text', text: message }],
    durationMs: 0,
    outputBytes: 0,
    executor,
    message,
  };
}

/** TMPFS_MAGIC (statfs f_type). */
const TMPFS_MAGIC = 0x01021994;

function memoryBacked(path: string): boolean {
  try {
    return statfsSync(path).type === TMPFS_MAGIC;
  } catch {
    return false;
  }
}

interface RuntimeRootSpecs {
  layouts: Record<Runtime, RuntimeLayout>;
  specs: Record<Runtime, RuntimeRootSpec>;
  /** Read-only device nodes bound over each root. */
  readOnlyDevices: string[];
  /** Writable device nodes bound over each root. */
  devices: string[];
}

/**
 * What each runtime's root holds on this host (the same at image build and executor start):
 * with `packagesDir`, python's and node's roots also hold its `python/` and `node/` trees.
 */
async function runtimeRootSpecs(
  runtimes?: Partial<RuntimePaths>,
  packagesDir?: string,
): Promise<RuntimeRootSpecs> {
  const paths = { ...DEFAULT_RUNTIME_PATHS, ...runtimes };
  const layouts = {} as Record<Runtime, RuntimeLayout>;
  for (const runtime of RUNTIMES) layouts[runtime] = await resolveRuntimeLayout(runtime, paths);
  // Read-only device nodes, and /dev/null (writable), bound over each prepared root.
  const readOnlyDevices = ['/dev/zero', '/dev/urandom', '/dev/random'].filter((d) => existsSync(d));
  const devices = ['/dev/null'];
  const symlinks = [
    ...rootSymlinks(),
    { link: '/dev/fd', target: '/proc/self/fd' },
    { link: '/dev/stdin', target: '/proc/self/fd/0' },
    { link: '/dev/stdout', target: '/proc/self/fd/1' },
    { link: '/dev/stderr', target: '/proc/self/fd/2' },
  ];
  const generated = Object.fromEntries(
    Object.entries(ETC_FILES).map(([name, content]) => [`/etc/${name}`, content]),
  );
  const specs = {} as Record<Runtime, RuntimeRootSpec>;
  for (const runtime of RUNTIMES) {
    specs[runtime] = {
      files: [...layouts[runtime].readOnlyBinds, ...packageFiles(packagesDir, runtime)],
      symlinks,
      generated,
      devices: [...readOnlyDevices, ...devices],
    };
  }
  return { layouts, specs, readOnlyDevices, devices };
}

/**
 * Builds each runtime's root at `<dir>/<runtime>` ahead of time (the image build), hard links
 * only: a file that cannot be linked (another filesystem) fails the build rather than being
 * copied, since the executor accepts a prepared root only if its files are the host's inodes.
 * `dir` may exist; the runtime directories must not. `packagesDir` (the image's packages) is
 * part of the roots then, and the executor must be started with the same one. Returns the roots
 * built.
 */
export async function prepareRuntimeRoots(
  dir: string,
  runtimes?: Partial<RuntimePaths>,
  packagesDir?: string,
): Promise<string[]> {
  const { specs } = await runtimeRootSpecs(runtimes, packagesDir);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const built: string[] = [];
  try {
    for (const runtime of RUNTIMES) {
      const root = join(dir, runtime);
      buildRuntimeRoot(specs[runtime], dir, { at: root, allowCopies: false });
      built.push(root);
    }
  } catch (error) {
    for (const root of built) removeRuntimeRoot(root);
    throw error;
  }
  return built;
}

/** Builds the executor; rejects with SandboxUnavailable when sandboxes cannot be enforced here. */
export async function createSandboxExecutor(
  options: SandboxExecutorOptions,
  testOnly: SandboxExecutorTestOnlyOptions = {},
): Promise<SandboxExecutor> {
  validateOptions(options);
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? silentLogger();
  const warmPoolSize = options.warmPoolSize ?? 2;
  const maxConcurrency = options.maxConcurrency ?? 8;
  const executorName = options.executorName ?? 'executor';
  const seccompPolicyPath = options.seccompPolicyPath ?? DEFAULT_SECCOMP_POLICY;

  try {
    accessSync(options.nsjailPath, constants.X_OK);
  } catch (error) {
    throw unavailable(`nsjail is not executable at the configured path`, error);
  }
  if (!existsSync(seccompPolicyPath)) throw unavailable('the seccomp policy file is missing');
  if (options.caBundle !== undefined) {
    // A configured bundle that is not there is a configuration error, not "no egress".
    try {
      accessSync(options.caBundle, constants.R_OK);
    } catch (error) {
      throw unavailable('the CA bundle is not readable at the configured path', error);
    }
  }
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    // nsjail needs CAP_SYS_ADMIN (namespaces, mounts) and write access to the cgroup hierarchy.
    logger.warn('executor is not running as root: nsjail needs CAP_SYS_ADMIN and writable cgroups');
  }

  const cgroups = detectCgroups();
  if (cgroups.version === 'v1') {
    try {
      accessSync(LAUNCH_SHELL, constants.X_OK);
    } catch (error) {
      throw unavailable(`${LAUNCH_SHELL} is needed to start sandboxes on cgroup v1`, error);
    }
  }
  const noPivotRoot = options.noPivotRoot ?? false;
  // In a pod: a clean procfs and writable cgroup mounts; on a plain host nothing to do.
  await prepareContainer({
    cgroups,
    noPivotRoot,
    logger,
    ...(options.cleanProcDir !== undefined ? { cleanProcDir: options.cleanProcDir } : {}),
  });
  await prepareCgroupRoots(cgroups, { userNamespace: runsInUserNamespace() });
  const stale = await removeStaleCgroups(cgroups, clock.now().getTime());
  if (stale > 0)
    logger.info({ removed: stale }, 'removed sandbox cgroups left by a previous executor');
  const { layouts, specs, readOnlyDevices, devices } = await runtimeRootSpecs(
    options.runtimes,
    options.packagesDir,
  );
  const staleRoots = removeStaleRuntimeRoots(options.runtimeRootParent);
  if (staleRoots > 0)
    logger.info({ removed: staleRoots }, 'removed sandbox roots left by a previous executor');
  // Roots built here are removed on close; prepared ones (options.runtimeRoots) never are.
  const roots: string[] = [];
  const jailLayouts = {} as Record<Runtime, JailLayout>;
  const jailLayout = (root: string): JailLayout => ({
    root,
    readOnlyBinds: readOnlyDevices.map((d) => ({ source: d, target: d })),
    symlinks: [],
    etcFiles: {},
    devices,
  });
  if (options.runtimeRoots !== undefined) {
    for (const runtime of RUNTIMES) {
      const root = join(options.runtimeRoots, runtime);
      const problem = verifyRuntimeRoot(specs[runtime], root);
      if (problem !== undefined) {
        throw unavailable(
          `the prepared ${runtime} root at ${root} is refused: ${problem}; rebuild it with ` +
            '`mcpworks executor --prepare-runtime-roots` on this image',
        );
      }
      jailLayouts[runtime] = jailLayout(root);
    }
  } else {
    try {
      let copiedBytes = 0;
      for (const runtime of RUNTIMES) {
        const built = buildRuntimeRoot(specs[runtime], options.runtimeRootParent);
        roots.push(built.path);
        copiedBytes += built.copiedBytes;
        jailLayouts[runtime] = jailLayout(built.path);
      }
      if (copiedBytes > 0) {
        // Hard links were impossible: the runtimes now take this much space where the roots are
        // (memory, when that is a tmpfs). Prepared roots (--runtime-roots) avoid it.
        const parent = options.runtimeRootParent ?? tmpdir();
        logger.warn(
          { copiedBytes, parent, memoryBacked: memoryBacked(parent) },
          'sandbox roots are copies of the runtimes, not hard links (another filesystem); ' +
            "use prepared roots (--runtime-roots) or put runtimeRootParent on the runtimes' filesystem",
        );
      }
    } catch (error) {
      for (const root of roots) removeRuntimeRoot(root);
      throw unavailable(`cannot prepare the sandbox root: ${(error as Error).message}`, error);
    }
  }
  let egressSetup: ReturnType<typeof prepareEgress>;
  try {
    egressSetup = prepareEgress(options, seccompPolicyPath, logger);
  } catch (error) {
    for (const root of roots) removeRuntimeRoot(root);
    throw unavailable(`cannot prepare egress: ${(error as Error).message}`, error);
  }
  const egressDir = 'egress' in egressSetup ? egressSetup.egress.parentDir : undefined;
  const instance = randomBytes(4).toString('hex');
  let counter = 0;
  const cleanups = new Set<Promise<void>>();
  const env: SandboxEnvironment = {
    nsjailPath: options.nsjailPath,
    shellPath: LAUNCH_SHELL,
    seccompPolicyPath,
    rootSwitch: noPivotRoot ? 'chroot' : 'pivot_root',
    cgroups,
    runtimes: layouts,
    bootstraps: loadBootstraps(),
    layouts: jailLayouts,
    ...('egress' in egressSetup ? { egress: egressSetup.egress } : {}),
    clock,
    nextName: () => `${instance}-${(counter += 1)}`,
    track: (cleanup) => {
      cleanups.add(cleanup);
      void cleanup.finally(() => cleanups.delete(cleanup));
      return cleanup;
    },
  };

  const pool = new WarmPool({
    size: warmPoolSize,
    maxKeys: 8,
    maxIdleMs: WARM_MAX_IDLE_MS,
    clock,
    logger,
    spawn: (runtime, limits, egress) =>
      spawnSandbox(
        env,
        runtime,
        limits,
        {
          wallTimeLimitSeconds: Math.ceil(WARM_MAX_IDLE_MS / 1000) + MAX_TOOL_TIMEOUT_SECONDS + 5,
          cpuTimeLimitSeconds: MAX_TOOL_TIMEOUT_SECONDS + 1,
        },
        { prewarm: true, egress },
      ),
  });

  let inFlight = 0;
  let closed = false;
  let probed = false;

  /** `onStartFailure` receives nsjail's own log when the sandbox could not start (the probe). */
  async function runOnce(
    request: ToolCallRequest,
    signal?: AbortSignal,
    onStartFailure?: (jailLog: string) => void,
    fromPool = true,
  ): Promise<ToolCallResult> {
    const started = clock.monotonicMs();
    const { tool } = request;
    const limits = tool.limits;
    const envVars: Record<string, string> = {};
    for (const variable of tool.env ?? []) envVars[variable.name] = variable.value;
    // Read per call (a rotated Secret applies to the next call); refused before any sandbox.
    let secrets: SecretValue[] = [];
    if (tool.secretEnv !== undefined && tool.secretEnv.length > 0) {
      const resolved = await resolveSecretEnv(
        tool.secretEnv,
        request.server.namespace,
        options.secrets,
      );
      if (!resolved.ok) {
        logger.warn(
          {
            callId: request.callId,
            server: `${request.server.namespace}/${request.server.name}`,
            tool: tool.name,
            problem: resolved.message,
          },
          'tool call refused: a secretEnv value is unavailable',
        );
        return refusal(SandboxOutcome.Error, resolved.message, executorName);
      }
      Object.assign(envVars, resolved.env);
      secrets = resolved.values;
    }
    let call: Buffer;
    try {
      call = encodeCall(tool.runtime, { code: tool.code, args: request.arguments, env: envVars });
    } catch (error) {
      // e.g. a NUL character a bash call cannot carry: refused before any sandbox starts
      return refusal(SandboxOutcome.Error, (error as Error).message, executorName);
    }
    const egressRules = tool.egress ?? [];
    const wantsEgress = egressRules.length > 0;
    if (wantsEgress && tool.runtime === 'bash') {
      // The API refuses this (CEL); refused here too, since bash has no relay.
      return refusal(SandboxOutcome.Error, 'bash tools cannot declare egress', executorName);
    }
    if (wantsEgress && 'unavailable' in egressSetup) {
      return refusal(SandboxOutcome.ExecutorUnavailable, egressSetup.unavailable, executorName);
    }
    const acquireStarted = clock.monotonicMs();
    let sandbox: Sandbox | undefined = fromPool
      ? pool.take(tool.runtime, limits, wantsEgress)
      : undefined;
    const kind = sandbox ? 'warm' : 'cold';
    try {
      sandbox ??= await spawnSandbox(
        env,
        tool.runtime,
        limits,
        {
          wallTimeLimitSeconds: tool.timeoutSeconds + 2,
          cpuTimeLimitSeconds: tool.timeoutSeconds + 1,
        },
        { egress: wantsEgress },
      );
    } catch (error) {
      logger.error({ err: error, callId: request.callId }, 'sandbox failed to start');
      onStartFailure?.((error as Error).message);
      return refusal(
        SandboxOutcome.ExecutorUnavailable,
        'the sandbox could not start',
        `${executorName}/${kind}`,
      );
    }
    const acquireMs = Math.round((clock.monotonicMs() - acquireStarted) * 1000) / 1000;
    // One proxy per call, holding this tool's rules and this call's guardrails, on the socket
    // in this sandbox's own directory; nothing else can reach it, so it needs no authentication.
    const attempts: EgressAttempt[] = [];
    let proxy: EgressProxy | undefined;
    if (wantsEgress) {
      try {
        const socketPath = sandbox.egressSocketPath;
        if (socketPath === undefined) throw new Error('the sandbox has no egress directory');
        proxy = createEgressProxy({
          rules: egressRules,
          denied: request.egressDenied ?? [],
          maxDurationMs: tool.timeoutSeconds * 1000,
          onAttempt: (attempt) => attempts.push(attempt),
          logger: logger.child({ callId: request.callId, tool: tool.name }),
          ...(testOnly.egressResolve ? { resolve: testOnly.egressResolve } : {}),
          ...(testOnly.egressAllowedAddresses
            ? { testOnlyAllowedAddresses: testOnly.egressAllowedAddresses }
            : {}),
        });
        await proxy.listen({ path: socketPath });
        // The jail's uid (65534) connects; the directory stays read-only to it.
        chmodSync(socketPath, 0o666);
      } catch (error) {
        await proxy?.close().catch(() => undefined);
        await sandbox.discard();
        pool.callEnded();
        logger.error({ err: error, callId: request.callId }, 'egress proxy failed to start');
        return refusal(
          SandboxOutcome.ExecutorUnavailable,
          'the egress proxy could not start',
          `${executorName}/${kind}`,
        );
      }
    }
    let run: SandboxRun;
    try {
      run = await sandbox.run(call, {
        timeoutSeconds: tool.timeoutSeconds,
        maxOutputBytes: limits.maxOutputBytes,
        ...(signal ? { signal } : {}),
      });
    } finally {
      pool.callEnded();
      // Tunnels still open when the call ends are closed (recorded `proxy-closed`).
      await proxy?.close().catch((error: unknown) => {
        logger.warn({ err: error, callId: request.callId }, 'egress proxy failed to close');
      });
    }
    if (wantsEgress) attempts.push(...sandboxReportedAttempts(run.frame));
    const egress = wantsEgress ? egressRecords(attempts) : undefined;
    if (run.exitCode === 255 && /\[[EF]\]/.test(run.jailLog) && run.resultBytes === 0) {
      // nsjail never sees the call (values travel on stdin), but its log is redacted anyway.
      const jailLog = createRedactor(secrets).redact(run.jailLog, new Map());
      logger.error({ callId: request.callId, jailLog }, 'nsjail failed to start the sandbox');
      onStartFailure?.(run.jailLog);
      return refusal(
        SandboxOutcome.ExecutorUnavailable,
        'the sandbox could not start',
        `${executorName}/${kind}`,
      );
    }
    const core = classifyRun(run);
    const result: ToolCallResult = redactResult(
      {
        ...core,
        durationMs: Math.round((clock.monotonicMs() - started) * 1000) / 1000,
        outputBytes: run.resultBytes,
        executor: `${executorName}/${kind}`,
        timings: { acquireMs, ...callTimings(run) },
        ...(egress === undefined ? {} : { egress: egress.egress }),
        ...(egress !== undefined && egress.omitted > 0 ? { egressOmitted: egress.omitted } : {}),
      },
      secrets,
    );
    logger.info(
      {
        callId: request.callId,
        server: `${request.server.namespace}/${request.server.name}`,
        tool: tool.name,
        runtime: tool.runtime,
        outcome: result.outcome,
        durationMs: result.durationMs,
        sandbox: kind,
        exitCode: run.exitCode,
        memoryPeakBytes: run.usage.memoryPeakBytes,
        pidsPeak: run.usage.pidsPeak,
        timings: result.timings,
        ...(result.redactions === undefined ? {} : { redactions: result.redactions }),
        ...(wantsEgress ? { egress: egressLogSummary(attempts) } : {}),
      },
      'tool call finished',
    );
    return result;
  }

  /**
   * Runs one self-test tool (DEFAULT_LIMITS, no arguments) and tells whether it printed
   * `expected`; otherwise why not, explained from nsjail's log when it did not start.
   */
  async function selfTest(
    tool: Pick<ResolvedTool, 'name' | 'description' | 'runtime' | 'code'> &
      Partial<Pick<ResolvedTool, 'egress'>>,
    expected: string,
    fromPool: boolean,
  ): Promise<{ ok: true } | { ok: false; explained?: string; detail: string; jailLog?: string }> {
    let jailLog: string | undefined;
    const result = await runOnce(
      {
        callId: tool.name,
        server: { namespace: 'mcpworks-system', name: 'probe' },
        caller: 'Executor:probe',
        tool: {
          ...tool,
          inputSchema: { type: 'object' },
          timeoutSeconds: 10,
          limits: DEFAULT_LIMITS,
        },
        arguments: {},
      },
      undefined,
      (log) => (jailLog = log),
      fromPool,
    );
    const text = result.content[0]?.text.trim();
    const explained = jailLog === undefined ? undefined : explainJailFailure(jailLog);
    if (explained === undefined && result.outcome === SandboxOutcome.Ok && text === expected)
      return { ok: true };
    return {
      ok: false,
      ...(explained === undefined ? {} : { explained }),
      detail: `${result.outcome}: ${result.message ?? text ?? ''}`,
      ...(jailLog === undefined ? {} : { jailLog }),
    };
  }

  /**
   * An egress sandbox must start (its seccomp variant compiles, the directory and the CA bundle
   * bind) and see its relay, socket and bundle. When it cannot, egress alone is unavailable:
   * calls of tools with egress are refused with the reason, the others run. Cold, outside the
   * pool, so no egress sandbox is kept warm before a tool needs one.
   */
  async function probeEgress(): Promise<void> {
    const test = await selfTest(
      {
        name: 'probe-egress',
        description: 'egress sandbox self-test',
        runtime: 'python',
        code: [
          'import os, socket',
          'def main(args):',
          '    socket.create_connection(("127.0.0.1", 3128), timeout=5).close()',
          '    ok = os.path.exists(os.environ["MCPWORKS_EGRESS_SOCKET"]) and os.path.getsize(os.environ["SSL_CERT_FILE"]) > 0',
          '    return "egress-ok" if ok else "egress-incomplete"',
        ].join('\n'),
        egress: [{ host: 'probe.invalid' }],
      },
      'egress-ok',
      false,
    );
    if (test.ok) return;
    const reason = `the egress sandbox self-test failed (${test.explained ?? test.detail}): tools with egress cannot run on this executor`;
    logger.error({ jailLog: test.jailLog }, reason);
    egressSetup = { unavailable: reason };
  }

  const executor: SandboxExecutor = {
    get inFlight() {
      return inFlight;
    },
    async probe() {
      // A real sandbox must start, run as the unprivileged id, see no network interface but
      // loopback, and its cgroup must carry the limits we wrote.
      const check = await createSandboxCgroup(
        cgroups,
        `${instance}-probe`,
        cgroupLimits(DEFAULT_LIMITS),
      );
      try {
        const applied = await readAppliedLimits(check);
        const wanted = cgroupLimits(DEFAULT_LIMITS);
        if (applied.memoryBytes !== wanted.memoryBytes || applied.pids !== wanted.pids) {
          throw unavailable('cgroup limits do not apply (written values did not read back)');
        }
      } finally {
        await check.remove().catch(() => undefined);
      }
      const test = await selfTest(
        {
          name: 'probe',
          description: 'sandbox self-test',
          runtime: 'bash',
          code: 'n=$(grep -c : /proc/net/dev); [ "$EUID" = 65534 ] && [ "$n" = 1 ] && [ "$(cat /proc/self/uid_map | tr -s " ")" = " 65534 65534 1" ] && echo sandbox-ok',
        },
        'sandbox-ok',
        true,
      );
      if (!test.ok)
        throw unavailable(test.explained ?? `the sandbox self-test failed (${test.detail})`);
      if ('egress' in egressSetup) await probeEgress();
      probed = true;
      for (const runtime of RUNTIMES) pool.register(runtime, DEFAULT_LIMITS);
    },
    async execute(request, signal) {
      if (closed)
        return refusal(
          SandboxOutcome.ExecutorUnavailable,
          'the executor is shutting down',
          executorName,
        );
      if (!probed)
        return refusal(
          SandboxOutcome.ExecutorUnavailable,
          'the sandbox has not passed its self-test',
          executorName,
        );
      let parsed: ToolCallRequest;
      try {
        parsed = parseToolCallRequest(request);
      } catch (error) {
        throw new McpworksError(ErrorCode.InvalidInput, 'invalid tool call request', {
          cause: error,
        });
      }
      if (inFlight >= maxConcurrency) {
        return {
          ...refusal(
            SandboxOutcome.Overloaded,
            `the executor is at its limit of ${maxConcurrency} concurrent calls; try again later`,
            executorName,
          ),
          refusal: RefusalReason.ExecutorBusy,
        };
      }
      inFlight += 1;
      try {
        return await runOnce(parsed, signal);
      } catch (error) {
        if (isMcpworksError(error)) throw error;
        logger.error({ err: error, callId: parsed.callId }, 'tool call failed inside the executor');
        throw new McpworksError(ErrorCode.Internal, 'internal executor error', { cause: error });
      } finally {
        inFlight -= 1;
      }
    },
    async close() {
      closed = true;
      await pool.close();
      // Wait for running calls' sandboxes to go, then sweep anything of ours left behind.
      for (let i = 0; i < 200 && inFlight > 0; i += 1)
        await new Promise((resolve) => setTimeout(resolve, 25));
      await Promise.all([...cleanups]);
      await removeCgroupsWithPrefix(cgroups, `${instance}-`);
      for (const root of roots) removeRuntimeRoot(root);
      if (egressDir !== undefined) rmSync(egressDir, { recursive: true, force: true });
    },
  };
  Object.defineProperty(executor, 'pool', { value: pool, enumerable: false });
  return executor;
}

/** The warm pool of an executor built here (tests and the benchmark wait for it to fill). */
export function warmPoolOf(executor: SandboxExecutor): WarmPool | undefined {
  return (executor as unknown as { pool?: WarmPool }).pool;
}
