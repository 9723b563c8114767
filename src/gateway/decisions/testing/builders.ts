// Builders for decision-log tests.
import { randomUUID } from 'node:crypto';
import { argumentsDigest } from '../canonical.ts';
import { GENESIS_HASH, computeRecordHash, type DecisionRecord } from '../record.ts';
import { decisionLine, type DecisionEntry } from '../recorder.ts';
import { signingInput, type DecisionSigner } from '../signing.ts';

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

/**
 * What someone who can write to the log but holds no signing key can produce: records that
 * continue `after` (or start a new chain of `writerId` from genesis) with every hash recomputed
 * by the project's own canonical functions, as the lines the recorder would write. `sign`, when
 * given, signs them (e.g. with a key the verifier does not trust, under a trusted keyId).
 */
export function fabricatedLines(
  count: number,
  start: { after: DecisionRecord } | { writerId: string },
  sign?: { keyId: string; signer: DecisionSigner },
): string[] {
  let writerId = 'after' in start ? start.after.writerId : start.writerId;
  let seq = 'after' in start ? start.after.seq + 1 : 0;
  let prevHash = 'after' in start ? start.after.hash : GENESIS_HASH;
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    const unhashed = {
      ...entry({ reason: 'fabricated', tool: 'delete_everything' }),
      decisionId: randomUUID(),
      writerId,
      seq,
      prevHash,
      timestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
      ...(sign === undefined ? {} : { keyId: sign.keyId }),
    };
    const hash = computeRecordHash(unhashed);
    const record: DecisionRecord = {
      ...unhashed,
      hash,
      ...(sign === undefined
        ? {}
        : {
            signature: sign.signer.sign(signingInput({ hash, keyId: sign.keyId, seq, writerId })),
          }),
    };
    lines.push(decisionLine(record));
    writerId = record.writerId;
    seq += 1;
    prevHash = hash;
  }
  return lines;
}
