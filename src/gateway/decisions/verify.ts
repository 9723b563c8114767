import type { KeyObject } from 'node:crypto';
import { unfaithfulJson } from '../faithful-json.ts';
import { argumentsDigest } from './canonical.ts';
import { decisionLine } from './recorder.ts';
import {
  DecisionRecordSchema,
  GENESIS_HASH,
  computeRecordHash,
  type DecisionRecord,
} from './record.ts';
import { keyIdOf, verifyRecordSignature } from './signing.ts';

/**
 * Checks the hash chains of a decision log (pure: give it the lines). Lines that are not decision
 * records (other pino logs, blank lines, text) are skipped; records are recognised by
 * `msg: "decision"`. Each writer (gateway process) has its own chain, so several replicas may
 * share one file in any interleaving.
 *
 * What it finds, first one wins: a record whose content no longer matches its hash (altered), a
 * record whose predecessor's hash is not the one it chains from (the predecessor was altered and
 * re-hashed, or replaced), a gap in a writer's sequence numbers (deleted — or reordered when the
 * missing record turns up later in the input), a sequence number going backwards (reordered or
 * duplicated), a decision line that is not a valid record (malformed), and — when told the last
 * sequence number each writer reached, e.g. from the gateway's metrics — records missing at the
 * end (truncated). A chain alone cannot reveal a truncated tail, nor a whole tail rewritten by
 * someone who recomputes every hash: ship logs off the host to rule that out.
 *
 * Writer identity, when given the writers' Ed25519 public keys: every record must carry a
 * signature (unsigned), by one of those keys (unknown-key), that verifies over the record's
 * signing input (bad-signature). A chain fabricated with valid hashes then fails at its first
 * record. Without keys signatures are not checked, and the report says so.
 */
export type ChainProblem =
  | 'altered'
  | 'deleted'
  | 'reordered'
  | 'malformed'
  | 'truncated'
  | 'unsigned'
  | 'unknown-key'
  | 'bad-signature';

export interface ChainBreak {
  problem: ChainProblem;
  /** 1-based line number of the record at fault. */
  line: number;
  writerId?: string;
  seq?: number;
  message: string;
}

export interface WriterSummary {
  writerId: string;
  records: number;
  firstSeq: number;
  lastSeq: number;
  lastHash: string;
}

export interface ChainReport {
  ok: boolean;
  records: number;
  writers: WriterSummary[];
  /** The first break, when not ok. */
  break?: ChainBreak;
  /** Facts worth knowing that are not breaks, e.g. a chain that starts after seq 0 (rotated log). */
  notes: string[];
  identity: IdentityReport;
}

export interface IdentityReport {
  /** Whether signatures were checked (public keys were given): a record without a valid one breaks. */
  checked: boolean;
  /** Records (before any break) that carry a signature; verified ones when `checked`. */
  signedRecords: number;
  /** The keyIds those signatures name, sorted. */
  keyIds: string[];
}

export interface VerifyOptions {
  /** Writers whose chain must start at seq 0 in this input (a complete log, not a rotated one). */
  requireStart?: boolean;
  /** The last seq each writer is known to have written; fewer records in the input is truncation. */
  expectLastSeq?: ReadonlyMap<string, number>;
  /**
   * Ed25519 public keys of the writers (several during a key rotation): every record must be
   * signed by one of them. Without, signatures are not checked.
   */
  publicKeys?: readonly KeyObject[];
}

interface Parsed {
  line: number;
  record?: DecisionRecord;
  /** The record's fields as written (nested members the schema does not know included): what was hashed. */
  written?: Record<string, unknown>;
  malformed?: string;
  seqHint?: number;
}

export function verifyChain(lines: readonly string[], options: VerifyOptions = {}): ChainReport {
  const verifier = new ChainVerifier(options);
  lines.forEach((text) => verifier.push(text));
  return verifier.finish();
}

/**
 * The same check, one line at a time, in memory proportional to the number of writers, so that
 * `mcpworks audit verify` can read logs larger than memory from a file or a pipe.
 */
export class ChainVerifier {
  readonly #options: VerifyOptions;
  readonly #writers = new Map<string, WriterSummary & { lastLine: number }>();
  readonly #notes: string[] = [];
  readonly #publicKeys: ReadonlyMap<string, KeyObject> | undefined;
  readonly #keyIds = new Set<string>();
  #signed = 0;
  #records = 0;
  #line = 0;
  #break: ChainBreak | undefined;
  /** A gap seen at `line`: a deletion, unless a missing seq turns up later (then out of order). */
  #gap: { writerId: string; from: number; to: number; line: number; seq: number } | undefined;

  constructor(options: VerifyOptions = {}) {
    this.#options = options;
    if (options.publicKeys !== undefined) {
      if (options.publicKeys.length === 0)
        throw new TypeError('ChainVerifier: publicKeys, when given, must not be empty');
      this.#publicKeys = new Map(options.publicKeys.map((key) => [keyIdOf(key), key]));
    }
  }

  /** Feeds the next line of the log. */
  push(text: string): void {
    const line = ++this.#line;
    if (this.#break !== undefined) return;
    const entry = parseLine(text, line);
    if (entry === undefined) return;
    if (this.#gap !== undefined) {
      const gap = this.#gap;
      const seq = entry.record?.seq;
      if (
        entry.record?.writerId === gap.writerId &&
        seq !== undefined &&
        seq >= gap.from &&
        seq < gap.to
      ) {
        this.#break = {
          problem: 'reordered',
          line: gap.line,
          writerId: gap.writerId,
          seq: gap.seq,
          message: `record at line ${gap.line} (writer ${gap.writerId}, seq ${gap.seq}) is out of order: seq ${seq} comes later in the input (line ${line})`,
        };
      }
      return;
    }
    this.#check(entry);
  }

  finish(): ChainReport {
    if (this.#break === undefined && this.#gap !== undefined) {
      const { writerId, from, to, line, seq } = this.#gap;
      const range = from === to - 1 ? `seq ${from}` : `seq ${from}..${to - 1}`;
      this.#break = {
        problem: 'deleted',
        line,
        writerId,
        seq,
        message: `records ${range} of writer ${writerId} are missing before line ${line}`,
      };
    }
    if (this.#break === undefined) {
      for (const [writerId, lastSeq] of this.#options.expectLastSeq ?? []) {
        const state = this.#writers.get(writerId);
        if (state !== undefined && state.lastSeq >= lastSeq) continue;
        const have = state === undefined ? 'no records' : `records up to seq ${state.lastSeq}`;
        this.#break = {
          problem: 'truncated',
          line: state?.lastLine ?? 0,
          writerId,
          ...(state === undefined ? {} : { seq: state.lastSeq }),
          message: `writer ${writerId} wrote up to seq ${lastSeq} but the input has ${have}: the log was truncated`,
        };
        break;
      }
    }
    const writers = summaries(this.#writers);
    const identity: IdentityReport = {
      checked: this.#publicKeys !== undefined,
      signedRecords: this.#signed,
      keyIds: [...this.#keyIds].sort(),
    };
    const notes = [...this.#notes];
    if (!identity.checked) {
      notes.push(
        `writer identity was not checked (no public key given): ${this.#signed} of ${this.#records} records carry a signature, none was verified, and a chain fabricated with valid hashes would pass as well`,
      );
    }
    const report = { records: this.#records, writers, notes, identity };
    return this.#break === undefined
      ? { ok: true, ...report }
      : { ok: false, ...report, break: this.#break };
  }

  #check({ line, record, written, malformed, seqHint }: Parsed): void {
    const fail = (found: ChainBreak) => {
      this.#break = found;
    };
    if (record === undefined || written === undefined) {
      return fail({
        problem: 'malformed',
        line,
        ...(seqHint === undefined ? {} : { seq: seqHint }),
        message: `line ${line} is a decision line but not a valid record: ${malformed}`,
      });
    }
    const { writerId, seq } = record;
    const at = `line ${line} (writer ${writerId}, seq ${seq})`;
    if (computeRecordHash(written as DecisionRecord) !== record.hash) {
      return fail({
        problem: 'altered',
        line,
        writerId,
        seq,
        message: `record at ${at} was altered: its content does not match its hash`,
      });
    }
    if (record.arguments !== undefined && record.argumentsSha256 === undefined) {
      return fail({
        problem: 'altered',
        line,
        writerId,
        seq,
        message: `record at ${at} was altered: it carries arguments but the recorder wrote no argumentsSha256 for it`,
      });
    }
    if (
      record.arguments !== undefined &&
      record.argumentsSha256 !== undefined &&
      argumentsDigest(record.arguments) !== record.argumentsSha256
    ) {
      return fail({
        problem: 'altered',
        line,
        writerId,
        seq,
        message: `record at ${at} was altered: its arguments do not match argumentsSha256`,
      });
    }
    const identity = this.#identityBreak(record, line, at);
    if (identity !== undefined) return fail(identity);
    if (record.signature !== undefined && record.keyId !== undefined) {
      this.#signed++;
      this.#keyIds.add(record.keyId);
    }
    const state = this.#writers.get(writerId);
    if (state === undefined) {
      if (seq === 0 && record.prevHash !== GENESIS_HASH) {
        return fail({
          problem: 'altered',
          line,
          writerId,
          seq,
          message: `record at ${at} starts a chain but does not chain from the genesis hash`,
        });
      }
      if (seq > 0) {
        if (this.#options.requireStart === true) {
          return fail({
            problem: 'deleted',
            line,
            writerId,
            seq,
            message: `records seq 0..${seq - 1} of writer ${writerId} are missing before line ${line}`,
          });
        }
        this.#notes.push(
          `writer ${writerId}: chain starts at seq ${seq} (earlier records are not in this input, e.g. a rotated log)`,
        );
      }
      this.#writers.set(writerId, {
        writerId,
        records: 1,
        firstSeq: seq,
        lastSeq: seq,
        lastHash: record.hash,
        lastLine: line,
      });
      this.#records++;
      return;
    }
    const expected = state.lastSeq + 1;
    if (seq > expected) {
      this.#gap = { writerId, from: expected, to: seq, line, seq };
      return;
    }
    if (seq < expected) {
      const what =
        seq === state.lastSeq && record.hash === state.lastHash
          ? 'duplicates the record before it'
          : `comes after seq ${state.lastSeq}`;
      return fail({
        problem: 'reordered',
        line,
        writerId,
        seq,
        message: `record at ${at} is out of order: it ${what}`,
      });
    }
    if (record.prevHash !== state.lastHash) {
      return fail({
        problem: 'altered',
        line: state.lastLine,
        writerId,
        seq: state.lastSeq,
        message: `record at line ${state.lastLine} (writer ${writerId}, seq ${state.lastSeq}) was altered or replaced: the next record (line ${line}) chains from a different hash`,
      });
    }
    state.records++;
    state.lastSeq = seq;
    state.lastHash = record.hash;
    state.lastLine = line;
    this.#records++;
  }

  /** With public keys: the record must be signed by one of them, and the signature must verify. */
  #identityBreak(record: DecisionRecord, line: number, at: string): ChainBreak | undefined {
    if (this.#publicKeys === undefined) return undefined;
    const { writerId, seq, hash, keyId, signature } = record;
    const where = { line, writerId, seq };
    if (keyId === undefined || signature === undefined) {
      return {
        problem: 'unsigned',
        ...where,
        message: `record at ${at} is not signed: its writer's identity cannot be verified (a chain fabricated with valid hashes looks like this)`,
      };
    }
    const key = this.#publicKeys.get(keyId);
    if (key === undefined) {
      return {
        problem: 'unknown-key',
        ...where,
        message: `record at ${at} is signed by key ${keyId}, which is not among the given public keys (${[...this.#publicKeys.keys()].join(', ')})`,
      };
    }
    if (!verifyRecordSignature(key, { hash, keyId, seq, writerId }, signature)) {
      return {
        problem: 'bad-signature',
        ...where,
        message: `record at ${at} has a signature that does not verify with key ${keyId}: forged, or copied from another record`,
      };
    }
    return undefined;
  }
}

const RECORD_KEYS = Object.keys(DecisionRecordSchema.shape);

function parseLine(text: string, line: number): Parsed | undefined {
  const trimmed = text.trim();
  if (trimmed === '') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(trimmed);
  } catch {
    // Not JSON: another program's output, unless it claims to be a decision (a damaged record).
    return /"msg"\s*:\s*"decision"|^\{"level":"info","(argumentsSha256|audit|authentication|decisionId)"/.test(
      trimmed,
    )
      ? { line, malformed: 'not valid JSON' }
      : undefined;
  }
  if (
    typeof value !== 'object' ||
    value === null ||
    (value as { msg?: unknown }).msg !== 'decision'
  )
    return undefined;
  const candidate = { ...(value as Record<string, unknown>) };
  const args = candidate['arguments'];
  // A log pipeline may redact raw arguments (pino's redaction writes a string); they are outside the hash.
  if (typeof args !== 'object' || args === null) delete candidate['arguments'];
  const result = DecisionRecordSchema.safeParse(candidate);
  if (result.success) {
    // Only the exact bytes the recorder writes: first-wins readers and grep would see a forged
    // value placed before the genuine one, and members the schema ignores are not what was hashed.
    if (decisionLine(result.data, args) !== trimmed) {
      const repeated = unfaithfulJson(trimmed);
      return {
        line,
        malformed:
          repeated !== undefined
            ? `not a line the recorder writes: ${repeated}`
            : 'not a line the recorder writes: its members, their order or its spacing differ from the canonical form',
        seqHint: result.data.seq,
      };
    }
    const written: Record<string, unknown> = {};
    for (const key of RECORD_KEYS) if (candidate[key] !== undefined) written[key] = candidate[key];
    return { line, record: result.data, written };
  }
  const issue = result.error.issues[0];
  const seq = candidate['seq'];
  return {
    line,
    malformed: `${issue?.path.join('.') || 'record'}: ${issue?.message ?? 'invalid'}`,
    ...(typeof seq === 'number' ? { seqHint: seq } : {}),
  };
}

function summaries(writers: Map<string, WriterSummary & { lastLine: number }>): WriterSummary[] {
  return [...writers.values()]
    .map(({ lastLine: _lastLine, ...summary }) => summary)
    .sort((a, b) => (a.writerId < b.writerId ? -1 : a.writerId > b.writerId ? 1 : 0));
}
