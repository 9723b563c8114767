import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Clock } from '../../shared/clock.ts';
import {
  DecisionRecordSchema,
  GENESIS_HASH,
  computeRecordHash,
  type DecisionRecord,
} from './record.ts';

/** Where records go: a JSON-lines log now; Prometheus and Kubernetes Events in src/gateway/telemetry/. */
export interface DecisionSink {
  /** Must not throw for ordinary failures; a throwing sink is reported and the others still run. */
  write(record: DecisionRecord): void;
}

/** What the gateway fills in; the recorder adds identity, time and the chain. */
export type DecisionEntry = Omit<
  DecisionRecord,
  'decisionId' | 'writerId' | 'seq' | 'prevHash' | 'hash' | 'timestamp'
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
}

/** The fields a record may carry; anything else a caller passes is dropped, or verification would fail. */
const ENTRY_KEYS = Object.keys(DecisionRecordSchema.shape).filter(
  (key) => !['decisionId', 'writerId', 'seq', 'prevHash', 'timestamp', 'hash'].includes(key),
);

export function createDecisionRecorder(options: DecisionRecorderOptions): DecisionRecorder {
  if (options.writerId.length === 0)
    throw new TypeError('createDecisionRecorder: writerId must not be empty');
  const sinks = [...options.sinks];
  const newId = options.newId ?? randomUUID;
  let seq = 0;
  let prevHash = GENESIS_HASH;

  return {
    writerId: options.writerId,
    record(entry) {
      const unhashed: Record<string, unknown> = {
        decisionId: entry.decisionId ?? newId(),
        writerId: options.writerId,
        seq,
        prevHash,
        timestamp: options.clock.now().toISOString(),
      };
      for (const key of ENTRY_KEYS) {
        const value = (entry as Record<string, unknown>)[key];
        if (value !== undefined) unhashed[key] = value;
      }
      const record = {
        ...unhashed,
        hash: computeRecordHash(unhashed as Omit<DecisionRecord, 'hash'>),
      } as DecisionRecord;
      seq += 1;
      prevHash = record.hash;
      for (const sink of sinks) {
        try {
          sink.write(record);
        } catch (error) {
          options.onSinkError?.(error, sink);
        }
      }
      return record;
    },
  };
}

/** One JSON line per record, `msg: "decision"`, the record's fields at the top level. */
export function pinoDecisionSink(logger: Logger): DecisionSink {
  return {
    write(record) {
      logger.info(record, 'decision');
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
