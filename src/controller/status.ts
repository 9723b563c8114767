/**
 * Pure status functions: from what the reconciler observed to the status it should write.
 * Conditions keep their lastTransitionTime while their status does not change, so an unchanged
 * world yields a deep-equal status and the reconciler writes nothing.
 */
import type { Condition } from '../api/v1alpha1/common.ts';
import type { McpServerStatus } from '../api/v1alpha1/mcpserver.ts';
import type { PolicyStatus } from '../api/v1alpha1/agentpolicy.ts';
import type { KubeObject } from '../k8s/types.ts';
import { stableStringify } from './spec-hash.ts';

export const Reasons = {
  Ready: 'Ready',
  NotReady: 'NotReady',
  RollingOut: 'RollingOut',
  RolledOut: 'RolledOut',
  AsExpected: 'AsExpected',
  SecretNotFound: 'SecretNotFound',
  SecretKeyNotFound: 'SecretKeyNotFound',
  /** A tool's secretEnv names one of the operator's own Secrets (desired-workloads.ts). */
  SecretNotAllowed: 'SecretNotAllowed',
  /** spec.audit.signingKeySecretRef holds something other than an Ed25519 private key. */
  InvalidSigningKey: 'InvalidSigningKey',
  ConfigMapNotFound: 'ConfigMapNotFound',
  ConfigMapKeyNotFound: 'ConfigMapKeyNotFound',
  ApplyFailed: 'ApplyFailed',
  Valid: 'Valid',
  InvalidSpec: 'InvalidSpec',
  InvalidCondition: 'InvalidCondition',
  InvalidSelector: 'InvalidSelector',
} as const;

/** A reason the server cannot work as specified, in words a person acts on. */
export interface Problem {
  reason: string;
  message: string;
}

export interface RolloutState {
  name: string;
  complete: boolean;
  available: number;
  desired: number;
}

export function rolloutState(
  deployment: KubeObject | undefined,
  name: string,
  desired: number,
): RolloutState {
  const status = (deployment?.['status'] ?? {}) as {
    observedGeneration?: number;
    updatedReplicas?: number;
    availableReplicas?: number;
    replicas?: number;
  };
  const available = status.availableReplicas ?? 0;
  const observed =
    deployment !== undefined &&
    (status.observedGeneration ?? 0) >= (deployment.metadata?.generation ?? 1);
  const complete =
    deployment !== undefined &&
    (desired === 0 ||
      (observed &&
        (status.updatedReplicas ?? 0) >= desired &&
        available >= desired &&
        (status.replicas ?? 0) <= desired));
  return { name, complete, available, desired };
}

export interface ServerObservation {
  generation: number;
  problems: readonly Problem[];
  gateway: RolloutState;
  executor: RolloutState;
  toolCount: number;
  endpoint: string;
  policies: readonly string[];
}

export function setCondition(
  existing: readonly Condition[] | undefined,
  next: Omit<Condition, 'lastTransitionTime'>,
  now: Date,
): Condition[] {
  const others = (existing ?? []).filter((c) => c.type !== next.type);
  const previous = existing?.find((c) => c.type === next.type);
  const lastTransitionTime =
    previous && previous.status === next.status
      ? previous.lastTransitionTime
      : now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  return [...others, { ...next, lastTransitionTime }].sort((a, b) => a.type.localeCompare(b.type));
}

export function computeServerStatus(
  observed: ServerObservation,
  existing: McpServerStatus | undefined,
  now: Date,
): McpServerStatus {
  const generation = observed.generation;
  const degraded = observed.problems.length > 0;
  const rolling = [observed.gateway, observed.executor].filter((r) => !r.complete);
  const rolloutMessage = [observed.gateway, observed.executor]
    .map((r) => `${r.name} ${r.available}/${r.desired} available`)
    .join(', ');
  let conditions = existing?.conditions;
  conditions = setCondition(
    conditions,
    degraded
      ? {
          type: 'Degraded',
          status: 'True',
          reason: observed.problems[0]?.reason ?? Reasons.ApplyFailed,
          message: observed.problems.map((p) => p.message).join('; '),
          observedGeneration: generation,
        }
      : {
          type: 'Degraded',
          status: 'False',
          reason: Reasons.AsExpected,
          message: 'no problems found',
          observedGeneration: generation,
        },
    now,
  );
  conditions = setCondition(
    conditions,
    rolling.length > 0
      ? {
          type: 'Progressing',
          status: 'True',
          reason: Reasons.RollingOut,
          message: rolloutMessage,
          observedGeneration: generation,
        }
      : {
          type: 'Progressing',
          status: 'False',
          reason: Reasons.RolledOut,
          message: rolloutMessage,
          observedGeneration: generation,
        },
    now,
  );
  const ready = !degraded && rolling.length === 0;
  conditions = setCondition(
    conditions,
    ready
      ? {
          type: 'Ready',
          status: 'True',
          reason: Reasons.Ready,
          message: `serving ${observed.toolCount} tools`,
          observedGeneration: generation,
        }
      : {
          type: 'Ready',
          status: 'False',
          reason: degraded
            ? (observed.problems[0]?.reason ?? Reasons.NotReady)
            : Reasons.RollingOut,
          message: degraded ? (observed.problems[0]?.message ?? '') : rolloutMessage,
          observedGeneration: generation,
        },
    now,
  );
  return {
    observedGeneration: generation,
    conditions,
    endpoint: observed.endpoint,
    tools: observed.toolCount,
    policies: [...observed.policies].sort(),
  };
}

export function computePolicyStatus(
  generation: number,
  problems: readonly Problem[],
  ruleCount: number,
  existing: PolicyStatus | undefined,
  now: Date,
  egressDenials = 0,
): PolicyStatus {
  const accepted = problems.length === 0;
  const what = [
    ...(ruleCount > 0 || egressDenials === 0 ? [`${ruleCount} rules`] : []),
    ...(egressDenials > 0 ? [`${egressDenials} egress guardrails`] : []),
  ].join(' and ');
  return {
    observedGeneration: generation,
    rules: ruleCount,
    conditions: setCondition(
      existing?.conditions,
      accepted
        ? {
            type: 'Accepted',
            status: 'True',
            reason: Reasons.Valid,
            message: `${what} accepted`,
            observedGeneration: generation,
          }
        : {
            type: 'Accepted',
            status: 'False',
            reason: problems[0]?.reason ?? Reasons.InvalidSpec,
            message: problems.map((p) => p.message).join('; '),
            observedGeneration: generation,
          },
      now,
    ),
  };
}

/** Equal as the API server would store them (key order and undefined fields ignored). */
export function statusEqual(a: unknown, b: unknown): boolean {
  return stableStringify(a ?? {}) === stableStringify(b ?? {});
}
