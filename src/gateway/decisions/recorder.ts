import { randomUUID, type KeyObject } from 'node:crypto';
import type { Clock } from '../../shared/clock.ts';
import { canonicalJson, canonicalJsonOfShape, sha256Hex } from './canonical.ts';
import {
  AuthenticationSchema,
  DecidingRuleSchema,
  EgressAttemptSchema,
  DecisionRecordSchema,
  GENESIS_HASH,
  RecordedPrincipalSchema,
  UNHASHED_MEMBERS,
  type DecisionRecord,
} from './record.ts';
import { createDecisionSigner, signingInput } from './signing.ts';

/** Where records go: a JSON-lines log now; Prometheus and Kubernetes Events in src/gateway/telemetry/. */
export interface DecisionSink {
  /**
   * `json` is the record serialized once by the recorder (canonical member order, then
   * `arguments` when present, then `hash`, then `signature` when signed), for sinks that write
   * text.
   * Must not throw for ordinary failures; a throwing sink is reported and the others still run.
   */
  write(record: DecisionRecord, json: string): void;
}

/** What the gateway fills in; the recorder adds identity, time and the chain. */
export type DecisionEntry = Omit<
  DecisionRecord,
  'decisionId' | 'writerId' | 'seq' | 'prevHash' | 'hash' | 'timestamp' | 'keyId' | 'signature'
> & {
  decisionId?: string;
};

export interface DecisionRecorder {
  /** Completes, chains and emits one record; synchronous so the chain order is the call order. */
  record(entry: DecisionEntry): DecisionRecord;
  readonly writerId: string;
}

export interface DecisionRecorderOptions {
  sinks: DecisionSink[];
  clock: Clock;
  /** Unique per process incarnation (e.g. `<pod>-<random>`): a restarted writer starts a new chain at seq 0. */
  writerId: string;
  /** Called when a sink throws; the record is still chained and given to the other sinks. */
  onSinkError?: (error: unknown, sink: DecisionSink) => void;
  /** Id generator, for tests; defaults to crypto.randomUUID. */
  newId?: () => string;
  /**
   * An Ed25519 private key: every record then carries `keyId` and `signature` (record.ts), so
   * `audit verify --public-key` can tell this writer's chain from a fabricated one. Anything but
   * an Ed25519 private key is refused here, not on the first record.
   */
  signingKey?: KeyObject;
}

export function createDecisionRecorder(options: DecisionRecorderOptions): DecisionRecorder {
  if (options.writerId.length === 0)
    throw new TypeError('createDecisionRecorder: writerId must not be empty');
  const sinks = [...options.sinks];
  const { clock, writerId, onSinkError } = options;
  const newId = options.newId ?? randomUUID;
  const signer =
    options.signingKey === undefined ? undefined : createDecisionSigner(options.signingKey);
  const keyId = signer?.keyId;
  let seq = 0;
  let prevHash = GENESIS_HASH;

  return {
    writerId,
    record(entry) {
      const record = hashedMembers(
        entry,
        entry.decisionId ?? newId(),
        writerId,
        seq,
        prevHash,
        clock.now().toISOString(),
        keyId,
      );
      // Serialized once: the same canonical text is hashed and, completed, handed to the sinks.
      const covered = hashedJson(record);
      const hash = sha256Hex(covered);
      let json = covered.slice(0, -1);
      if (entry.arguments !== undefined) {
        record['arguments'] = entry.arguments;
        json += `,"arguments":${canonicalJson(entry.arguments)}`;
      }
      record['hash'] = hash;
      json += `,"hash":"${hash}"`;
      if (signer !== undefined) {
        const signature = signer.sign(signingInput({ hash, keyId: signer.keyId, seq, writerId }));
        record['signature'] = signature;
        json += `,"signature":"${signature}"`;
      }
      json += '}';
      seq += 1;
      prevHash = hash;
      const complete = record as DecisionRecord;
      for (const sink of sinks) {
        try {
          sink.write(complete, json);
        } catch (error) {
          onSinkError?.(error, sink);
        }
      }
      return complete;
    },
  };
}

/** canonicalJson of hashedMembers' result: the text `hash` is computed over. */
const hashedJson = canonicalJsonOfShape(
  Object.keys(DecisionRecordSchema.shape).filter((key) => !UNHASHED_MEMBERS.has(key)),
  {
    principal: canonicalJsonOfShape(Object.keys(RecordedPrincipalSchema.shape)),
    authentication: canonicalJsonOfShape(Object.keys(AuthenticationSchema.shape)),
    rule: canonicalJsonOfShape(Object.keys(DecidingRuleSchema.shape)),
  },
);

/**
 * The members `hash` covers, as a fresh object whose keys (at every level) are inserted in
 * canonical order, so canonicalJson never has to sort them. Only fields of the schema are copied,
 * nested ones included: whatever else a caller's objects carry (a token, say) never reaches a
 * sink, and the record still verifies.
 */
function hashedMembers(
  entry: DecisionEntry,
  decisionId: string,
  writerId: string,
  seq: number,
  prevHash: string,
  timestamp: string,
  keyId: string | undefined,
): Record<string, unknown> {
  const members: Record<string, unknown> = {};
  if (entry.argumentsSha256 !== undefined) members['argumentsSha256'] = entry.argumentsSha256;
  if (entry.audit !== undefined) members['audit'] = entry.audit.map(auditFinding);
  if (entry.authentication !== undefined)
    members['authentication'] = authentication(entry.authentication);
  members['decisionId'] = decisionId;
  if (entry.durationMs !== undefined) members['durationMs'] = entry.durationMs;
  if (entry.effect !== undefined) members['effect'] = entry.effect;
  if (entry.egress !== undefined) members['egress'] = entry.egress.map(egressAttempt);
  if (entry.egressOmitted !== undefined) members['egressOmitted'] = entry.egressOmitted;
  if (entry.executor !== undefined) members['executor'] = entry.executor;
  if (keyId !== undefined) members['keyId'] = keyId;
  if (entry.method !== undefined) members['method'] = entry.method;
  if (entry.outcome !== undefined) members['outcome'] = entry.outcome;
  if (entry.outputBytes !== undefined) members['outputBytes'] = entry.outputBytes;
  if (entry.policies !== undefined) members['policies'] = entry.policies;
  members['prevHash'] = prevHash;
  if (entry.principal !== undefined) members['principal'] = principal(entry.principal);
  if (entry.reason !== undefined) members['reason'] = entry.reason;
  if (entry.redactions !== undefined) members['redactions'] = redactions(entry.redactions);
  if (entry.refusal !== undefined) members['refusal'] = entry.refusal;
  if (entry.rule !== undefined) members['rule'] = decidingRule(entry.rule);
  members['seq'] = seq;
  if (entry.server !== undefined) members['server'] = entry.server;
  if (entry.sessionId !== undefined) members['sessionId'] = entry.sessionId;
  members['timestamp'] = timestamp;
  if (entry.tool !== undefined) members['tool'] = entry.tool;
  members['writerId'] = writerId;
  return members;
}

type Principal = NonNullable<DecisionRecord['principal']>;
type Rule = NonNullable<DecisionRecord['rule']>;
type Finding = NonNullable<DecisionRecord['audit']>[number];

// Each copies the schema's fields in canonical key order; a value that is not an object (a null
// principal) is kept as it is.
function principal(value: Principal | null): Principal | null {
  if (!isObject(value)) return value;
  const copy = {} as Principal;
  if (value.authMethod !== undefined) copy.authMethod = value.authMethod;
  if (value.groups !== undefined) copy.groups = value.groups;
  if (value.kind !== undefined) copy.kind = value.kind;
  if (value.name !== undefined) copy.name = value.name;
  return copy;
}

function authentication(value: DecisionRecord['authentication']): DecisionRecord['authentication'] {
  if (!isObject(value)) return value;
  const copy = {} as DecisionRecord['authentication'];
  if (value.method !== undefined) copy.method = value.method;
  if (value.outcome !== undefined) copy.outcome = value.outcome;
  if (value.reason !== undefined) copy.reason = value.reason;
  return copy;
}

function decidingRule(value: Rule): Rule {
  if (!isObject(value)) return value;
  const copy = {} as Rule;
  if (value.index !== undefined) copy.index = value.index;
  if (value.kind !== undefined) copy.kind = value.kind;
  if (value.name !== undefined) copy.name = value.name;
  if (value.namespace !== undefined) copy.namespace = value.namespace;
  return copy;
}

function auditFinding(value: Finding): Finding {
  if (!isObject(value)) return value;
  const copy = {} as Finding;
  if (value.changesDecision !== undefined) copy.changesDecision = value.changesDecision;
  if (value.effect !== undefined) copy.effect = value.effect;
  if (value.policy !== undefined) copy.policy = value.policy;
  if (value.reason !== undefined) copy.reason = value.reason;
  if (value.rule !== undefined) copy.rule = decidingRule(value.rule);
  return copy;
}

type Attempt = NonNullable<DecisionRecord['egress']>[number];

/** Only the schema's fields: an executor's `detail`, `sni` or anything else never reaches a sink. */
function egressAttempt(value: Attempt): Attempt {
  if (!isObject(value)) return value;
  const copy = {} as Attempt;
  for (const key of EGRESS_ATTEMPT_KEYS) {
    const member = value[key];
    if (member !== undefined) (copy as Record<string, unknown>)[key] = member;
  }
  return copy;
}
const EGRESS_ATTEMPT_KEYS = Object.keys(EgressAttemptSchema.shape).sort() as (keyof Attempt)[];

function redactions(value: Record<string, number>): Record<string, number> {
  if (!isObject(value)) return value;
  const copy: Record<string, number> = {};
  for (const name of Object.keys(value).sort()) copy[name] = value[name] as number;
  return copy;
}

function isObject(value: unknown): value is object {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The exact line jsonLineDecisionSink writes for `record` (arguments as the line carries them,
 * also a redacted string): what `audit verify` compares each decision line with, byte for byte,
 * so a line the recorder could not have written (a repeated key, an extra or re-ordered member,
 * other spacing) does not verify even when its fields would.
 */
export function decisionLine(record: DecisionRecord, args: unknown = record.arguments): string {
  const members = hashedMembers(
    record,
    record.decisionId,
    record.writerId,
    record.seq,
    record.prevHash,
    record.timestamp,
    record.keyId,
  );
  let json = hashedJson(members).slice(1, -1);
  if (args !== undefined) json += `,"arguments":${canonicalJson(args)}`;
  json += `,"hash":${JSON.stringify(record.hash)}`;
  if (record.signature !== undefined) json += `,"signature":${JSON.stringify(record.signature)}`;
  return `{"level":"info",${json},"msg":"decision"}`;
}

/**
 * The decision log: one JSON line per record, `{"level":"info", ...record, "msg":"decision"}`,
 * the line pino would write, built from the text the recorder already serialized and written
 * straight to the destination (e.g. `pino.destination(...)`), without serializing the record a
 * second time.
 */
export function jsonLineDecisionSink(destination: { write(line: string): unknown }): DecisionSink {
  return {
    write(_record, json) {
      destination.write(`{"level":"info",${json.slice(1, -1)},"msg":"decision"}\n`);
    },
  };
}

/** Keeps records in memory; for tests. */
export function memoryDecisionSink(): DecisionSink & { readonly records: DecisionRecord[] } {
  const records: DecisionRecord[] = [];
  return {
    records,
    write(record) {
      records.push(record);
    },
  };
}
