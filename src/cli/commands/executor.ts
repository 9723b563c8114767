/**
 * `mcpworks executor`: the executor workload. Listens for tool calls from its gateway and runs
 * each in a fresh nsjail sandbox. Fails closed: no token → refuses to start; the container cannot
 * be prepared for nsjail or the sandbox self-test fails → exits 1 with the reason in plain words
 * (log, stderr, and the termination message when --termination-message-path is given); until the
 * self-test has passed /readyz is 503 and calls are refused.
 */
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hostname } from 'node:os';
import { createLogger } from '../../shared/logger.ts';
import { createExecutorMetrics } from '../../executor/metrics.ts';
import { PACKAGES_DIR } from '../../executor/packages.ts';
import { createSandboxExecutor, prepareRuntimeRoots } from '../../executor/sandbox-executor.ts';
import { createExecutorService } from '../../executor/service.ts';
import { CLUSTER_SECRETS_DIR, createDirectorySecretSource } from '../../executor/secrets.ts';
import { parseCommandArgs } from '../args.ts';
import type { CommandIo } from '../io.ts';

const USAGE = `usage: mcpworks executor [options]

  --port <n>               listen port (default 8081)
  --host <addr>            listen address (default 0.0.0.0)
  --token-file <path>      file holding the gateway's bearer token (or env MCPWORKS_EXECUTOR_TOKEN)
  --nsjail <path>          nsjail binary (or env MCPWORKS_NSJAIL; default nsjail on PATH)
  --seccomp-policy <path>  Kafel policy (default: the one shipped in sandbox-image/)
  --ca-bundle <file>       CA bundle (PEM) that tools with egress trust, bound read-only into
                           their sandboxes (default: the system bundle, e.g.
                           /etc/ssl/certs/ca-certificates.crt; none: such tools are refused)
  --warm-pool-size <n>     warm sandboxes per runtime and limit set (default 2)
  --max-concurrency <n>    calls at once; more are refused with 429 (default 8)
  --drain-seconds <n>      on SIGTERM, wait this long for running calls (default 30), then up to
                           6 s for the gateways to close their idle connections
  --shutdown-delay-seconds <n>
                           on SIGTERM, first report not ready and keep accepting calls this long,
                           while the gateways learn the pod is going (default 0)
  --runtime-roots <dir>    use the sandbox roots prepared in <dir> (checked at start; refused
                           if they differ from this host's runtimes) instead of building them
  --packages <dir>         extra python and npm packages (<dir>/python, <dir>/node) the python and
                           node sandboxes get read-only (default ${PACKAGES_DIR} when it exists;
                           the prepared roots must have been built with the same directory)
  --no-pivot-root          nsjail enters each jail with chroot instead of pivot_root (pods whose
                           seccomp profile refuses pivot_root; needs CAP_SYS_CHROOT)
  --secrets-dir <dir>      read tools' secretEnv values per call from the Secret volumes in
                           <dir>/<secretName>/<key> (in a pod: ${CLUSTER_SECRETS_DIR}); without
                           it a tool that declares secretEnv fails closed
  --termination-message-path <file>
                           also write a start-up failure here (the pod's terminationMessagePath)
  --prepare-runtime-roots <dir>
                           build the sandbox roots in <dir> (hard links, same filesystem as the
                           runtimes) and exit; run at image build time
`;

/** A bare command name resolved against PATH (nsjail must be a real file we can check). */
function onPath(command: string, path: string | undefined): string {
  if (command.includes('/')) return command;
  for (const dir of (path ?? '').split(':')) {
    if (dir && existsSync(join(dir, command))) return join(dir, command);
  }
  return command;
}

function integer(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer`);
  return n;
}

export async function run(argv: string[], io: CommandIo): Promise<number> {
  const parsed = parseCommandArgs('executor', USAGE, io, {
    args: argv,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      'token-file': { type: 'string' },
      nsjail: { type: 'string' },
      'seccomp-policy': { type: 'string' },
      'ca-bundle': { type: 'string' },
      'warm-pool-size': { type: 'string' },
      'max-concurrency': { type: 'string' },
      'drain-seconds': { type: 'string' },
      'shutdown-delay-seconds': { type: 'string' },
      'runtime-roots': { type: 'string' },
      packages: { type: 'string' },
      'prepare-runtime-roots': { type: 'string' },
      'no-pivot-root': { type: 'boolean' },
      'termination-message-path': { type: 'string' },
      'secrets-dir': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (parsed === undefined) return 2;
  const { values } = parsed;
  if (values['help']) {
    io.stdout(USAGE);
    return 0;
  }
  // The image's packages when it has any: absent, the roots are the runtimes' alone.
  const packagesDir =
    (values['packages'] as string | undefined) ??
    (existsSync(PACKAGES_DIR) ? PACKAGES_DIR : undefined);
  const prepareDir = values['prepare-runtime-roots'] as string | undefined;
  if (prepareDir !== undefined) {
    try {
      for (const root of await prepareRuntimeRoots(prepareDir, undefined, packagesDir))
        io.stdout(`prepared ${root}\n`);
      return 0;
    } catch (error) {
      io.stderr(
        `mcpworks executor: cannot prepare the runtime roots: ${(error as Error).message}\n`,
      );
      return 1;
    }
  }
  let port: number, warmPoolSize: number, maxConcurrency: number, drainSeconds: number;
  let shutdownDelaySeconds: number;
  try {
    port = integer(values['port'] as string | undefined, 8081, 'port');
    warmPoolSize = integer(values['warm-pool-size'] as string | undefined, 2, 'warm-pool-size');
    maxConcurrency = integer(values['max-concurrency'] as string | undefined, 8, 'max-concurrency');
    drainSeconds = integer(values['drain-seconds'] as string | undefined, 30, 'drain-seconds');
    shutdownDelaySeconds = integer(
      values['shutdown-delay-seconds'] as string | undefined,
      0,
      'shutdown-delay-seconds',
    );
  } catch (error) {
    io.stderr(`mcpworks executor: ${(error as Error).message}\n`);
    return 2;
  }

  let token: string | undefined;
  const tokenFile = values['token-file'] as string | undefined;
  try {
    token =
      tokenFile !== undefined
        ? readFileSync(tokenFile, 'utf8').trim()
        : io.env['MCPWORKS_EXECUTOR_TOKEN']?.trim();
  } catch {
    io.stderr('mcpworks executor: cannot read --token-file\n');
    return 2;
  }
  if (!token || token.length < 16) {
    io.stderr(
      'mcpworks executor: refusing to start without a gateway token of at least 16 characters ' +
        '(--token-file or MCPWORKS_EXECUTOR_TOKEN)\n',
    );
    return 2;
  }

  const logger = createLogger({ name: 'mcpworks-executor' });
  const terminationPath = values['termination-message-path'] as string | undefined;
  /** Fail closed: say why in the log, on stderr and in the pod's termination message; exit 1. */
  const refuse = (what: string, error: unknown): number => {
    const message = `mcpworks executor: ${what}: ${(error as Error).message}`;
    logger.error({ err: error }, `${what}; refusing to serve`);
    io.stderr(`${message}\n`);
    if (terminationPath !== undefined) {
      try {
        writeFileSync(terminationPath, `${message}\n`);
      } catch (writeError) {
        logger.warn(
          { err: writeError, path: terminationPath },
          'cannot write the termination message',
        );
      }
    }
    return 1;
  };
  const secretsDir = values['secrets-dir'] as string | undefined;
  if (secretsDir !== undefined) {
    // Absent is allowed (a pod whose Secrets are all optional and missing): calls then fail
    // closed naming the Secret. Something else in its place is a misconfiguration.
    const info = statSync(secretsDir, { throwIfNoEntry: false });
    if (info !== undefined && !info.isDirectory()) {
      io.stderr(`mcpworks executor: --secrets-dir ${secretsDir} is not a directory\n`);
      return 2;
    }
    if (info === undefined)
      logger.warn({ secretsDir }, 'the secrets directory does not exist (yet)');
  }
  const nsjailPath =
    (values['nsjail'] as string | undefined) ?? io.env['MCPWORKS_NSJAIL'] ?? 'nsjail';
  const metrics = createExecutorMetrics();
  let executor;
  try {
    executor = await createSandboxExecutor({
      nsjailPath: onPath(nsjailPath, io.env['PATH']),
      warmPoolSize,
      maxConcurrency,
      executorName: io.env['HOSTNAME'] ?? hostname(),
      logger,
      ...(values['runtime-roots'] ? { runtimeRoots: values['runtime-roots'] as string } : {}),
      ...(packagesDir !== undefined ? { packagesDir } : {}),
      ...(values['seccomp-policy']
        ? { seccompPolicyPath: values['seccomp-policy'] as string }
        : {}),
      noPivotRoot: values['no-pivot-root'] === true,
      ...(secretsDir === undefined ? {} : { secrets: createDirectorySecretSource(secretsDir) }),
      ...(values['ca-bundle'] ? { caBundle: values['ca-bundle'] as string } : {}),
    });
  } catch (error) {
    return refuse('the sandbox is unavailable', error);
  }
  const service = createExecutorService({ executor, token, maxConcurrency, metrics, logger });
  const host = (values['host'] as string | undefined) ?? '0.0.0.0';
  const address = await service.listen(port, host);
  logger.info({ port: address.port, host }, 'executor listening');
  // Print the bound address on stdout so supervisors (and tests using --port 0) can find it.
  io.stdout(`listening on ${address.address}:${address.port}\n`);

  try {
    await executor.probe();
  } catch (error) {
    // No code runs without a working sandbox: stop, so the pod shows why (CrashLoopBackOff).
    await service.drain(0).catch(() => undefined);
    await executor.close().catch(() => undefined);
    return refuse('the sandbox self-test failed', error);
  }
  service.setReady(true);
  logger.info('sandbox self-test passed; ready');

  const stopped = new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal, inFlight: service.inFlight, shutdownDelaySeconds }, 'stopping');
      // Not ready at once (the endpoints drop this pod), but calls still accepted meanwhile: a
      // gateway that resolved the pod a moment ago must not find its port closed.
      service.markStopping();
      // Without a delay, refuse new calls at once: not a timer tick later, when a caller that saw
      // readiness drop may already have sent one.
      const delay =
        shutdownDelaySeconds > 0
          ? new Promise((r) => setTimeout(r, shutdownDelaySeconds * 1000))
          : Promise.resolve();
      void delay
        .then(() => {
          logger.info({ inFlight: service.inFlight }, 'draining');
          return service.drain(drainSeconds * 1000);
        })
        .then(() => executor.close())
        .then(
          () => resolve(0),
          () => resolve(1),
        );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });

  const code = await stopped;
  logger.info('executor stopped');
  return code;
}
