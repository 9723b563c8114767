/**
 * Pure builders of the workload objects of one McpServer: complete server-side-apply bodies,
 * no clock, no environment, no I/O. The reconciler applies what these return.
 */
import type { ExecutorSecurityMode, McpServer } from '../api/v1alpha1/mcpserver.ts';
import { createHash } from 'node:crypto';
import type { KubeObject } from '../k8s/types.ts';
import { DEFAULT_EXECUTOR_DNS, type DnsPeer } from './executor-egress.ts';
import {
  Annotations,
  childMetadata,
  childNames,
  componentLabels,
  Ports,
  selectorLabels,
  type Component,
} from './names.ts';
import { DEFAULT_IDLE_CLOSE_WAIT_MS } from '../shared/graceful-http.ts';
import { specHash } from './spec-hash.ts';

export interface WorkloadOptions {
  gatewayImage: string;
  executorImage: string;
  /**
   * AppArmor for executor containers: the runtime's default profile denies mount(2), which
   * nsjail needs; `Unconfined` or a `Localhost` profile that allows it (docs/adr/0004).
   */
  executorAppArmor: { type: 'Unconfined' } | { type: 'Localhost'; localhostProfile: string };
  /** Executor pod privileges unless the McpServer sets spec.executor.securityMode (ADR 0004). */
  executorSecurityMode: ExecutorSecurityMode;
  /** The cluster DNS pods executors with tool egress may query (chart value executor.dns). */
  executorDns: DnsPeer;
}

export const DEFAULT_WORKLOAD_OPTIONS: WorkloadOptions = {
  gatewayImage: 'mcpworks/mcpworks:0.1.0',
  executorImage: 'mcpworks/sandbox:0.1.0',
  executorAppArmor: { type: 'Unconfined' },
  executorSecurityMode: 'Standard',
  executorDns: DEFAULT_EXECUTOR_DNS,
};

/**
 * Where gateway pods find spec.audit.signingKeySecretRef: a read-only Secret volume holding only
 * that key (whatever its name in the Secret), readable by the gateway's group alone.
 */
export const AUDIT_SIGNING_KEY_DIR = '/etc/mcpworks/audit-signing';
export const AUDIT_SIGNING_KEY_FILE = 'ed25519.key';
const GATEWAY_UID = 65532;

/** The volume, mount and flag that give the gateway its signing key; nothing when none is set. */
function auditSigningKey(server: McpServer):
  | {
      volume: Record<string, unknown>;
      mount: Record<string, unknown>;
      arg: string;
    }
  | undefined {
  const ref = server.spec.audit.signingKeySecretRef;
  if (ref === undefined) return undefined;
  return {
    // Not optional: without the Secret or its key the pod does not start (fail closed).
    volume: {
      name: 'audit-signing-key',
      secret: {
        secretName: ref.name,
        items: [{ key: ref.key, path: AUDIT_SIGNING_KEY_FILE }],
        defaultMode: 0o440,
        optional: false,
      },
    },
    mount: { name: 'audit-signing-key', mountPath: AUDIT_SIGNING_KEY_DIR, readOnly: true },
    arg: `--audit-signing-key=${AUDIT_SIGNING_KEY_DIR}/${AUDIT_SIGNING_KEY_FILE}`,
  };
}

/**
 * Seconds a stopping gateway keeps serving; its drain (at most 20 s, the gateway's default
 * --drain-seconds) follows, both within the pod's default 30 s grace period.
 */
export const GATEWAY_SHUTDOWN_DELAY_SECONDS = 5;

/**
 * A stopping executor keeps accepting calls this long (not ready, so the endpoints drop it while
 * gateways may still have its address), then waits up to EXECUTOR_DRAIN_SECONDS for running
 * calls and up to EXECUTOR_IDLE_CLOSE_SECONDS for the gateways to close their idle keep-alive
 * connections (its keep-alive timeout plus 1 s); the pod's grace period covers all three.
 */
export const EXECUTOR_SHUTDOWN_DELAY_SECONDS = 10;
export const EXECUTOR_DRAIN_SECONDS = 30;
const EXECUTOR_IDLE_CLOSE_SECONDS = Math.ceil(DEFAULT_IDLE_CLOSE_WAIT_MS / 1000);
const EXECUTOR_GRACE_SECONDS =
  EXECUTOR_SHUTDOWN_DELAY_SECONDS + EXECUTOR_DRAIN_SECONDS + EXECUTOR_IDLE_CLOSE_SECONDS + 4;

const DEFAULT_RESOURCES = {
  gateway: { requests: { cpu: '50m', memory: '96Mi' }, limits: { memory: '256Mi' } },
  executor: { requests: { cpu: '250m', memory: '256Mi' }, limits: { cpu: '2', memory: '2Gi' } },
} as const;

/** A Deployment of one component whose pods carry `hash` (a change rolls them). */
function deployment(
  server: McpServer,
  component: Component,
  replicas: number,
  hash: string,
  podSpec: Record<string, unknown>,
): KubeObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: childMetadata(server, childNames(server)[component], component),
    spec: {
      replicas,
      selector: { matchLabels: selectorLabels(server, component) },
      template: {
        metadata: {
          labels: componentLabels(server, component),
          annotations: { [Annotations.specHash]: hash },
        },
        spec: podSpec,
      },
    },
  };
}

/** What a token rotation changes in the pods: they must restart to read the new value. */
export interface TokenState {
  /** The token Secret's data hash; part of both pod templates' spec hash. */
  hash: string;
}

export function desiredGatewayServiceAccount(server: McpServer): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: childMetadata(server, childNames(server).gateway, 'gateway'),
    // The gateway watches its McpServer and policies: it needs its token (nothing else does).
    automountServiceAccountToken: true,
  };
}

export function desiredGatewayDeployment(
  server: McpServer,
  token: TokenState,
  options: WorkloadOptions,
): KubeObject {
  const names = childNames(server);
  const namespace = server.metadata.namespace ?? 'default';
  const hash = specHash(server.spec, token.hash, options.gatewayImage);
  const signing = auditSigningKey(server);
  return deployment(server, 'gateway', server.spec.gateway.replicas, hash, {
    serviceAccountName: names.gateway,
    automountServiceAccountToken: true,
    enableServiceLinks: false,
    securityContext: {
      runAsNonRoot: true,
      runAsUser: GATEWAY_UID,
      runAsGroup: GATEWAY_UID,
      // The key file is group-readable (0440) by the gateway's group only.
      ...(signing === undefined ? {} : { fsGroup: GATEWAY_UID }),
      seccompProfile: { type: 'RuntimeDefault' },
    },
    containers: [
      {
        name: 'gateway',
        image: options.gatewayImage,
        // Requests keep arriving until kube-proxy has seen the pod terminating: serve them.
        args: [
          'gateway',
          `--shutdown-delay-seconds=${GATEWAY_SHUTDOWN_DELAY_SECONDS}`,
          ...(signing === undefined ? [] : [signing.arg]),
        ],
        ports: [{ name: 'http', containerPort: Ports.gateway, protocol: 'TCP' }],
        env: [
          { name: 'MCPWORKS_SERVER_NAMESPACE', value: namespace },
          { name: 'MCPWORKS_SERVER_NAME', value: server.metadata.name },
          { name: 'MCPWORKS_PORT', value: String(Ports.gateway) },
          {
            name: 'MCPWORKS_EXECUTOR_URL',
            value: `http://${names.executor}.${namespace}.svc:${Ports.executor}`,
          },
          {
            name: 'MCPWORKS_EXECUTOR_TOKEN',
            valueFrom: { secretKeyRef: { name: names.executorToken, key: 'token' } },
          },
        ],
        resources: server.spec.gateway.resources ?? DEFAULT_RESOURCES.gateway,
        securityContext: {
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          runAsNonRoot: true,
          capabilities: { drop: ['ALL'] },
          seccompProfile: { type: 'RuntimeDefault' },
        },
        readinessProbe: { httpGet: { path: '/healthz', port: 'http' }, periodSeconds: 5 },
        livenessProbe: {
          httpGet: { path: '/healthz', port: 'http' },
          periodSeconds: 10,
          failureThreshold: 6,
        },
        volumeMounts: [
          { name: 'tmp', mountPath: '/tmp' },
          ...(signing === undefined ? [] : [signing.mount]),
        ],
      },
    ],
    volumes: [
      { name: 'tmp', emptyDir: { sizeLimit: '64Mi' } },
      ...(signing === undefined ? [] : [signing.volume]),
    ],
  });
}

/**
 * Where executor pods find the Secret keys tools read through secretEnv: one read-only Secret
 * volume per referenced Secret at `<dir>/<secretName>/<key>`, read by the executor per call.
 */
export const EXECUTOR_SECRETS_DIR = '/var/run/mcpworks/secrets';

/**
 * Whether `key` can be a Secret data key at all (the API server's rule besides the characters):
 * not `.` or `..` and not starting with `..`. Only such keys can be volume item paths; a
 * reference to any other is reported missing (tool-secrets-check.ts) and left out of the pod.
 */
export function isPossibleSecretKey(key: string): boolean {
  return key !== '.' && key !== '..' && !key.startsWith('..');
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const SECRET_VOLUME_PREFIX = 'secret-';

/**
 * The volume name of a tool Secret: a DNS label of at most 63 characters, stable for a Secret
 * name, distinct from the pod's other volumes (prefix). A Secret name that is not itself a short
 * DNS label (dots, length) is shortened and suffixed with a hash of the full name, so two
 * Secrets never share a volume.
 */
export function secretVolumeName(secretName: string): string {
  const plain = `${SECRET_VOLUME_PREFIX}${secretName}`;
  if (DNS_LABEL.test(secretName) && plain.length <= 63) return plain;
  const hash = createHash('sha256').update(secretName).digest('hex').slice(0, 10);
  const stem = secretName
    .replace(/[^a-z0-9-]/g, '-')
    .slice(0, 63 - SECRET_VOLUME_PREFIX.length - hash.length - 1)
    .replace(/-+$/, '');
  return `${SECRET_VOLUME_PREFIX}${stem}-${hash}`;
}

/**
 * Why a Secret may not be read by tools at all, or undefined: the operator's own Secrets (every
 * `<server>-executor-token`, the token that authenticates a gateway to its executor) and this
 * server's own audit signing key and API key Secrets. A tool holding one could call executors
 * as a gateway, sign forged decision records, or learn who holds which key; none is a tool
 * credential, so a reference to one is refused (Degraded, no volume) instead of mounted.
 */
export function reservedSecretReason(server: McpServer, secretName: string): string | undefined {
  if (secretName === childNames(server).executorToken || secretName.endsWith('-executor-token'))
    return 'an executor token of the operator';
  if (secretName === server.spec.audit.signingKeySecretRef?.name)
    return "this server's audit signing key";
  if (secretName === server.spec.auth.apiKeys?.secretRef.name) return "this server's API keys";
  return undefined;
}

/**
 * The Secret keys the tools of `server` read through secretEnv, by Secret name (both sorted);
 * reserved Secrets (reservedSecretReason) left out.
 */
export function referencedSecretKeys(server: McpServer): Map<string, string[]> {
  const keys = new Map<string, Set<string>>();
  for (const tool of server.spec.tools) {
    for (const entry of tool.secretEnv ?? []) {
      const { name, key } = entry.secretKeyRef;
      if (reservedSecretReason(server, name) !== undefined) continue;
      if (!keys.has(name)) keys.set(name, new Set());
      keys.get(name)?.add(key);
    }
  }
  return new Map([...keys.keys()].sort().map((name) => [name, [...(keys.get(name) ?? [])].sort()]));
}

/**
 * The executor's Secret volumes for secretEnv, least privilege: only the referenced keys
 * (items), readable by the executor (root in the container) alone (0400). Optional, so the
 * executor starts when one is missing and only the tools that need it fail (closed, at call
 * time); mounted whole (no subPath), so kubelet updates a rotated value in place.
 */
function toolSecretVolumes(server: McpServer): {
  volumes: Record<string, unknown>[];
  mounts: Record<string, unknown>[];
  args: string[];
} {
  const referenced = referencedSecretKeys(server);
  if (referenced.size === 0) return { volumes: [], mounts: [], args: [] };
  const volumes: Record<string, unknown>[] = [];
  const mounts: Record<string, unknown>[] = [];
  for (const [secretName, keys] of referenced) {
    const items = keys.filter(isPossibleSecretKey).map((key) => ({ key, path: key }));
    // Empty items would project every key of the Secret: no volume at all instead.
    if (items.length === 0) continue;
    const name = secretVolumeName(secretName);
    volumes.push({
      name,
      secret: { secretName, items, defaultMode: 0o400, optional: true },
    });
    mounts.push({ name, mountPath: `${EXECUTOR_SECRETS_DIR}/${secretName}`, readOnly: true });
  }
  return { volumes, mounts, args: [`--secrets-dir=${EXECUTOR_SECRETS_DIR}`] };
}

/** Where kubelet reads the executor's start-up failure from (its default path, made explicit). */
export const EXECUTOR_TERMINATION_MESSAGE_PATH = '/dev/termination-log';

/**
 * The executor container's privileges per security mode, exactly as measured to work
 * (docs/adr/0004-executor-privileges.md). Standard and UserNamespace: CAP_SYS_ADMIN (namespaces,
 * mounts, the clean procfs and the cgroup bind remount), CAP_SETUID and CAP_SETGID (uid/gid
 * maps), CAP_SYS_CHROOT (RuntimeDefault seccomp admits chroot only with it; nsjail enters the
 * jail with chroot because that profile refuses pivot_root), everything else dropped.
 */
export function executorSecurity(
  mode: ExecutorSecurityMode,
  appArmor: WorkloadOptions['executorAppArmor'],
): {
  pod: Record<string, unknown>;
  container: Record<string, unknown>;
  executorArgs: string[];
} {
  const common = {
    // nsjail starts as root in the container's user namespace and drops to an unprivileged id
    // inside each sandbox; runAsNonRoot would strip the capabilities.
    runAsUser: 0,
    runAsNonRoot: false,
    readOnlyRootFilesystem: true,
    seccompProfile: { type: 'RuntimeDefault' },
    appArmorProfile: appArmor,
  };
  const capabilities = { drop: ['ALL'], add: ['SYS_ADMIN', 'SETUID', 'SETGID', 'SYS_CHROOT'] };
  switch (mode) {
    case 'Standard':
      return {
        pod: { securityContext: { seccompProfile: { type: 'RuntimeDefault' } } },
        container: { ...common, privileged: false, capabilities },
        executorArgs: ['--no-pivot-root'],
      };
    case 'UserNamespace':
      return {
        pod: { hostUsers: false, securityContext: { seccompProfile: { type: 'RuntimeDefault' } } },
        // One fully visible procfs is needed for nsjail's own /proc mounts; a user-namespaced
        // pod cannot mount a clean one over the masks, so the container's /proc is unmasked.
        container: { ...common, privileged: false, capabilities, procMount: 'Unmasked' },
        executorArgs: ['--no-pivot-root'],
      };
    case 'Privileged':
      // All capabilities, no seccomp or AppArmor confinement from the runtime: pivot_root is
      // allowed, so nsjail keeps its default (the old root is unmounted, not just hidden).
      return {
        pod: { securityContext: { seccompProfile: { type: 'RuntimeDefault' } } },
        container: { ...common, privileged: true },
        executorArgs: [],
      };
  }
}

/**
 * Executor pods: the privileges of their security mode (above), no ServiceAccount token,
 * read-only root filesystem, a memory-backed /tmp, the Secret keys of secretEnv (above); a
 * start-up failure in plain words becomes the pod's termination message.
 */
export function desiredExecutorDeployment(
  server: McpServer,
  token: TokenState,
  options: WorkloadOptions,
): KubeObject {
  const names = childNames(server);
  const executor = server.spec.executor;
  const mode = executor.securityMode ?? options.executorSecurityMode;
  const security = executorSecurity(mode, options.executorAppArmor);
  const secrets = toolSecretVolumes(server);
  const hash = specHash(
    executor,
    token.hash,
    options.executorImage,
    options.executorAppArmor,
    mode,
  );
  return deployment(server, 'executor', executor.replicas, hash, {
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    terminationGracePeriodSeconds: EXECUTOR_GRACE_SECONDS,
    ...security.pod,
    containers: [
      {
        name: 'executor',
        // spec.executor.image: an image built FROM the sandbox image with extra packages.
        image: executor.image ?? options.executorImage,
        args: [
          'executor',
          `--port=${Ports.executor}`,
          `--max-concurrency=${executor.maxConcurrency}`,
          `--warm-pool-size=${executor.warmPoolSize}`,
          // roots prepared at image build (sandbox-image/Dockerfile): /tmp here is memory
          '--runtime-roots=/opt/mcpworks/runtime-roots',
          `--termination-message-path=${EXECUTOR_TERMINATION_MESSAGE_PATH}`,
          `--shutdown-delay-seconds=${EXECUTOR_SHUTDOWN_DELAY_SECONDS}`,
          `--drain-seconds=${EXECUTOR_DRAIN_SECONDS}`,
          ...security.executorArgs,
          ...secrets.args,
        ],
        ports: [{ name: 'http', containerPort: Ports.executor, protocol: 'TCP' }],
        env: [
          {
            name: 'MCPWORKS_EXECUTOR_TOKEN',
            valueFrom: { secretKeyRef: { name: names.executorToken, key: 'token' } },
          },
        ],
        resources: executor.resources ?? DEFAULT_RESOURCES.executor,
        securityContext: security.container,
        terminationMessagePath: EXECUTOR_TERMINATION_MESSAGE_PATH,
        terminationMessagePolicy: 'FallbackToLogsOnError',
        readinessProbe: { httpGet: { path: '/readyz', port: 'http' }, periodSeconds: 5 },
        livenessProbe: {
          httpGet: { path: '/healthz', port: 'http' },
          periodSeconds: 10,
          failureThreshold: 6,
        },
        volumeMounts: [{ name: 'sandbox-tmp', mountPath: '/tmp' }, ...secrets.mounts],
      },
    ],
    volumes: [
      { name: 'sandbox-tmp', emptyDir: { medium: 'Memory', sizeLimit: '256Mi' } },
      ...secrets.volumes,
    ],
  });
}

/**
 * The gateway Service gets a ClusterIP (agents reach it; kube-proxy balances connections). The
 * executor Service is headless (`clusterIP: None`, docs/adr/0003): only its gateway calls it, by
 * DNS name, and each ClusterIP allocation is the API server's slowest write. An executor Service
 * created with a ClusterIP by an earlier version keeps it (`spec.clusterIP` is immutable):
 * `keepAllocatedClusterIp` leaves the field out so the apply does not fail.
 */
export function desiredService(
  server: McpServer,
  component: Component,
  keepAllocatedClusterIp = false,
): KubeObject {
  const names = childNames(server);
  const port = Ports[component];
  const headless = component === 'executor' && !keepAllocatedClusterIp;
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: childMetadata(server, names[component], component),
    spec: {
      type: 'ClusterIP',
      ...(headless ? { clusterIP: 'None' } : {}),
      selector: selectorLabels(server, component),
      ports: [{ name: 'http', port, targetPort: 'http', protocol: 'TCP' }],
    },
  };
}

/** A live Service that holds an allocated ClusterIP (not headless, not yet created). */
export function hasAllocatedClusterIp(live: KubeObject | undefined): boolean {
  const ip = (live?.['spec'] as { clusterIP?: unknown } | undefined)?.clusterIP;
  return typeof ip === 'string' && ip !== '' && ip !== 'None';
}

/** The gateway→executor bearer token, generated once by the reconciler (`token` is base64). */
export function desiredExecutorTokenSecret(
  server: McpServer,
  tokenBase64: string,
  generation: string,
): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: childMetadata(server, childNames(server).executorToken, 'executor', {
      annotations: { [Annotations.tokenGeneration]: generation },
    }),
    type: 'Opaque',
    data: { token: tokenBase64 },
  };
}
