/**
 * The gateway's side of the executor service: a ToolExecutor that POSTs each call with the
 * per-server executor token (never the MCP client's token). A call runs at most once: it is sent
 * again only when the executor provably did not start it — the connection was refused (a pod
 * going away behind the Service, before its endpoint is dropped) or the executor answered 503
 * (draining or not ready, decided before the call is read) — at most RETRY_DELAYS_MS.length
 * times and within the call's deadline. A reset or a lost answer is never retried (the call may
 * have run); a 429 is not either (the gateway's queue decides what waits).
 */
import { systemClock } from '../shared/clock.ts';
import { ErrorCode, McpworksError } from '../shared/errors.ts';
import { silentLogger } from '../shared/logger.ts';
import { CALLS_PATH } from './service.ts';
import {
  RefusalReason,
  SANDBOX_OUTCOMES,
  SandboxOutcome,
  type ExecutorClientOptions,
  type ToolCallRequest,
  type ToolCallResult,
  type ToolExecutor,
} from './types.ts';

const DEFAULT_GRACE_MS = 5000;
/** Pauses before sending a call again that the executor provably did not start. */
export const RETRY_DELAYS_MS: readonly number[] = [50, 200];

/** A fetch failure in which no connection was made: the executor never saw the request. */
export function connectionRefused(error: unknown): boolean {
  const cause = (error as { cause?: { code?: unknown } } | null)?.cause;
  return cause?.code === 'ECONNREFUSED';
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

function result(
  outcome: SandboxOutcome,
  message: string,
  executor: string,
  durationMs = 0,
): ToolCallResult {
  return {
    outcome,
    isError: true,
    content: [{ type: 'text', text: message }],
    durationMs,
    outputBytes: 0,
    executor,
    message,
  };
}

/**
 * What the executor service receives: what it runs, nothing about who asked (`caller` is the
 * gateway's fairness key; an executor of an older version refuses members it does not know).
 */
function wireBody(request: ToolCallRequest): string {
  const { callId, server, tool, arguments: args, egressDenied } = request;
  return JSON.stringify({ callId, server, tool, arguments: args, egressDenied });
}

function isResult(value: unknown): value is ToolCallResult {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Partial<ToolCallResult>;
  return (
    typeof v.outcome === 'string' &&
    (SANDBOX_OUTCOMES as readonly string[]).includes(v.outcome) &&
    typeof v.isError === 'boolean' &&
    Array.isArray(v.content) &&
    v.content.every(
      (c) => typeof c === 'object' && c !== null && c.type === 'text' && typeof c.text === 'string',
    ) &&
    typeof v.durationMs === 'number' &&
    typeof v.outputBytes === 'number' &&
    typeof v.executor === 'string' &&
    (v.redactions === undefined || isRedactionCounts(v.redactions))
  );
}

/** `redactions`: counts by secretEnv variable name, as the executor's redaction produced them. */
function isRedactionCounts(value: unknown): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  return Object.entries(value).every(
    ([name, count]) =>
      /^[A-Za-z_][A-Za-z0-9_]*$/.test(name) && Number.isSafeInteger(count) && (count as number) > 0,
  );
}

export function createExecutorClient(options: ExecutorClientOptions): ToolExecutor {
  let url: URL;
  try {
    url = new URL(CALLS_PATH, options.url);
  } catch (error) {
    throw new McpworksError(ErrorCode.InvalidInput, `invalid executor URL`, { cause: error });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new McpworksError(ErrorCode.InvalidInput, 'the executor URL must be http(s)');
  }
  if (options.token.length < 16)
    throw new McpworksError(ErrorCode.InvalidInput, 'the executor token is too short');
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? silentLogger();
  const grace = options.timeoutGraceMs ?? DEFAULT_GRACE_MS;
  const name = url.host;
  const inflight = new Set<AbortController>();

  return {
    async execute(request: ToolCallRequest, signal?: AbortSignal): Promise<ToolCallResult> {
      const started = clock.monotonicMs();
      const controller = new AbortController();
      inflight.add(controller);
      const deadline = request.tool.timeoutSeconds * 1000 + grace;
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        controller.abort();
      }, deadline);
      const onAbort = () => controller.abort();
      signal?.addEventListener('abort', onAbort, { once: true });
      const elapsed = () => clock.monotonicMs() - started;
      try {
        const wire = wireBody(request);
        const send = () =>
          fetch(url, {
            method: 'POST',
            headers: {
              authorization: `Bearer ${options.token}`,
              'content-type': 'application/json',
            },
            body: wire,
            signal: controller.signal,
            redirect: 'error',
          });
        let response: Response | undefined;
        let retries = 0;
        try {
          for (;;) {
            let notStarted: string;
            try {
              response = await send();
              if (response.status !== 503) break;
              notStarted = 'HTTP 503';
            } catch (error) {
              if (!connectionRefused(error)) throw error;
              notStarted = 'connection refused';
            }
            const delay = RETRY_DELAYS_MS[retries];
            if (delay === undefined || controller.signal.aborted) break;
            if (elapsed() + delay >= deadline) break;
            retries += 1;
            logger.info(
              { callId: request.callId, executor: name, retry: retries, why: notStarted },
              'executor did not start the call; sending it again',
            );
            if (response !== undefined) await response.body?.cancel().catch(() => undefined);
            response = undefined;
            await pause(delay, controller.signal);
          }
          if (response === undefined) throw new Error('connection refused');
        } catch (error) {
          if (timedOut) {
            return result(
              SandboxOutcome.Timeout,
              `no answer from the executor within ${deadline} ms`,
              name,
              elapsed(),
            );
          }
          if (signal?.aborted)
            return result(SandboxOutcome.Error, 'the call was cancelled', name, elapsed());
          logger.warn(
            { err: error, callId: request.callId, executor: name },
            'executor unreachable',
          );
          return result(
            SandboxOutcome.ExecutorUnavailable,
            'the executor is unreachable',
            name,
            elapsed(),
          );
        }
        const text = await response.text().catch(() => '');
        if (response.status === 429) {
          return {
            ...result(
              SandboxOutcome.Overloaded,
              'the executor is at its concurrency limit; try again later',
              name,
              elapsed(),
            ),
            refusal: RefusalReason.ExecutorBusy,
          };
        }
        if (response.status === 401 || response.status === 403) {
          logger.error(
            { callId: request.callId, executor: name, status: response.status },
            'executor refused the gateway token',
          );
          return result(
            SandboxOutcome.ExecutorUnavailable,
            'the executor refused the gateway credentials',
            name,
            elapsed(),
          );
        }
        if (response.status === 503) {
          return result(
            SandboxOutcome.ExecutorUnavailable,
            'the executor is not ready or shutting down',
            name,
            elapsed(),
          );
        }
        if (response.status !== 200) {
          logger.error(
            { callId: request.callId, executor: name, status: response.status },
            'executor error',
          );
          if (response.status === 400 || response.status === 413) {
            throw new McpworksError(
              ErrorCode.InvalidInput,
              'the executor rejected the call as invalid',
              {
                details: { status: response.status },
              },
            );
          }
          return result(
            SandboxOutcome.ExecutorUnavailable,
            `the executor failed (HTTP ${response.status})`,
            name,
            elapsed(),
          );
        }
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          body = undefined;
        }
        if (!isResult(body)) {
          return result(
            SandboxOutcome.ExecutorUnavailable,
            'the executor sent a malformed answer',
            name,
            elapsed(),
          );
        }
        // Only the client says why a call was refused (429 above); an answer does not.
        const { refusal: _refusal, ...answer } = body;
        return answer;
      } catch (error) {
        if (error instanceof McpworksError) throw error;
        if (timedOut)
          return result(
            SandboxOutcome.Timeout,
            `no answer from the executor within ${deadline} ms`,
            name,
            elapsed(),
          );
        return result(
          SandboxOutcome.ExecutorUnavailable,
          'the executor connection failed',
          name,
          elapsed(),
        );
      } finally {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        inflight.delete(controller);
      }
    },
    async close() {
      for (const controller of inflight) controller.abort();
    },
  };
}
