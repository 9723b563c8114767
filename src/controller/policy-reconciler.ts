/**
 * AgentPolicy / ClusterAgentPolicy → `Accepted` condition. The controller validates; gateways
 * read policies themselves (ADR 0001), so an invalid policy is reported here and skipped there.
 */
import type { PolicyStatus } from '../api/v1alpha1/agentpolicy.ts';
import type { Clock } from '../shared/clock.ts';
import type { Logger } from '../shared/logger.ts';
import type { KubeClient } from '../k8s/client.ts';
import type { EventRecorder } from '../k8s/events.ts';
import type { Informer } from '../k8s/informer.ts';
import { Resources } from '../k8s/resources.ts';
import { objectKey, type KubeObject } from '../k8s/types.ts';
import { ownWriteId, type OwnWrites } from './own-writes.ts';
import type { ParsedPolicy } from './policy-validation.ts';
import { computePolicyStatus, statusEqual } from './status.ts';
import type { ProcessResult } from './workqueue.ts';

export interface PolicyReconcilerDeps {
  client: KubeClient;
  agentPolicies: Informer<KubeObject>;
  clusterPolicies: Informer<KubeObject>;
  events: EventRecorder;
  clock: Clock;
  logger: Logger;
  parsePolicy: (raw: KubeObject) => ParsedPolicy;
  /** Status writes are registered here, so that their watch events queue nothing. */
  ownWrites: OwnWrites;
  /** The policy changed while its status was written (not our write's echo): look again. */
  onConcurrentChange: (policy: KubeObject) => void;
}

/** Queue keys are `AgentPolicy:ns/name` and `ClusterAgentPolicy:name`. */
export function policyQueueKey(obj: KubeObject): string {
  const meta = obj.metadata ?? {};
  return obj.kind === 'ClusterAgentPolicy'
    ? `ClusterAgentPolicy:${meta.name}`
    : `AgentPolicy:${meta.namespace}/${meta.name}`;
}

export function createPolicyReconciler(
  deps: PolicyReconcilerDeps,
): (key: string) => Promise<ProcessResult> {
  return async function reconcilePolicy(queueKey: string): Promise<ProcessResult> {
    const colon = queueKey.indexOf(':');
    const kind = queueKey.slice(0, colon);
    const key = queueKey.slice(colon + 1);
    const cluster = kind === 'ClusterAgentPolicy';
    const cache = cluster ? deps.clusterPolicies : deps.agentPolicies;
    const raw = cache.get(key);
    if (!raw || raw.metadata?.deletionTimestamp) return;
    const parsed = deps.parsePolicy(raw);
    const spec = raw['spec'] as { rules?: unknown[]; egressDeny?: unknown[] } | undefined;
    const rules = (spec?.rules ?? []).length;
    const egressDenials = Array.isArray(spec?.egressDeny) ? spec.egressDeny.length : 0;
    const problems = parsed.problems;
    const existing = raw['status'] as PolicyStatus | undefined;
    const status = computePolicyStatus(
      raw.metadata?.generation ?? 0,
      problems,
      rules,
      existing,
      deps.clock.now(),
      egressDenials,
    );
    if (statusEqual(status, existing)) return;
    if (problems.length > 0) {
      deps.events.record(
        raw,
        'Warning',
        problems[0]?.reason ?? 'Invalid',
        problems.map((p) => p.message).join('; '),
      );
      deps.logger.info({ policy: queueKey, problems }, 'policy not accepted');
    }
    const type = cluster ? Resources.ClusterAgentPolicy : Resources.AgentPolicy;
    const id = ownWriteId(type.plural, objectKey(raw));
    deps.ownWrites.begin(id);
    let updated: KubeObject | undefined;
    try {
      updated = await deps.client.applyStatus<KubeObject>(type, {
        apiVersion: raw.apiVersion,
        kind: raw.kind,
        metadata: {
          name: raw.metadata?.name,
          ...(cluster ? {} : { namespace: raw.metadata?.namespace }),
        },
        status,
      });
    } finally {
      if (deps.ownWrites.end(id, updated?.metadata?.resourceVersion)) deps.onConcurrentChange(raw);
    }
    cache.observe(updated);
  };
}
