/**
 * `mcpworks gateway`: the gateway workload as the controller deploys it (one per McpServer).
 * Configuration comes from the cluster (src/gateway/source/kubernetes.ts: the McpServer, its
 * policies, its API-key Secret, watched read-only), tool calls go to the server's executor
 * Service with the per-server token, ServiceAccount tokens are checked by TokenReview.
 */
import { randomBytes, type KeyObject } from 'node:crypto';
import { createServer } from 'node:http';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { KubeConfig } from '@kubernetes/client-node';
import type { McpServer } from '../../api/v1alpha1/mcpserver.ts';
import { createExecutorClient } from '../../executor/client.ts';
import { kubeTokenReviewer } from '../../gateway/auth/kube-tokenreviewer.ts';
import { createDecisionRecorder, jsonLineDecisionSink } from '../../gateway/decisions/recorder.ts';
import { createRouter, mcpPathFor } from '../../gateway/http.ts';
import { createGatewayApp } from '../../gateway/server.ts';
import { withFairQueue, type FairQueueLimits } from '../../gateway/queue.ts';
import { createKubernetesSource } from '../../gateway/source/kubernetes.ts';
import { createEventAggregator, startEventFlusher } from '../../gateway/telemetry/events.ts';
import { createEventWith, createKubeEventPublisher } from '../../gateway/telemetry/kube-events.ts';
import { createGatewayMetrics, lastSeqDecisionSink } from '../../gateway/telemetry/metrics.ts';
import { policyEngine, snapshotAuthenticatorFactory } from '../../gateway/wiring.ts';
import { createKubeClient } from '../../k8s/client.ts';
import { systemClock } from '../../shared/clock.ts';
import { gracefulClose } from '../../shared/graceful-http.ts';
import { createLogger } from '../../shared/logger.ts';
import { parseCommandArgs } from '../args.ts';
import type { CommandIo } from '../io.ts';
import { readSigningKeyFile } from '../signing-key.ts';

const USAGE = `usage: mcpworks gateway [options]

  --namespace <ns>      namespace of the McpServer (env MCPWORKS_SERVER_NAMESPACE)
  --name <name>         name of the McpServer (env MCPWORKS_SERVER_NAME)
  --port <n>            listen port (env MCPWORKS_PORT, default 8080)
  --host <addr>         listen address (default 0.0.0.0)
  --executor-url <url>  executor Service (env MCPWORKS_EXECUTOR_URL)
  --public-url <url>    scheme://host[:port] clients use (resource metadata; default from Host)
  --kubeconfig <file>   default: in-cluster, else $KUBECONFIG
  --audit-signing-key <file>
                        sign every decision record with this Ed25519 private key (PEM PKCS#8;
                        the operator mounts spec.audit.signingKeySecretRef here). A file that
                        is not such a key stops the gateway before it serves anything
  --shutdown-delay-seconds <n>
                        on SIGTERM, keep accepting requests this long before closing (default 0):
                        the Service stops sending new connections only once kube-proxy has seen
                        the pod terminating; the operator sets 5 in gateway pods
  --drain-seconds <n>   then wait this long at most (default 20) for running calls to be
                        answered and for clients to close their idle connections (each answer
                        from then on closes its connection); what is left after it is cut
  The executor token comes from env MCPWORKS_EXECUTOR_TOKEN (the controller's Secret).
`;

export async function run(argv: string[], io: CommandIo): Promise<number> {
  const parsed = parseCommandArgs('gateway', USAGE, io, {
    args: argv,
    options: {
      namespace: { type: 'string' },
      name: { type: 'string' },
      port: { type: 'string' },
      host: { type: 'string', default: '0.0.0.0' },
      'executor-url': { type: 'string' },
      'public-url': { type: 'string' },
      kubeconfig: { type: 'string' },
      'audit-signing-key': { type: 'string' },
      'shutdown-delay-seconds': { type: 'string' },
      'drain-seconds': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (parsed === undefined) return 2;
  const { values } = parsed;
  if (values.help) {
    io.stdout(USAGE);
    return 0;
  }
  const namespace = values.namespace ?? io.env['MCPWORKS_SERVER_NAMESPACE'];
  const name = values.name ?? io.env['MCPWORKS_SERVER_NAME'];
  const executorUrl = values['executor-url'] ?? io.env['MCPWORKS_EXECUTOR_URL'];
  const executorToken = io.env['MCPWORKS_EXECUTOR_TOKEN']?.trim();
  const port = Number(values.port ?? io.env['MCPWORKS_PORT'] ?? 8080);
  const missing = [
    !namespace && '--namespace',
    !name && '--name',
    !executorUrl && '--executor-url',
    !executorToken && 'MCPWORKS_EXECUTOR_TOKEN',
  ].filter(Boolean);
  if (missing.length > 0) {
    io.stderr(`mcpworks gateway: missing ${missing.join(', ')}\n\n${USAGE}`);
    return 2;
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    io.stderr('mcpworks gateway: --port must be 0..65535\n');
    return 2;
  }
  const shutdownDelaySeconds = Number(values['shutdown-delay-seconds'] ?? 0);
  if (!Number.isInteger(shutdownDelaySeconds) || shutdownDelaySeconds < 0) {
    io.stderr('mcpworks gateway: --shutdown-delay-seconds must be a non-negative integer\n');
    return 2;
  }
  const drainSeconds = Number(values['drain-seconds'] ?? 20);
  if (!Number.isInteger(drainSeconds) || drainSeconds < 0) {
    io.stderr('mcpworks gateway: --drain-seconds must be a non-negative integer\n');
    return 2;
  }

  // Fail closed before touching the cluster: a bad key never means an unsigned log.
  let signingKey: KeyObject | undefined;
  if (values['audit-signing-key'] !== undefined) {
    const loaded = await readSigningKeyFile(resolve(io.cwd, values['audit-signing-key']));
    if (typeof loaded === 'string') {
      io.stderr(`mcpworks gateway: ${loaded}\n`);
      return 1;
    }
    signingKey = loaded;
  }

  const logger = createLogger({ name: 'mcpworks-gateway' });
  const kubeConfig = new KubeConfig();
  try {
    if (values.kubeconfig) kubeConfig.loadFromFile(values.kubeconfig);
    else kubeConfig.loadFromDefault();
  } catch (error) {
    io.stderr(
      `mcpworks gateway: cannot load the Kubernetes configuration: ${(error as Error).message}\n`,
    );
    return 1;
  }
  const client = createKubeClient(kubeConfig);
  const source = createKubernetesSource({
    client,
    namespace: namespace as string,
    name: name as string,
    logger,
  });
  try {
    await source.start();
  } catch (error) {
    // Fail closed: without its configuration the gateway serves nothing.
    io.stderr(`mcpworks gateway: ${(error as Error).message}\n`);
    await source.stop();
    return 1;
  }

  const registry = new Registry();
  const metrics = createGatewayMetrics(registry);
  // The decision log: the recorder serializes each record once and this writes the line as is.
  const decisionLog = pino.destination({ dest: 1, sync: false });
  const recorder = createDecisionRecorder({
    sinks: [jsonLineDecisionSink(decisionLog), lastSeqDecisionSink(metrics)],
    clock: systemClock,
    writerId: `${io.env['HOSTNAME'] ?? hostname()}-${randomBytes(4).toString('hex')}`,
    onSinkError: (error) => logger.error({ err: error }, 'decision sink failed'),
    ...(signingKey === undefined ? {} : { signingKey }),
  });
  const serverKey = `${namespace}/${name}`;
  // Denials and failures as Kubernetes Events, aggregated per (object, reason) and rate-limited.
  const events = createEventAggregator({
    publisher: createKubeEventPublisher({
      createEvent: createEventWith(client),
      instance: io.env['HOSTNAME'] ?? hostname(),
    }),
    clock: systemClock,
    logger,
  });
  const stopEvents = startEventFlusher(events);
  const publicUrl = values['public-url'];
  // Fair backpressure in front of the executor Service (its 429 stays the backstop); the limits
  // follow the McpServer's executor spec as it changes.
  const executor = withFairQueue(
    createExecutorClient({
      url: executorUrl as string,
      token: executorToken as string,
      logger,
      clock: systemClock,
    }),
    gatewayQueueLimits(source.current().server),
  );
  const unsubscribeLimits = source.onChange((snapshot) =>
    executor.configure(gatewayQueueLimits(snapshot.server)),
  );
  metrics.observeQueue(() => executor.stats().servers);
  const app = createGatewayApp({
    source,
    executor,
    authenticatorFactory: snapshotAuthenticatorFactory({
      resourceUrl: () =>
        `${publicUrl ?? `http://${name}-gateway.${namespace}.svc:${port}`}${mcpPathFor(serverKey)}`,
      tokenReviewer: kubeTokenReviewer(kubeConfig),
      clock: systemClock,
      logger,
    }),
    policy: policyEngine,
    recorder,
    metrics,
    events,
    // Several replicas behind a Service without affinity: no per-process sessions.
    sessionMode: 'stateless',
    clock: systemClock,
    logger,
    ...(publicUrl ? { publicBaseUrl: publicUrl } : {}),
  });
  const http = createServer(
    { requestTimeout: 60_000, headersTimeout: 10_000 },
    createRouter({ apps: [app], registry, logger }),
  );
  const closer = gracefulClose(http);
  try {
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(port, values.host, () => resolve());
    });
  } catch (error) {
    io.stderr(
      `mcpworks gateway: cannot listen on ${values.host}:${port}: ${(error as Error).message}\n`,
    );
    await source.stop();
    return 1;
  }
  logger.info({ server: serverKey, port }, 'gateway listening');

  return new Promise<number>((resolve) => {
    const close = () => {
      // Still serving: a call running now is answered, and so is one a client writes on a
      // connection it holds (cutting an idle connection could lose that call to a reset). Every
      // answer from now on closes its connection; clients close their idle ones themselves.
      closer.beginClosing();
      logger.info({ openConnections: closer.openConnections, drainSeconds }, 'draining');
      void closer
        .connectionsClosed(drainSeconds * 1000)
        .then(() => {
          unsubscribeLimits();
          return app.close();
        })
        .then(() => stopEvents())
        .then(() => source.stop())
        .then(() => {
          decisionLog.flush(() => {});
          if (closer.openConnections > 0)
            logger.warn({ openConnections: closer.openConnections }, 'cutting open connections');
          return closer.closeNow();
        })
        .then(() => resolve(0));
    };
    const stop = (signal: string) => {
      logger.info({ signal, shutdownDelaySeconds }, 'stopping');
      if (shutdownDelaySeconds === 0) close();
      else setTimeout(close, shutdownDelaySeconds * 1000);
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
}

/**
 * One gateway replica's share of the executor pods' slots: executor replicas ×
 * `maxConcurrency`, divided among the gateway replicas (rounded up, at least 1), with 32 waiting
 * per slot (at most 1024) for at most 30 s; per caller the fair queue's defaults.
 */
export function gatewayQueueLimits(server: McpServer): FairQueueLimits {
  const { gateway, executor } = server.spec;
  const maxConcurrent = Math.max(
    1,
    Math.ceil((executor.replicas * executor.maxConcurrency) / Math.max(1, gateway.replicas)),
  );
  return { maxConcurrent, maxQueued: Math.min(1024, 32 * maxConcurrent), maxWaitMs: 30_000 };
}
