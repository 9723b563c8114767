/**
 * `mcpworks serve -f <file|dir>... [--port 8080] [--host 127.0.0.1] [--decision-log <file>]
 *  [--nsjail <path>] [--watch] [--allow-runtime-drift]`
 *
 * The embedded default: gateway and sandbox executor in one process, from the same manifests a
 * cluster would get, validated the same way. Fails closed: when the sandbox cannot start, it says
 * why and exits non-zero before listening; so it does when a sandbox runtime is not the version
 * the executor image pins (sandbox-image/runtimes.env), unless --allow-runtime-drift. Decision
 * records go to stdout as JSON lines (or to --decision-log); operational logs and the banner go
 * to stderr.
 */
import type { KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { watch, type FSWatcher } from 'node:fs';
import { createServer } from 'node:http';
import { hostname } from 'node:os';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { loadManifests, type Manifests } from '../../api/manifests.ts';
import type { McpServer } from '../../api/v1alpha1/mcpserver.ts';
import { defaultRuntimePaths } from '../../executor/runtime-files.ts';
import {
  describeDrift,
  loadRuntimePins,
  runtimeDrift,
  runtimeVersions,
  type RuntimeDrift,
} from '../../executor/runtime-pins.ts';
import { createSandboxExecutor } from '../../executor/sandbox-executor.ts';
import {
  createManifestSecretSource,
  reservedManifestSecrets,
  secretEnvProblems,
  type ManifestSecretSource,
} from '../../executor/secrets.ts';
import type { SandboxExecutor } from '../../executor/types.ts';
import { createDecisionRecorder, jsonLineDecisionSink } from '../../gateway/decisions/recorder.ts';
import { createRouter, mcpPathFor } from '../../gateway/http.ts';
import { createGatewayApp, type GatewayApp } from '../../gateway/server.ts';
import { LOOPBACK_HOSTS } from '../../gateway/origin.ts';
import { fairShare, withFairQueue, type FairQueueLimits } from '../../gateway/queue.ts';
import {
  buildSnapshots,
  createStaticSource,
  type StaticSource,
} from '../../gateway/source/static.ts';
import { serverKeyOf } from '../../gateway/source/types.ts';
import { createGatewayMetrics, lastSeqDecisionSink } from '../../gateway/telemetry/metrics.ts';
import { effectiveAuth, policyEngine, snapshotAuthenticatorFactory } from '../../gateway/wiring.ts';
import { systemClock } from '../../shared/clock.ts';
import { isMcpworksError } from '../../shared/errors.ts';
import { createLogger } from '../../shared/logger.ts';
import type { CommandIo } from '../io.ts';
import { readSigningKeyFile } from '../signing-key.ts';

const USAGE = `usage: mcpworks serve -f <file|dir>... [options]

  -f, --filename <path>    manifests (McpServer, AgentPolicy, ClusterAgentPolicy, Secret, ConfigMap); repeatable
  -p, --port <n>           port on the loopback interface (default 8080; 0 picks a free one)
      --host <addr>        listen address (default 127.0.0.1; only loopback addresses are accepted)
      --decision-log <f>   append decision records (JSON lines) to this file instead of stdout
      --audit-signing-key <f>
                           sign every decision record with this Ed25519 private key (PEM PKCS#8,
                           from \`mcpworks audit keygen\`); \`audit verify --public-key\` then tells
                           its records from fabricated ones. A file that is not such a key is refused
      --nsjail <path>      the nsjail binary (default: $MCPWORKS_NSJAIL, else nsjail on PATH)
      --ca-bundle <file>   CA bundle (PEM) that tools with egress trust (default: the system
                           bundle, e.g. /etc/ssl/certs/ca-certificates.crt)
      --packages <dir>     extra python and npm packages for tool code, laid out as an executor
                           image's (<dir>/python from pip install --target, <dir>/node from npm
                           ci); the python and node sandboxes get them read-only
      --allow-origin <o>   a browser origin to accept besides loopback ones; repeatable
  -w, --watch              reload policies, keys, tool code and tools' Secrets when the manifest
                           files change
      --allow-runtime-drift
                           run tool code even when a sandbox runtime (node: the node running
                           mcpworks; /usr/bin/python3; /bin/bash) is not the version the executor
                           image pins (sandbox-image/runtimes.env); refused otherwise
  -h, --help
`;

interface ServeOptions {
  files: string[];
  port: number;
  host: string;
  decisionLog?: string;
  auditSigningKey?: string;
  nsjail: string;
  caBundle?: string;
  allowOrigins: string[];
  watch: boolean;
  allowRuntimeDrift: boolean;
  packages?: string;
}

function parse(argv: string[], io: CommandIo): ServeOptions | string {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        filename: { type: 'string', short: 'f', multiple: true },
        port: { type: 'string', short: 'p', default: '8080' },
        host: { type: 'string', default: '127.0.0.1' },
        'decision-log': { type: 'string' },
        'audit-signing-key': { type: 'string' },
        nsjail: { type: 'string' },
        'ca-bundle': { type: 'string' },
        packages: { type: 'string' },
        'allow-origin': { type: 'string', multiple: true },
        watch: { type: 'boolean', short: 'w', default: false },
        'allow-runtime-drift': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    return (error as Error).message;
  }
  if (values.help) return '';
  const files = values.filename ?? [];
  if (files.length === 0) return 'at least one -f <file|dir> is required';
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    return `--port must be 0..65535, got ${values.port}`;
  const host = values.host;
  if (!['127.0.0.1', '::1', 'localhost'].includes(host)) {
    return `--host must be a loopback address (127.0.0.1, ::1 or localhost): serve is for this machine only`;
  }
  const nsjail = values.nsjail ?? io.env['MCPWORKS_NSJAIL'] ?? 'nsjail';
  const options: ServeOptions = {
    files,
    port,
    host,
    nsjail,
    allowOrigins: values['allow-origin'] ?? [],
    watch: values.watch,
    allowRuntimeDrift: values['allow-runtime-drift'],
  };
  if (values.packages !== undefined) options.packages = resolve(values.packages);
  if (values['decision-log'] !== undefined) options.decisionLog = values['decision-log'];
  if (values['ca-bundle'] !== undefined) options.caBundle = values['ca-bundle'];
  if (values['audit-signing-key'] !== undefined)
    options.auditSigningKey = values['audit-signing-key'];
  return options;
}

/** The published demo key, when a manifest comment carries one (config/samples does). */
async function exampleKey(
  files: readonly string[],
  manifests: Manifests,
): Promise<string | undefined> {
  const { readdir, stat } = await import('node:fs/promises');
  const { join } = await import('node:path');
  const paths: string[] = [];
  for (const f of files) {
    const s = await stat(f).catch(() => undefined);
    if (s?.isDirectory())
      paths.push(...(await readdir(f)).filter((n) => /\.ya?ml$/.test(n)).map((n) => join(f, n)));
    else if (s !== undefined) paths.push(f);
  }
  if (manifests.secrets.length === 0) return undefined;
  for (const p of paths) {
    const match = /Bearer (mcpw_[A-Za-z0-9_-]+)/.exec(await readFile(p, 'utf8'));
    if (match) return match[1];
  }
  return undefined;
}

function exampleArguments(server: McpServer): { tool: string; args: Record<string, unknown> } {
  const tool = server.spec.tools[0]!;
  const schema = tool.inputSchema as {
    properties?: Record<string, { type?: string }>;
    required?: string[];
  };
  const args: Record<string, unknown> = {};
  for (const name of schema.required ?? []) {
    const type = schema.properties?.[name]?.type;
    args[name] =
      type === 'number' || type === 'integer'
        ? 1
        : type === 'boolean'
          ? true
          : 'hello from a sandbox';
  }
  return { tool: tool.name, args };
}

function banner(
  base: string,
  apps: readonly GatewayApp[],
  servers: readonly McpServer[],
  key: string | undefined,
): string {
  const lines = ['', 'mcpworks serve: ready', ''];
  for (const app of apps) lines.push(`  MCP endpoint  ${base}${mcpPathFor(app.serverKey)}`);
  if (apps.length === 1) lines.push(`  MCP endpoint  ${base}/mcp`);
  lines.push(`  health        ${base}/healthz`, `  metrics       ${base}/metrics`, '');
  const server = servers[0]!;
  const { tool, args } = exampleArguments(server);
  const anonymous = server.spec.auth.anonymous.enabled;
  const url = `${base}${apps.length === 1 ? '/mcp' : mcpPathFor(apps[0]!.serverKey)}`;
  const auth = anonymous ? '' : ` -H "authorization: Bearer $KEY"`;
  const h = `-H 'content-type: application/json' -H 'accept: application/json, text/event-stream'${auth}`;
  const init = JSON.stringify({
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: {
      protocolVersion: '2025-06-18',
      capabilities: {},
      clientInfo: { name: 'curl', version: '1' },
    },
  });
  const call = JSON.stringify({
    jsonrpc: '2.0',
    id: 2,
    method: 'tools/call',
    params: { name: tool, arguments: args },
  });
  lines.push('Try it (paste into a shell):', '');
  if (!anonymous) lines.push(`  KEY=${key ?? '<an API key from your Secret>'}`);
  lines.push(
    `  SID=$(curl -si ${url} ${h} -d '${init}' | tr -d '\\r' | awk -F': ' 'tolower($1)=="mcp-session-id"{print $2}')`,
    `  curl -s ${url} ${h} -H "mcp-session-id: $SID" -H 'mcp-protocol-version: 2025-06-18' -d '${call}'`,
    '',
  );
  return lines.join('\n') + '\n';
}

export async function run(argv: string[], io: CommandIo): Promise<number> {
  const options = parse(argv, io);
  if (typeof options === 'string') {
    if (options !== '') io.stderr(`mcpworks serve: ${options}\n\n`);
    io.stderr(USAGE);
    return options === '' ? 0 : 2;
  }
  // Fail closed before anything starts: a bad key never means an unsigned log.
  let signingKey: KeyObject | undefined;
  if (options.auditSigningKey !== undefined) {
    const loaded = await readSigningKeyFile(resolve(io.cwd, options.auditSigningKey));
    if (typeof loaded === 'string') {
      io.stderr(`mcpworks serve: ${loaded}\n`);
      return 1;
    }
    signingKey = loaded;
  }
  const logger = createLogger({ name: 'mcpworks-serve', destination: pino.destination(2) });
  // The decision log: the recorder serializes each record once and this writes the line as is.
  const decisionLog = pino.destination({
    dest: options.decisionLog ?? 1,
    sync: true,
    mkdir: true,
    append: true,
  });

  let manifests: Manifests;
  let built: ReturnType<typeof buildSnapshots>;
  try {
    manifests = await loadManifests(options.files);
    if (manifests.servers.length === 0) {
      io.stderr(`mcpworks serve: no McpServer in ${options.files.join(', ')}\n`);
      return 1;
    }
    built = buildSnapshots(manifests, 1);
  } catch (error) {
    io.stderr(`mcpworks serve: ${isMcpworksError(error) ? error.message : String(error)}\n`);
    return 1;
  }
  for (const warning of built.warnings) io.stderr(`mcpworks serve: warning: ${warning}\n`);
  for (const snapshot of built.snapshots) {
    for (const why of effectiveAuth(snapshot.server.spec.auth, false).dropped) {
      io.stderr(
        `mcpworks serve: warning: ${snapshot.server.metadata.namespace}/${snapshot.server.metadata.name}: ${why}\n`,
      );
    }
  }

  // Tools' secretEnv values come from the Secret manifests, read per call; a reload swaps them.
  const secretSource = createManifestSecretSource(
    manifests.secrets,
    reservedManifestSecrets(manifests.servers),
  );
  for (const problem of await secretEnvProblems(manifests.servers, secretSource))
    io.stderr(`mcpworks serve: warning: ${problem}\n`);

  // Tool code must behave as it will in a cluster: the sandbox runtimes are the image's versions.
  try {
    const paths = defaultRuntimePaths();
    const drift = runtimeDrift(loadRuntimePins(), await runtimeVersions(paths), paths);
    const verdict = runtimeDriftVerdict(drift, options.allowRuntimeDrift);
    if (verdict?.refuse) {
      io.stderr(`mcpworks serve: ${verdict.message}\n`);
      return 1;
    }
    if (verdict) io.stderr(`mcpworks serve: warning: ${verdict.message}\n`);
  } catch (error) {
    io.stderr(`mcpworks serve: ${(error as Error).message}\n`);
    return 1;
  }

  // Fail closed: no sandbox, no server.
  let sandbox: SandboxExecutor;
  const maxConcurrency = Math.max(...manifests.servers.map((s) => s.spec.executor.maxConcurrency));
  try {
    sandbox = await createSandboxExecutor({
      nsjailPath: options.nsjail,
      warmPoolSize: Math.max(...manifests.servers.map((s) => s.spec.executor.warmPoolSize)),
      maxConcurrency,
      executorName: `serve@${hostname()}`,
      secrets: secretSource,
      logger: logger.child({ component: 'executor' }),
      clock: systemClock,
      ...(options.caBundle !== undefined ? { caBundle: options.caBundle } : {}),
      ...(options.packages !== undefined ? { packagesDir: options.packages } : {}),
    });
    await sandbox.probe();
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    io.stderr(`mcpworks serve: the sandbox is unavailable, refusing to run tool code: ${reason}\n`);
    return 1;
  }
  // Bursts wait for a sandbox (bounded) instead of being refused at once, shared fairly: one
  // queue for every server, round-robin across servers, then across each server's callers.
  const executor = withFairQueue(sandbox, serveQueueLimits(maxConcurrency, built.snapshots.length));

  const registry = new Registry();
  const metrics = createGatewayMetrics(registry);
  metrics.observeQueue(() => executor.stats().servers);
  const recorder = createDecisionRecorder({
    sinks: [jsonLineDecisionSink(decisionLog), lastSeqDecisionSink(metrics)],
    clock: systemClock,
    writerId: `serve-${hostname()}-${process.pid}-${Date.now().toString(36)}`,
    onSinkError: (error) => logger.error({ err: error }, 'decision sink failed'),
    ...(signingKey === undefined ? {} : { signingKey }),
  });

  let base = '';
  const sources = new Map<string, StaticSource>();
  const apps = built.snapshots.map((snapshot) => {
    const source = createStaticSource(snapshot);
    sources.set(serverKeyOf(snapshot), source);
    return createGatewayApp({
      source,
      executor,
      authenticatorFactory: snapshotAuthenticatorFactory({
        resourceUrl: (s) => `${base}${mcpPathFor(serverKeyOf(s))}`,
        clock: systemClock,
        logger,
      }),
      policy: policyEngine,
      recorder,
      metrics,
      clock: systemClock,
      logger,
      allowedOrigins: options.allowOrigins,
      allowedHosts: LOOPBACK_HOSTS,
    });
  });
  // Bad auth settings must fail now, not on the first request.
  try {
    for (const snapshot of built.snapshots) {
      snapshotAuthenticatorFactory({
        resourceUrl: () => 'http://127.0.0.1/mcp',
        clock: systemClock,
        logger,
      })(snapshot);
    }
  } catch (error) {
    io.stderr(`mcpworks serve: ${error instanceof Error ? error.message : String(error)}\n`);
    await executor.close();
    return 1;
  }

  // Requests being answered, except long-lived GET streams: a stop waits for these.
  let inFlight = 0;
  let stopping = false;
  const router = createRouter({ apps, registry, logger, ready: () => !stopping });
  const http = createServer({ requestTimeout: 60_000, headersTimeout: 10_000 }, (req, res) => {
    if (req.method !== 'GET') {
      inFlight += 1;
      res.once('close', () => (inFlight -= 1));
    }
    router(req, res);
  });
  try {
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(options.port, options.host, () => resolve());
    });
  } catch (error) {
    io.stderr(
      `mcpworks serve: cannot listen on ${options.host}:${options.port}: ${(error as Error).message}\n`,
    );
    await executor.close();
    return 1;
  }
  const address = http.address() as AddressInfo;
  const hostPart = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  base = `http://${hostPart}:${address.port}`;
  io.stderr(banner(base, apps, manifests.servers, await exampleKey(options.files, manifests)));

  let watchers: FSWatcher[] = [];
  if (options.watch) watchers = startWatching(options.files, sources, secretSource, io, logger);

  return new Promise<number>((resolve) => {
    const stop = async (signal: string) => {
      logger.info({ signal }, 'stopping');
      stopping = true;
      for (const w of watchers) w.close();
      http.close();
      http.closeIdleConnections();
      // Let calls in progress finish (and be recorded) for up to 15 s; new connections are refused.
      const deadline = Date.now() + 15_000;
      while (inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      void Promise.all(apps.map((a) => a.close()))
        .then(() => executor.close())
        .then(() => {
          decisionLog.flush(() => {});
          http.closeAllConnections();
          resolve(0);
        });
    };
    process.once('SIGINT', () => void stop('SIGINT'));
    process.once('SIGTERM', () => void stop('SIGTERM'));
  });
}

/**
 * The fair queue of `mcpworks serve`: as many running calls as the largest
 * `spec.executor.maxConcurrency`, 256 waiting for at most 30 s; each caller (per server) half the
 * slots and 4 × its running share waiting. With several servers, each server may also hold at
 * most half the slots and half the queue, so one server's callers cannot starve another's.
 */
export function serveQueueLimits(maxConcurrency: number, servers: number): FairQueueLimits {
  const limits: FairQueueLimits = {
    maxConcurrent: maxConcurrency,
    maxQueued: 256,
    maxWaitMs: 30_000,
  };
  if (servers > 1) {
    limits.maxConcurrentPerServer = fairShare(limits.maxConcurrent);
    limits.maxQueuedPerServer = fairShare(limits.maxQueued);
  }
  return limits;
}

/**
 * What to say when sandbox runtimes are not at their pins: a refusal naming the versions and how
 * to get the pinned ones, or with --allow-runtime-drift a warning. Nothing when all match.
 */
export function runtimeDriftVerdict(
  drift: readonly RuntimeDrift[],
  allow: boolean,
): { refuse: boolean; message: string } | undefined {
  if (drift.length === 0) return undefined;
  if (allow) return { refuse: false, message: `--allow-runtime-drift: ${describeDrift(drift)}` };
  const node = drift.find((d) => d.runtime === 'node');
  const hint = node
    ? ` The sandbox's node is the node running mcpworks: start mcpworks with Node ${node.pinned}` +
      ' (`make run` does, with the directory scripts/ensure-node.sh prints first on PATH).'
    : '';
  return {
    refuse: true,
    message:
      'the sandbox runtimes are not the versions the executor image runs ' +
      `(sandbox-image/runtimes.env), refusing to run tool code: ${describeDrift(drift)}.${hint}` +
      ' Pass --allow-runtime-drift to serve with these versions anyway.',
  };
}

/** Reloads on change; a broken edit keeps the last good configuration and says why. */
function startWatching(
  files: readonly string[],
  sources: Map<string, StaticSource>,
  secretSource: ManifestSecretSource,
  io: CommandIo,
  logger: ReturnType<typeof createLogger>,
): FSWatcher[] {
  let revision = 1;
  let timer: NodeJS.Timeout | undefined;
  const reload = async () => {
    try {
      const manifests = await loadManifests(files);
      const built = buildSnapshots(manifests, revision + 1);
      revision += 1;
      // Before the snapshots: a tool that gains a secretEnv finds its Secret already there.
      secretSource.replace(manifests.secrets, reservedManifestSecrets(manifests.servers));
      for (const snapshot of built.snapshots) {
        const key = serverKeyOf(snapshot);
        const source = sources.get(key);
        if (source === undefined) {
          io.stderr(`mcpworks serve: ${key} is new: restart to serve it\n`);
          continue;
        }
        source.replace(snapshot);
      }
      for (const warning of built.warnings) io.stderr(`mcpworks serve: warning: ${warning}\n`);
      for (const problem of await secretEnvProblems(manifests.servers, secretSource))
        io.stderr(`mcpworks serve: warning: ${problem}\n`);
      logger.info({ revision }, 'manifests reloaded');
    } catch (error) {
      io.stderr(
        `mcpworks serve: reload failed, keeping the previous configuration: ${(error as Error).message}\n`,
      );
    }
  };
  return files.map((f) =>
    watch(f, () => {
      clearTimeout(timer);
      timer = setTimeout(() => void reload(), 200);
    }),
  );
}
