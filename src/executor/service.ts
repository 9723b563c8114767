/**
 * `mcpworks executor` over HTTP: accepts tool calls only from its gateway (a shared per-server
 * bearer token, compared in constant time), refuses beyond its concurrency limit with 429 instead
 * of queueing, drains on shutdown, and exposes /healthz, /readyz and /metrics.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ZodError } from 'zod';
import type { Logger } from '../shared/logger.ts';
import { silentLogger } from '../shared/logger.ts';
import { isMcpworksError } from '../shared/errors.ts';
import { gracefulClose } from '../shared/graceful-http.ts';
import type { ExecutorMetrics } from './metrics.ts';
import { parseToolCallRequest } from './request-schema.ts';
import { SandboxOutcome, type ToolCallRequest, type ToolExecutor } from './types.ts';

export const CALLS_PATH = '/v1/calls';
/** Tool code is at most 64 KiB; arguments get the rest. */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
const BODY_TIMEOUT_MS = 10_000;

export interface ExecutorServiceOptions {
  executor: ToolExecutor;
  /** The bearer token the gateway presents. */
  token: string;
  maxConcurrency: number;
  metrics: ExecutorMetrics;
  maxBodyBytes?: number;
  logger?: Logger;
}

export interface ExecutorService {
  server: Server;
  listen(port: number, host: string): Promise<AddressInfo>;
  /** Marks the sandbox probe as passed: /readyz turns 200 and calls are accepted. */
  setReady(ready: boolean): void;
  /**
   * The pod is going: /readyz answers 503 so the endpoints drop it, while calls are still
   * accepted from gateways that resolved it a moment ago (drain comes after).
   */
  markStopping(): void;
  /**
   * Stops accepting calls (503 with `connection: close`, which the gateway's client sends again
   * elsewhere), waits for running ones (at most `timeoutMs`), then for the gateways to close
   * their idle keep-alive connections (at most the keep-alive timeout it advertises, plus a
   * second; not when `timeoutMs` is 0), and closes the listener and whatever is left.
   */
  drain(timeoutMs: number): Promise<void>;
  readonly inFlight: number;
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/** Constant-time check of an Authorization header against the expected token. */
export function bearerMatches(header: string | undefined, expected: Buffer): boolean {
  const match = /^Bearer ([^\s]+)$/.exec(header ?? '');
  const presented = digest(match?.[1] ?? '');
  return timingSafeEqual(presented, expected) && match !== null;
}

function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, {
    'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json',
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

function errorBody(code: string, message: string): { error: { code: string; message: string } } {
  return { error: { code, message } };
}

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer | 'too-large'> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return 'too-large';
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) return 'too-large';
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

export function createExecutorService(options: ExecutorServiceOptions): ExecutorService {
  if (options.token.length < 16)
    throw new Error('the executor token must be at least 16 characters');
  const expected = digest(options.token);
  const logger = options.logger ?? silentLogger();
  const metrics = options.metrics;
  const maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  let ready = false;
  let stopping = false;
  let draining = false;
  let inFlight = 0;
  let idle: (() => void) | undefined;
  const reject = (
    res: ServerResponse,
    reason: string,
    status: number,
    code: string,
    message: string,
    headers = {},
  ) => {
    metrics.rejected.inc({ reason });
    send(res, status, errorBody(code, message), headers);
  };

  async function handleCall(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!bearerMatches(req.headers.authorization, expected)) {
      return reject(
        res,
        'unauthenticated',
        401,
        'Unauthenticated',
        'a valid bearer token is required',
        {
          'www-authenticate': 'Bearer realm="mcpworks-executor"',
        },
      );
    }
    if (draining)
      return reject(res, 'draining', 503, 'ExecutorUnavailable', 'the executor is shutting down');
    if (!ready)
      return reject(
        res,
        'not_ready',
        503,
        'ExecutorUnavailable',
        'the sandbox self-test has not passed',
      );
    if (!(req.headers['content-type'] ?? '').startsWith('application/json')) {
      return reject(res, 'invalid', 415, 'InvalidInput', 'the body must be application/json');
    }
    // Refuse before reading the body: a full executor must not buffer what it will not run.
    if (inFlight >= options.maxConcurrency) {
      req.resume();
      return reject(
        res,
        'overloaded',
        429,
        'Overloaded',
        `at most ${options.maxConcurrency} concurrent calls`,
        {
          'retry-after': '1',
        },
      );
    }
    inFlight += 1;
    metrics.inFlight.set(inFlight);
    const abort = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    try {
      // A slow body must not hold a concurrency slot for long: the gateway sends it in one go.
      const bodyTimer = setTimeout(() => req.destroy(new Error('body timeout')), BODY_TIMEOUT_MS);
      let body: Buffer | 'too-large';
      try {
        body = await readBody(req, maxBody);
      } finally {
        clearTimeout(bodyTimer);
      }
      if (body === 'too-large') {
        return reject(res, 'invalid', 413, 'InvalidInput', `the body exceeds ${maxBody} bytes`);
      }
      let request: ToolCallRequest;
      try {
        request = parseToolCallRequest(JSON.parse(body.toString('utf8')));
      } catch (error) {
        const detail =
          error instanceof ZodError
            ? error.issues
                .slice(0, 5)
                .map((i) => `${i.path.join('.')}: ${i.message}`)
                .join('; ')
            : 'invalid JSON';
        return reject(res, 'invalid', 400, 'InvalidInput', `invalid tool call: ${detail}`);
      }
      const result = await options.executor.execute(request, abort.signal);
      const [, sandbox = 'none'] = result.executor.split('/');
      metrics.calls.inc({ runtime: request.tool.runtime, outcome: result.outcome, sandbox });
      if (result.outcome !== SandboxOutcome.Overloaded) {
        metrics.duration.observe(
          { runtime: request.tool.runtime, sandbox },
          result.durationMs / 1000,
        );
      }
      if (result.outcome === SandboxOutcome.Overloaded) {
        return reject(res, 'overloaded', 429, 'Overloaded', result.message ?? 'overloaded', {
          'retry-after': '1',
        });
      }
      send(res, 200, result);
    } catch (error) {
      const code = isMcpworksError(error) ? error.code : 'Internal';
      logger.error({ err: error }, 'executor request failed');
      send(
        res,
        code === 'InvalidInput' ? 400 : 500,
        errorBody(code, code === 'InvalidInput' ? 'invalid tool call' : 'internal error'),
      );
    } finally {
      inFlight -= 1;
      metrics.inFlight.set(inFlight);
      if (inFlight === 0) idle?.();
    }
  }

  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/healthz') return send(res, 200, 'ok\n');
    if (req.method === 'GET' && path === '/readyz') {
      return ready && !draining && !stopping
        ? send(res, 200, 'ready\n')
        : send(res, 503, draining ? 'draining\n' : stopping ? 'stopping\n' : 'not ready\n');
    }
    if (req.method === 'GET' && path === '/metrics') {
      void metrics.registry.metrics().then(
        (text) => send(res, 200, text, { 'content-type': metrics.registry.contentType }),
        () => send(res, 500, 'metrics unavailable\n'),
      );
      return;
    }
    if (path === CALLS_PATH) {
      if (req.method !== 'POST')
        return send(res, 405, errorBody('MethodNotAllowed', 'use POST'), { allow: 'POST' });
      void handleCall(req, res);
      return;
    }
    send(res, 404, errorBody('NotFound', 'not found'));
  });
  // Once draining, every answer closes its connection: the gateway opens a new one elsewhere.
  const closer = gracefulClose(server);
  server.requestTimeout = 0; // calls may legitimately run up to the tool's timeout (max 300 s)
  server.headersTimeout = 10_000;

  return {
    server,
    get inFlight() {
      return inFlight;
    },
    listen(port, host) {
      return new Promise((resolve, rejectListen) => {
        server.once('error', rejectListen);
        server.listen(port, host, () => {
          server.off('error', rejectListen);
          resolve(server.address() as AddressInfo);
        });
      });
    },
    setReady(value) {
      ready = value;
      metrics.ready.set(value ? 1 : 0);
    },
    markStopping() {
      stopping = true;
      metrics.ready.set(0);
    },
    async drain(timeoutMs) {
      draining = true;
      closer.beginClosing();
      metrics.ready.set(0);
      if (inFlight > 0) {
        await new Promise<void>((resolve) => {
          idle = resolve;
          setTimeout(resolve, timeoutMs).unref();
        });
      }
      // Idle keep-alive connections are not closed from this side while a gateway may be writing
      // its next call on one: the reset would lose that call, and the client cannot tell it never
      // ran. A call sent on one now gets the 503 above; the rest the gateways close themselves
      // once the keep-alive timeout this server advertises runs out.
      if (timeoutMs > 0) await closer.connectionsClosed();
      await closer.closeNow();
    },
  };
}
