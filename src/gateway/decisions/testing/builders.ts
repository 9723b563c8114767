// Builders for decision-log tests.
import { argumentsDigest } from '../canonical.ts';
import type { DecisionEntry } from '../recorder.ts';

export function entry(overrides: Partial<DecisionEntry> = {}): DecisionEntry {
  return {
    server: 'team/files',
    principal: { kind: 'Agent', name: 'alice', groups: ['dev'], authMethod: 'api-key' },
    authentication: { outcome: 'authenticated', method: 'api-key' },
    method: 'tools/call',
    tool: 'read_file',
    argumentsSha256: argumentsDigest({ path: '/tmp/x' }),
    policies: ['AgentPolicy/team/readers'],
    effect: 'Allow',
    rule: { kind: 'AgentPolicy', namespace: 'team', name: 'readers', index: 0 },
    reason: 'alice reads',
    outcome: 'ok',
    durationMs: 12.5,
    outputBytes: 42,
    executor: 'executor-0',
    ...overrides,
  };
}
