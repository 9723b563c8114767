/**
 * `mcpworks controller`: the operator. Wires the real Kubernetes client, clock, logger and
 * metrics into createController; serves /healthz and /readyz on the probe address and /metrics
 * on the metrics address; stops gracefully on SIGTERM / SIGINT (releasing the lease).
 */
import { hostname } from 'node:os';
import {
  EXECUTOR_SECURITY_MODES,
  ExecutorSecurityModeSchema,
} from '../../api/v1alpha1/mcpserver.ts';
import { createController } from '../../controller/manager.ts';
import { DEFAULT_EXECUTOR_DNS, parseDnsPeer } from '../../controller/executor-egress.ts';
import { createControllerMetrics } from '../../controller/metrics.ts';
import { parseBindAddress, startHttpServer } from '../../controller/http-server.ts';
import { loadKubeConnection, type KubeConnection } from '../../k8s/kubeconfig.ts';
import { createLogger } from '../../shared/logger.ts';
import { parseCommandArgs } from '../args.ts';
import type { CommandIo } from '../io.ts';

const USAGE = `usage: mcpworks controller [options]

  --kubeconfig <file>                 kubeconfig (default: $KUBECONFIG, else in-cluster)
  --leader-elect[=true|false]         elect a leader on a Lease (default false)
  --leader-election-namespace <ns>    namespace of the Lease (default $POD_NAMESPACE)
  --leader-election-id <name>         name of the Lease (default mcpworks-controller)
  --lease-duration <seconds>          (default 15)
  --renew-deadline <seconds>          (default 10)
  --retry-period <seconds>            (default 2)
  --metrics-bind-address <addr>       /metrics, [host]:port or 0 to disable (default :8080)
  --health-probe-bind-address <addr>  /healthz and /readyz (default :8081)
  --concurrency <n>                   reconciles at once per kind (default 32)
  --max-requests-in-flight <n>        API requests sent at once; more wait in the controller
                                      (default no limit; Lease renewals and watches not counted)
  --resync-period <seconds>           reconcile everything this often (default 600)
  --gateway-image <image>             (default $MCPWORKS_GATEWAY_IMAGE)
  --executor-image <image>            (default $MCPWORKS_EXECUTOR_IMAGE)
  --executor-security-mode <mode>     Standard | UserNamespace | Privileged: executor pods of
                                      McpServers that set none (default
                                      $MCPWORKS_EXECUTOR_SECURITY_MODE, else Standard)
  --executor-dns-namespace <ns>       namespace of the cluster DNS pods that executors with
                                      tool egress may query (default
                                      $MCPWORKS_EXECUTOR_DNS_NAMESPACE, else kube-system)
  --executor-dns-pod-labels <k=v,..>  labels of those pods (default
                                      $MCPWORKS_EXECUTOR_DNS_POD_LABELS, else k8s-app=kube-dns)
  --log-level <level>                 (default info)
`;

export async function run(argv: string[], io: CommandIo): Promise<number> {
  const parsed = parseCommandArgs('controller', USAGE, io, {
    args: argv,
    options: {
      kubeconfig: { type: 'string' },
      'leader-elect': { type: 'string', default: 'false' },
      'leader-election-namespace': { type: 'string' },
      'leader-election-id': { type: 'string', default: 'mcpworks-controller' },
      'lease-duration': { type: 'string', default: '15' },
      'renew-deadline': { type: 'string', default: '10' },
      'retry-period': { type: 'string', default: '2' },
      'metrics-bind-address': { type: 'string', default: ':8080' },
      'health-probe-bind-address': { type: 'string', default: ':8081' },
      concurrency: { type: 'string', default: '32' },
      'max-requests-in-flight': { type: 'string' },
      'resync-period': { type: 'string', default: '600' },
      'gateway-image': { type: 'string' },
      'executor-image': { type: 'string' },
      'executor-security-mode': { type: 'string' },
      'executor-dns-namespace': { type: 'string' },
      'executor-dns-pod-labels': { type: 'string' },
      'log-level': { type: 'string', default: 'info' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (parsed === undefined) return 2;
  const { values } = parsed;
  if (values.help) {
    io.stdout(USAGE);
    return 0;
  }
  const seconds = (flag: string, value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0)
      throw new Error(`--${flag} must be a positive number of seconds`);
    return n;
  };
  let metricsBind, probeBind, leaseDuration, renewDeadline, retryPeriod, resync, concurrency;
  let maxRequestsInFlight;
  try {
    metricsBind = parseBindAddress(values['metrics-bind-address']);
    probeBind = parseBindAddress(values['health-probe-bind-address']);
    leaseDuration = seconds('lease-duration', values['lease-duration']);
    renewDeadline = seconds('renew-deadline', values['renew-deadline']);
    retryPeriod = seconds('retry-period', values['retry-period']);
    resync = seconds('resync-period', values['resync-period']);
    concurrency = Number(values.concurrency);
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 256)
      throw new Error('--concurrency must be 1..256');
    const inFlight = values['max-requests-in-flight'];
    maxRequestsInFlight = inFlight === undefined ? undefined : Number(inFlight);
    if (
      maxRequestsInFlight !== undefined &&
      (!Number.isInteger(maxRequestsInFlight) ||
        maxRequestsInFlight < 1 ||
        maxRequestsInFlight > 4096)
    )
      throw new Error('--max-requests-in-flight must be 1..4096');
    if (!['true', 'false'].includes(values['leader-elect']))
      throw new Error('--leader-elect must be true or false');
  } catch (error) {
    io.stderr(`mcpworks controller: ${(error as Error).message}\n`);
    return 2;
  }
  const securityModeValue =
    values['executor-security-mode'] ?? io.env['MCPWORKS_EXECUTOR_SECURITY_MODE'];
  const securityMode = ExecutorSecurityModeSchema.safeParse(securityModeValue ?? 'Standard');
  if (!securityMode.success) {
    io.stderr(
      `mcpworks controller: --executor-security-mode must be one of ${EXECUTOR_SECURITY_MODES.join(', ')}\n`,
    );
    return 2;
  }
  let executorDns;
  try {
    executorDns = parseDnsPeer(
      values['executor-dns-namespace'] ??
        io.env['MCPWORKS_EXECUTOR_DNS_NAMESPACE'] ??
        DEFAULT_EXECUTOR_DNS.namespace,
      values['executor-dns-pod-labels'] ??
        io.env['MCPWORKS_EXECUTOR_DNS_POD_LABELS'] ??
        Object.entries(DEFAULT_EXECUTOR_DNS.podLabels)
          .map(([k, v]) => `${k}=${v}`)
          .join(','),
    );
  } catch (error) {
    io.stderr(`mcpworks controller: --executor-dns-*: ${(error as Error).message}\n`);
    return 2;
  }
  const leaderElect = values['leader-elect'] === 'true';
  const leaseNamespace = values['leader-election-namespace'] ?? io.env['POD_NAMESPACE'];
  if (leaderElect && !leaseNamespace) {
    io.stderr(
      'mcpworks controller: --leader-elect=true needs --leader-election-namespace or $POD_NAMESPACE\n',
    );
    return 2;
  }

  const logger = createLogger({ name: 'mcpworks-controller', level: values['log-level'] });
  let kubeConfig: KubeConnection;
  try {
    kubeConfig = loadKubeConnection({ kubeconfig: values.kubeconfig, env: io.env });
  } catch (error) {
    io.stderr(
      `mcpworks controller: cannot load the Kubernetes configuration: ${(error as Error).message}\n`,
    );
    return 1;
  }
  const metrics = createControllerMetrics({ defaultMetrics: true });
  const identity = `${io.env['POD_NAME'] ?? hostname()}_${process.pid}`;
  const gatewayImage = values['gateway-image'] ?? io.env['MCPWORKS_GATEWAY_IMAGE'];
  const executorImage = values['executor-image'] ?? io.env['MCPWORKS_EXECUTOR_IMAGE'];
  const controller = createController({
    kubeConfig,
    logger,
    metrics,
    concurrency,
    ...(maxRequestsInFlight !== undefined ? { maxRequestsInFlight } : {}),
    resyncMs: resync * 1000,
    workloads: {
      ...(gatewayImage ? { gatewayImage } : {}),
      ...(executorImage ? { executorImage } : {}),
      executorSecurityMode: securityMode.data,
      executorDns,
    },
    ...(leaderElect
      ? {
          leaderElection: {
            namespace: leaseNamespace as string,
            name: values['leader-election-id'],
            identity,
            leaseDurationSeconds: Math.ceil(leaseDuration),
            renewDeadlineMs: renewDeadline * 1000,
            retryPeriodMs: retryPeriod * 1000,
          },
        }
      : {}),
  });

  const servers: { close(): Promise<void> }[] = [];
  try {
    if (probeBind) {
      const probes = await startHttpServer(probeBind, {
        '/healthz': async () =>
          controller.healthy()
            ? { status: 200, body: 'ok\n' }
            : { status: 503, body: 'leadership lost\n' },
        '/readyz': async () =>
          controller.ready()
            ? { status: 200, body: 'ok\n' }
            : { status: 503, body: 'caches not synced\n' },
      });
      servers.push(probes);
      logger.info({ port: probes.port }, 'probes listening');
    }
    if (metricsBind) {
      const m = await startHttpServer(metricsBind, {
        '/metrics': async () => ({
          status: 200,
          body: await metrics.registry.metrics(),
          contentType: metrics.registry.contentType,
        }),
      });
      servers.push(m);
      logger.info({ port: m.port }, 'metrics listening');
    }
  } catch (error) {
    io.stderr(`mcpworks controller: cannot listen: ${(error as Error).message}\n`);
    await Promise.all(servers.map((s) => s.close()));
    return 1;
  }

  return new Promise<number>((resolve) => {
    let exiting = false;
    const shutdown = async (code: number, why: string) => {
      if (exiting) return;
      exiting = true;
      logger.info({ why }, 'shutting down');
      await controller.stop();
      await Promise.all(servers.map((s) => s.close()));
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onTerm);
      resolve(code);
    };
    const onTerm = () => void shutdown(0, 'signal');
    process.on('SIGTERM', onTerm);
    process.on('SIGINT', onTerm);
    controller.onLeadershipLost(() => void shutdown(1, 'leadership lost'));
    controller.start().then(
      () => logger.info({ identity }, 'controller running'),
      (error: unknown) => {
        if (exiting) return;
        logger.error({ err: error }, 'controller failed to start');
        void shutdown(1, 'start failed');
      },
    );
  });
}
