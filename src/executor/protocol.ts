/**
 * The wire between the executor and the bootstrap inside a sandbox, and the pure decision of a
 * call's outcome from what the sandbox left behind (exit status, cgroup counters, output).
 */
import type { Runtime } from '../api/v1alpha1/mcpserver.ts';
import type { CgroupUsage } from './cgroups.ts';
import {
  SandboxOutcome,
  type CallTimings,
  type TextContent,
  type ToolCallResult,
} from './types.ts';

/** nsjail exits 128+n when the jailed process died of signal n. */
export const SIGNAL_EXIT_BASE = 128;
export const SIGKILL = 9;
export const SIGSYS = 31;
/** What bash (and most programs) print when fork() fails with EAGAIN. */
const FORK_FAILED = /fork: (retry: )?Resource temporarily unavailable/;

export interface CallPayload {
  code: string;
  args: Record<string, unknown>;
  env: Readonly<Record<string, string>>;
}

/** What one sandbox wants on stdin. */
export function encodeCall(runtime: Runtime, payload: CallPayload): Buffer {
  if (runtime !== 'bash') {
    // One line: JSON text never holds a raw newline, so the bootstrap starts on the newline
    // without waiting for the pipe to close (EOF comes a loop turn later, after other work).
    return Buffer.from(
      JSON.stringify({ code: payload.code, args: payload.args, env: payload.env }) + '\n',
      'utf8',
    );
  }
  // NUL-separated header, then the arguments as JSON until EOF (see bootstrap/bash.sh).
  const fields: string[] = [String(Object.keys(payload.env).length)];
  for (const [name, value] of Object.entries(payload.env)) fields.push(name, value);
  fields.push(payload.code);
  for (const field of fields) {
    if (field.includes('\0')) throw new Error('bash calls cannot carry NUL characters');
  }
  return Buffer.concat([
    Buffer.from(fields.join('\0') + '\0', 'utf8'),
    Buffer.from(JSON.stringify(payload.args), 'utf8'),
  ]);
}

/**
 * The most a call may write to its logs (stderr, and stdout for python/node, which are not the
 * result channel). Beyond it the sandbox is stopped: a flooding tool would otherwise keep the
 * executor busy reading and discarding what it writes.
 */
export const LOG_CAP_BYTES = 1024 * 1024;

/** What the runner observed about one finished sandbox. */
export interface SandboxRun {
  runtime: Runtime;
  /** nsjail's exit status (null if it was killed itself). */
  exitCode: number | null;
  /** The executor killed it because the tool's timeout elapsed. */
  timedOut: boolean;
  /** The result channel went over the tool's maxOutputBytes; the sandbox was stopped. */
  outputExceeded: boolean;
  /** The sandbox was stopped because the caller went away. */
  aborted: boolean;
  /** The code's logs (stderr, and stdout for python/node) went over LOG_CAP_BYTES; stopped. */
  logsExceeded: boolean;
  /** The result channel (fd 3 for python/node, stdout for bash), at most maxOutputBytes. */
  result: Buffer;
  /** Total bytes written to the result channel, even beyond the cap. */
  resultBytes: number;
  /** Last bytes of the code's stderr (and stdout for python/node), for error messages. */
  logTail: string;
  /** nsjail's own log lines (setup failures). */
  jailLog: string;
  usage: CgroupUsage;
  /** The python/node frame, parsed once when it arrived whole (undefined otherwise). */
  frame?: unknown;
  /** Host monotonic microseconds: call written, frame seen, counters read (see callTimings). */
  marks: { writeUs: number; frameUs?: number; countersUs?: number };
  durationMs: number;
  maxOutputBytes: number;
  timeoutSeconds: number;
  memoryMiB: number;
  pids: number;
}

type ResultCore = Pick<
  ToolCallResult,
  'outcome' | 'isError' | 'content' | 'structuredContent' | 'message'
>;

function text(t: string): TextContent[] {
  return [{ type: 'text', text: t }];
}

function failure(outcome: SandboxOutcome, message: string, extra?: string): ResultCore {
  return {
    outcome,
    isError: true,
    content: text(extra ? `${message}\n${extra}` : message),
    message,
  };
}

const HOST_PATH = /(\/(?:root|home|work|var\/lib|tmp\/[^\s/]*mcpworks)[^\s'"]*)/g;

/** Removes anything that looks like a host path from text shown to a client. */
export function scrubHostPaths(value: string): string {
  return value.replace(HOST_PATH, '<path>');
}

function tail(log: string, max = 2000): string {
  const trimmed = log.trim();
  return scrubHostPaths(trimmed.length > max ? '…' + trimmed.slice(-max) : trimmed);
}

function frameToResult(frame: unknown): ResultCore {
  if (typeof frame !== 'object' || frame === null || !('ok' in frame)) {
    return failure(SandboxOutcome.Error, 'the sandbox returned a malformed result');
  }
  const f = frame as {
    ok: boolean;
    value?: unknown;
    error?: { type?: unknown; message?: unknown; line?: unknown };
  };
  if (!f.ok) {
    const type = typeof f.error?.type === 'string' ? f.error.type : 'Error';
    const msg = typeof f.error?.message === 'string' ? f.error.message : '';
    const line = typeof f.error?.line === 'number' ? ` (line ${f.error.line})` : '';
    const message = scrubHostPaths(`${type}: ${msg}${line}`);
    return { outcome: SandboxOutcome.Error, isError: true, content: text(message), message };
  }
  const value = f.value;
  if (typeof value === 'string')
    return { outcome: SandboxOutcome.Ok, isError: false, content: text(value) };
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    return {
      outcome: SandboxOutcome.Ok,
      isError: false,
      content: text(JSON.stringify(value)),
      structuredContent: value as Record<string, unknown>,
    };
  }
  return {
    outcome: SandboxOutcome.Ok,
    isError: false,
    content: text(JSON.stringify(value ?? null)),
  };
}

/**
 * Decides the outcome. Limits first (they explain every other symptom: a process killed by the
 * memory cgroup exits 137, a fork bomb ends in errors or a timeout), then the executor's own
 * kills, then a seccomp kill, then what the code itself reported.
 */
export function classifyRun(run: SandboxRun): ResultCore {
  const signal =
    run.exitCode !== null && run.exitCode > SIGNAL_EXIT_BASE
      ? run.exitCode - SIGNAL_EXIT_BASE
      : undefined;
  if (run.usage.memoryLimitHit && (signal === SIGKILL || run.timedOut || run.exitCode !== 0)) {
    return failure(
      SandboxOutcome.MemoryLimit,
      `killed: the tool exceeded its memory limit of ${run.memoryMiB} MiB`,
    );
  }
  if (
    run.usage.pidsLimitHit &&
    (run.timedOut || run.exitCode !== 0 || !looksOk(run) || FORK_FAILED.test(run.logTail))
  ) {
    return failure(
      SandboxOutcome.PidsLimit,
      `stopped: the tool reached its limit of ${run.pids} processes`,
    );
  }
  if (run.aborted) {
    return failure(
      SandboxOutcome.Error,
      'cancelled: the caller went away before the tool finished',
    );
  }
  if (run.logsExceeded) {
    return failure(
      SandboxOutcome.OutputTruncated,
      `output truncated: the tool wrote more than ${LOG_CAP_BYTES} bytes of logs (stdout/stderr); it was stopped`,
    );
  }
  if (run.outputExceeded) {
    const partial = run.result.toString('utf8');
    return {
      outcome: SandboxOutcome.OutputTruncated,
      isError: true,
      content: text(partial),
      message: `output truncated: the tool wrote more than ${run.maxOutputBytes} bytes`,
    };
  }
  if (run.timedOut) {
    return failure(SandboxOutcome.Timeout, `timed out after ${run.timeoutSeconds} s`);
  }
  if (signal === SIGSYS) {
    return failure(
      SandboxOutcome.SandboxViolation,
      'killed: the tool made a system call the sandbox forbids',
    );
  }
  if (run.runtime === 'bash') {
    const out = run.result.toString('utf8');
    if (run.exitCode === 0)
      return { outcome: SandboxOutcome.Ok, isError: false, content: text(out) };
    if (signal !== undefined)
      return failure(
        SandboxOutcome.Error,
        `the script was killed by signal ${signal}`,
        tail(run.logTail),
      );
    const message = `the script exited with status ${run.exitCode}`;
    const details = [out.trim(), tail(run.logTail)].filter((s) => s.length > 0).join('\n');
    return failure(SandboxOutcome.Error, message, details);
  }
  if (run.resultBytes > 0) {
    let frame = run.frame;
    if (frame === undefined) {
      try {
        frame = JSON.parse(run.result.toString('utf8'));
      } catch {
        return failure(SandboxOutcome.Error, 'the sandbox returned a malformed result');
      }
    }
    return frameToResult(frame);
  }
  if (signal !== undefined) {
    return failure(
      SandboxOutcome.Error,
      `the tool process was killed by signal ${signal}`,
      tail(run.logTail),
    );
  }
  return failure(
    SandboxOutcome.Error,
    run.exitCode === 255 && run.jailLog.length > 0
      ? 'the sandbox could not start'
      : `the tool process exited (status ${run.exitCode}) without a result`,
    tail(run.logTail),
  );
}

function looksOk(run: SandboxRun): boolean {
  if (run.runtime === 'bash') return run.exitCode === 0;
  if (run.frame !== undefined) return (run.frame as { ok?: unknown }).ok === true;
  try {
    return (JSON.parse(run.result.toString('utf8')) as { ok?: unknown }).ok === true;
  } catch {
    return false;
  }
}

/** The clock the bootstraps stamp frames with (CLOCK_MONOTONIC, shared with the sandbox), in µs. */
export function monotonicMicros(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

const ms = (micros: number) => Math.round(micros) / 1000;

/**
 * Where a sandbox run's time went, from the host's marks and the two stamps the python/node
 * bootstraps put in their frame (`t: [call read, frame written]`, same monotonic clock): the
 * hand-off of the call into the sandbox, the interpreter's own work, the frame's way back, and
 * reading the cgroup counters. Stamps that do not fit the host's marks (a tool may write its own
 * frame) are ignored rather than trusted.
 */
export function callTimings(run: SandboxRun): CallTimings {
  const { writeUs, frameUs, countersUs } = run.marks;
  const timings: CallTimings = {};
  if (frameUs !== undefined && countersUs !== undefined)
    timings.countersMs = ms(countersUs - frameUs);
  const stamps = (run.frame as { t?: unknown } | undefined)?.t;
  if (frameUs === undefined || !Array.isArray(stamps) || stamps.length !== 2) return timings;
  const [readUs, wroteUs] = stamps as unknown[];
  if (typeof readUs !== 'number' || typeof wroteUs !== 'number') return timings;
  if (!(writeUs <= readUs && readUs <= wroteUs && wroteUs <= frameUs)) return timings;
  timings.handoffMs = ms(readUs - writeUs);
  timings.interpreterMs = ms(wroteUs - readUs);
  timings.returnMs = ms(frameUs - wroteUs);
  return timings;
}
