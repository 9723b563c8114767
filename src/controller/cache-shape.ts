/**
 * The controller caches thousands of children but only ever compares the fields it sets
 * (upToDate). Pruning cached objects to the shape of what the builders produce keeps memory
 * in proportion to our own fields instead of everything the API server defaults (a Deployment's
 * pod template doubles in size on the server). Subtrees whose keys are not ours to know
 * (labels, resources, Secret data, security contexts) are kept whole.
 */
import { EXECUTOR_SECURITY_MODES, McpServerSchema } from '../api/v1alpha1/mcpserver.ts';
import type { KubeObject } from '../k8s/types.ts';
import {
  desiredExecutorNetworkPolicy,
  desiredGatewayClusterRoleBinding,
  desiredGatewayNetworkPolicy,
  desiredGatewayRole,
  desiredGatewayRoleBinding,
} from './desired-access.ts';
import {
  DEFAULT_WORKLOAD_OPTIONS,
  desiredExecutorDeployment,
  desiredExecutorTokenSecret,
  desiredGatewayDeployment,
  desiredGatewayServiceAccount,
  desiredService,
} from './desired-workloads.ts';

export type Shape = true | { readonly [key: string]: Shape };

/** Kept whole wherever they appear. */
const OPAQUE = new Set([
  'labels',
  'annotations',
  'matchLabels',
  'resources',
  'data',
  'securityContext',
  'appArmorProfile',
]);

/** Metadata the controller reads besides what it sets. */
const METADATA: Shape = {
  name: true,
  namespace: true,
  resourceVersion: true,
  generation: true,
  deletionTimestamp: true,
  labels: true,
  annotations: true,
  ownerReferences: true,
};

function merge(a: Shape | undefined, b: Shape): Shape {
  if (a === undefined) return b;
  if (a === true || b === true) return true;
  const out: Record<string, Shape> = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = merge(out[k], v);
  return out;
}

/** The key tree of `value`; array elements share one (merged) shape under the key `[]`. */
export function shapeOf(value: unknown, key = ''): Shape {
  if (OPAQUE.has(key)) return true;
  if (Array.isArray(value)) {
    let element: Shape | undefined;
    for (const item of value) element = merge(element, shapeOf(item));
    return element === undefined ? true : { '[]': element };
  }
  if (value !== null && typeof value === 'object') {
    const out: Record<string, Shape> = {};
    for (const [k, v] of Object.entries(value)) out[k] = shapeOf(v, k);
    return out;
  }
  return true;
}

export function prune(value: unknown, shape: Shape): unknown {
  if (shape === true || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    const element = shape['[]'];
    return element === undefined ? value : value.map((v) => prune(v, element));
  }
  const out: Record<string, unknown> = {};
  for (const [k, sub] of Object.entries(shape)) {
    if (k in value) out[k] = prune((value as Record<string, unknown>)[k], sub);
  }
  return out;
}

/** Shapes per kind, from the builders' output for sample servers covering the optional parts. */
export function childShapes(): Map<string, Shape> {
  const plainTool = { name: 't', description: 't', runtime: 'python', code: 'x' };
  const sample = (
    auth: Record<string, unknown>,
    audit: Record<string, unknown> = {},
    tool: Record<string, unknown> = plainTool,
  ) =>
    McpServerSchema.parse({
      apiVersion: 'mcpworks.io/v1alpha1',
      kind: 'McpServer',
      metadata: { name: 'shape', namespace: 'shape', uid: 'u' },
      spec: { auth, audit, tools: [tool] },
    });
  const token = { hash: 'h' };
  const shapes = new Map<string, Shape>();
  for (const server of [
    sample({ anonymous: { enabled: true } }),
    sample({ apiKeys: { secretRef: { name: 'k' } } }),
    // the signing key's Secret volume and mount
    sample({ anonymous: { enabled: true } }, { signingKeySecretRef: { name: 's' } }),
    // the executor's Secret volumes and mounts (secretEnv), its NetworkPolicy egress rules
    sample(
      { anonymous: { enabled: true } },
      {},
      {
        ...plainTool,
        secretEnv: [{ name: 'T', secretKeyRef: { name: 's', key: 'k' } }],
        egress: [{ host: 'example.com' }],
      },
    ),
  ]) {
    const objects: KubeObject[] = [
      desiredGatewayDeployment(server, token, DEFAULT_WORKLOAD_OPTIONS),
      // every security mode: each sets pod-level fields of its own (hostUsers)
      ...EXECUTOR_SECURITY_MODES.map((executorSecurityMode) =>
        desiredExecutorDeployment(server, token, {
          ...DEFAULT_WORKLOAD_OPTIONS,
          executorSecurityMode,
        }),
      ),
      desiredService(server, 'gateway'),
      desiredService(server, 'executor'),
      desiredGatewayServiceAccount(server),
      desiredExecutorTokenSecret(server, 'dG9rZW4=', ''),
      desiredExecutorNetworkPolicy(server, DEFAULT_WORKLOAD_OPTIONS.executorDns),
      desiredGatewayNetworkPolicy(server),
      desiredGatewayRole(server),
      desiredGatewayRoleBinding(server),
      desiredGatewayClusterRoleBinding(server),
    ];
    for (const obj of objects) {
      const { metadata: _metadata, ...rest } = obj;
      const shape = merge(shapes.get(obj.kind as string), {
        ...(shapeOf(rest) as Record<string, Shape>),
        metadata: METADATA,
      });
      shapes.set(obj.kind as string, shape);
    }
  }
  // rolloutState reads the Deployment's status.
  shapes.set('Deployment', merge(shapes.get('Deployment'), { status: true }));
  return shapes;
}
