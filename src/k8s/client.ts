import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest, type RequestOptions } from 'node:https';
import { connect as http2Connect, constants as http2, type ClientHttp2Session } from 'node:http2';
import { ErrorCode, McpworksError } from '../shared/errors.ts';
import { kubeApiError, isNotFound } from './errors.ts';
import type { KubeConnection } from './kubeconfig.ts';
import { resourcePath, type ResourceType } from './resources.ts';
import type { KubeObject, WatchEvent } from './types.ts';

/** The field manager of every server-side apply this project makes. */
export const FIELD_MANAGER = 'mcpworks-controller';

export type WriteVerb = 'apply' | 'create' | 'update' | 'delete';

export interface ListOptions {
  namespace?: string | undefined;
  labelSelector?: string | undefined;
  fieldSelector?: string | undefined;
}

export interface ListResult<T extends KubeObject> {
  items: T[];
  resourceVersion: string;
}

export interface WatchOptions extends ListOptions {
  resourceVersion: string;
  /** Server-side timeout; the informer re-watches when the stream ends. */
  timeoutSeconds?: number;
  signal: AbortSignal;
}

/**
 * The one thin client interface over the Kubernetes API. Every write goes through it, so the
 * write counter (`onWrite`) sees all of them; every error is a typed McpworksError (errors.ts).
 */
export interface KubeClient {
  get<T extends KubeObject>(
    type: ResourceType,
    name: string,
    namespace?: string,
  ): Promise<T | undefined>;
  list<T extends KubeObject>(type: ResourceType, options?: ListOptions): Promise<ListResult<T>>;
  /** Streams watch events until the server closes the stream or `signal` aborts. */
  watch<T extends KubeObject>(
    type: ResourceType,
    options: WatchOptions,
    onEvent: (event: WatchEvent<T>) => void,
  ): Promise<void>;
  /** Server-side apply with force under FIELD_MANAGER. */
  apply<T extends KubeObject>(type: ResourceType, body: KubeObject): Promise<T>;
  /** Server-side apply of the status subresource. */
  applyStatus<T extends KubeObject>(type: ResourceType, body: KubeObject): Promise<T>;
  create<T extends KubeObject>(type: ResourceType, body: KubeObject): Promise<T>;
  /** PUT with the body's resourceVersion: optimistic concurrency (leases). */
  update<T extends KubeObject>(type: ResourceType, body: KubeObject): Promise<T>;
  delete(type: ResourceType, name: string, namespace?: string): Promise<void>;
}

export interface KubeClientOptions {
  /** Called once per write request that reached the server (success or not). */
  onWrite?: (verb: WriteVerb, resource: string) => void;
  /** Parallel connections to the API server (HTTP/1.1 only). */
  maxSockets?: number;
  /**
   * `http2` (over TLS only; watches stay on HTTP/1.1): every request is a stream on one
   * connection, as client-go does, so a slow request (a Service's ClusterIP allocation) never
   * holds up the others waiting for a free socket. Default `http1`.
   */
  transport?: 'http1' | 'http2';
  /** Per-request timeout for non-watch calls (counted from when the request is sent). */
  requestTimeoutMs?: number;
  /**
   * Requests sent at once (watches and Lease requests not counted); more wait in the client,
   * first come first served. Undefined: no limit. An API server that is the bottleneck gets
   * through more writes per second when it is not handed a thousand at once (docs/adr/0003).
   */
  maxRequestsInFlight?: number;
  fieldManager?: string;
}

interface Connection {
  base: URL;
  options: RequestOptions;
  expires: number;
}

export function createKubeClient(
  kubeConfig: KubeConnection,
  options: KubeClientOptions = {},
): KubeClient {
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster)
    throw new McpworksError(ErrorCode.InvalidInput, 'kubeconfig has no current cluster');
  const base = new URL(cluster.server);
  const secure = base.protocol === 'https:';
  const maxSockets = options.maxSockets ?? 16;
  const agent = secure
    ? new HttpsAgent({ keepAlive: true, maxSockets })
    : new HttpAgent({ keepAlive: true, maxSockets });
  const watchAgent = secure
    ? new HttpsAgent({ keepAlive: false })
    : new HttpAgent({ keepAlive: false });
  const timeoutMs = options.requestTimeoutMs ?? 30_000;
  const fieldManager = options.fieldManager ?? FIELD_MANAGER;
  const onWrite = options.onWrite ?? (() => {});
  let connection: Promise<Connection> | undefined;
  const useHttp2 = secure && options.transport === 'http2';
  let h2: { conn: Connection; session: ClientHttp2Session; active: number } | undefined;

  // Credentials can rotate (projected ServiceAccount tokens): re-read them every minute.
  const connect = async (): Promise<Connection> => {
    const current = connection ? await connection.catch(() => undefined) : undefined;
    if (current && current.expires > Date.now()) return current;
    connection = (async () => {
      const opts: RequestOptions = { headers: {} };
      await kubeConfig.applyToHTTPSOptions(opts);
      return { base, options: opts, expires: Date.now() + 60_000 };
    })();
    return connection;
  };

  /** The HTTP/2 session for these credentials; a new one (the old closes gracefully) when they change. */
  function http2Session(conn: Connection): NonNullable<typeof h2> {
    if (h2 && h2.conn === conn && !h2.session.closed && !h2.session.destroyed) return h2;
    const previous = h2;
    const o = conn.options;
    const session = http2Connect(conn.base.origin, {
      ca: o.ca,
      cert: o.cert,
      key: o.key,
      ...(o.servername ? { servername: o.servername } : {}),
      ...(o.rejectUnauthorized !== undefined ? { rejectUnauthorized: o.rejectUnauthorized } : {}),
    });
    const entry = { conn, session, active: 0 };
    const forget = () => {
      if (h2 === entry) h2 = undefined;
    };
    session.on('error', forget);
    session.on('goaway', forget);
    session.on('close', forget);
    session.unref();
    h2 = entry;
    previous?.session.close();
    return entry;
  }

  function callHttp2(
    conn: Connection,
    method: string,
    url: URL,
    payload: Buffer | undefined,
    contentType: string,
  ): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const fail = (err: Error) =>
        reject(
          err instanceof McpworksError
            ? err
            : new McpworksError(ErrorCode.Internal, `${method} ${url.pathname}: ${err.message}`, {
                cause: err,
              }),
        );
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(conn.options.headers ?? {}))
        if (typeof v === 'string') headers[k.toLowerCase()] = v;
      const entry = http2Session(conn);
      let stream: ReturnType<ClientHttp2Session['request']>;
      try {
        stream = entry.session.request(
          {
            ...headers,
            [http2.HTTP2_HEADER_METHOD]: method,
            [http2.HTTP2_HEADER_PATH]: `${url.pathname}${url.search}`,
            accept: 'application/json',
            ...(payload
              ? { 'content-type': contentType, 'content-length': String(payload.length) }
              : {}),
          },
          { endStream: !payload },
        );
      } catch (error) {
        fail(error as Error);
        return;
      }
      // An unref'd session must not let the process exit while a request is in flight.
      if (entry.active++ === 0) entry.session.ref();
      let status = 0;
      let ended = false;
      const chunks: Buffer[] = [];
      stream.setTimeout(timeoutMs, () => {
        fail(new McpworksError(ErrorCode.Timeout, `${method} ${url.pathname}: timed out`));
        stream.close(http2.NGHTTP2_CANCEL);
      });
      stream.on('response', (h) => {
        status = Number(h[http2.HTTP2_HEADER_STATUS] ?? 0);
      });
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        ended = true;
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown;
        try {
          parsed = text ? JSON.parse(text) : undefined;
        } catch {
          parsed = text;
        }
        if (status >= 200 && status < 300) resolve(parsed);
        else reject(kubeApiError(status, parsed, { verb: method, path: url.pathname }));
      });
      stream.on('error', fail);
      stream.on('close', () => {
        if (--entry.active === 0) entry.session.unref();
        if (!ended) fail(new Error(`stream closed (HTTP/2 code ${stream.rstCode})`));
      });
      if (payload) stream.end(payload);
    });
  }

  const limit = createLimiter(options.maxRequestsInFlight);

  async function call(
    method: string,
    path: string,
    query: Record<string, string | undefined>,
    body: unknown,
    contentType = 'application/json',
  ): Promise<unknown> {
    // Lease renewals never wait behind a queue of applies: a missed renewal loses leadership.
    if (path.includes('/leases')) return send(method, path, query, body, contentType);
    return limit(() => send(method, path, query, body, contentType));
  }

  async function send(
    method: string,
    path: string,
    query: Record<string, string | undefined>,
    body: unknown,
    contentType: string,
  ): Promise<unknown> {
    const conn = await connect();
    const url = new URL(path, conn.base);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, v);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    if (useHttp2) return callHttp2(conn, method, url, payload, contentType);
    return new Promise((resolve, reject) => {
      const req = (secure ? httpsRequest : httpRequest)(
        url,
        {
          ...conn.options,
          method,
          agent,
          timeout: timeoutMs,
          headers: {
            ...(conn.options.headers as Record<string, string>),
            accept: 'application/json',
            ...(payload
              ? { 'content-type': contentType, 'content-length': String(payload.length) }
              : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown;
            try {
              parsed = text ? JSON.parse(text) : undefined;
            } catch {
              parsed = text;
            }
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) resolve(parsed);
            else reject(kubeApiError(status, parsed, { verb: method, path: url.pathname }));
          });
        },
      );
      req.on('timeout', () =>
        req.destroy(new McpworksError(ErrorCode.Timeout, `${method} ${url.pathname}: timed out`)),
      );
      req.on('error', (err) =>
        reject(
          err instanceof McpworksError
            ? err
            : new McpworksError(ErrorCode.Internal, `${method} ${url.pathname}: ${err.message}`, {
                cause: err,
              }),
        ),
      );
      if (payload) req.write(payload);
      req.end();
    });
  }

  const nameOf = (body: KubeObject): string => {
    const name = body.metadata?.name;
    if (!name)
      throw new McpworksError(
        ErrorCode.InvalidInput,
        `${body.kind ?? 'object'} without metadata.name`,
      );
    return name;
  };

  async function write<T>(
    verb: WriteVerb,
    type: ResourceType,
    fn: () => Promise<unknown>,
  ): Promise<T> {
    onWrite(verb, type.plural);
    return (await fn()) as T;
  }

  return {
    async get<T extends KubeObject>(type: ResourceType, name: string, namespace?: string) {
      try {
        return (await call('GET', resourcePath(type, { namespace, name }), {}, undefined)) as T;
      } catch (error) {
        if (isNotFound(error)) return undefined;
        throw error;
      }
    },
    async list<T extends KubeObject>(type: ResourceType, opts: ListOptions = {}) {
      const result = (await call(
        'GET',
        resourcePath(type, { namespace: opts.namespace }),
        {
          labelSelector: opts.labelSelector,
          fieldSelector: opts.fieldSelector,
        },
        undefined,
      )) as { items?: T[]; metadata?: { resourceVersion?: string } };
      const kind = type.kind;
      const items = (result.items ?? []).map((item) => ({
        apiVersion: type.apiVersion,
        kind,
        ...item,
      }));
      return { items, resourceVersion: result.metadata?.resourceVersion ?? '' };
    },
    async watch<T extends KubeObject>(
      type: ResourceType,
      opts: WatchOptions,
      onEvent: (event: WatchEvent<T>) => void,
    ) {
      const conn = await connect();
      const url = new URL(resourcePath(type, { namespace: opts.namespace }), conn.base);
      url.searchParams.set('watch', 'true');
      url.searchParams.set('allowWatchBookmarks', 'true');
      url.searchParams.set('resourceVersion', opts.resourceVersion);
      url.searchParams.set('timeoutSeconds', String(opts.timeoutSeconds ?? 300));
      if (opts.labelSelector) url.searchParams.set('labelSelector', opts.labelSelector);
      if (opts.fieldSelector) url.searchParams.set('fieldSelector', opts.fieldSelector);
      await new Promise<void>((resolve, reject) => {
        if (opts.signal.aborted) return resolve();
        const req = (secure ? httpsRequest : httpRequest)(
          url,
          {
            ...conn.options,
            method: 'GET',
            agent: watchAgent,
            signal: opts.signal,
            headers: {
              ...(conn.options.headers as Record<string, string>),
              accept: 'application/json',
            },
          },
          (res) => {
            const status = res.statusCode ?? 0;
            if (status < 200 || status >= 300) {
              const chunks: Buffer[] = [];
              res.on('data', (c: Buffer) => chunks.push(c));
              res.on('end', () => {
                let parsed: unknown;
                try {
                  parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
                } catch {
                  parsed = undefined;
                }
                reject(kubeApiError(status, parsed, { verb: 'WATCH', path: url.pathname }));
              });
              return;
            }
            let buffered = '';
            res.setEncoding('utf8');
            res.on('data', (chunk: string) => {
              buffered += chunk;
              let newline: number;
              while ((newline = buffered.indexOf('\n')) >= 0) {
                const line = buffered.slice(0, newline).trim();
                buffered = buffered.slice(newline + 1);
                if (!line) continue;
                let event: WatchEvent<T>;
                try {
                  event = JSON.parse(line) as WatchEvent<T>;
                } catch (error) {
                  req.destroy();
                  reject(
                    new McpworksError(
                      ErrorCode.Internal,
                      `WATCH ${url.pathname}: malformed event`,
                      { cause: error },
                    ),
                  );
                  return;
                }
                if (event.type === 'ERROR') {
                  const code = (event.object as { code?: number }).code ?? 500;
                  req.destroy();
                  reject(kubeApiError(code, event.object, { verb: 'WATCH', path: url.pathname }));
                  return;
                }
                if (event.type !== 'BOOKMARK') {
                  event.object = { apiVersion: type.apiVersion, kind: type.kind, ...event.object };
                }
                onEvent(event);
              }
            });
            res.on('end', () => resolve());
            res.on('error', (err) => (opts.signal.aborted ? resolve() : reject(err)));
            res.on('aborted', () => resolve());
          },
        );
        req.on('error', (err) => (opts.signal.aborted ? resolve() : reject(err)));
        req.end();
      });
    },
    apply<T extends KubeObject>(type: ResourceType, body: KubeObject) {
      const path = resourcePath(type, { namespace: body.metadata?.namespace, name: nameOf(body) });
      return write<T>('apply', type, () =>
        call('PATCH', path, { fieldManager, force: 'true' }, body, 'application/apply-patch+yaml'),
      );
    },
    applyStatus<T extends KubeObject>(type: ResourceType, body: KubeObject) {
      const path = resourcePath(type, {
        namespace: body.metadata?.namespace,
        name: nameOf(body),
        subresource: 'status',
      });
      return write<T>('apply', type, () =>
        call('PATCH', path, { fieldManager, force: 'true' }, body, 'application/apply-patch+yaml'),
      );
    },
    create<T extends KubeObject>(type: ResourceType, body: KubeObject) {
      const path = resourcePath(type, { namespace: body.metadata?.namespace });
      return write<T>('create', type, () => call('POST', path, { fieldManager }, body));
    },
    update<T extends KubeObject>(type: ResourceType, body: KubeObject) {
      const path = resourcePath(type, { namespace: body.metadata?.namespace, name: nameOf(body) });
      return write<T>('update', type, () => call('PUT', path, { fieldManager }, body));
    },
    async delete(type: ResourceType, name: string, namespace?: string) {
      onWrite('delete', type.plural);
      try {
        await call('DELETE', resourcePath(type, { namespace, name }), {}, undefined);
      } catch (error) {
        if (!isNotFound(error)) throw error;
      }
    },
  };
}

/** At most `max` calls of the returned function run at once; the others wait in order. */
export function createLimiter(max: number | undefined): <T>(fn: () => Promise<T>) => Promise<T> {
  if (max === undefined) return (fn) => fn();
  if (!Number.isInteger(max) || max < 1)
    throw new McpworksError(ErrorCode.InvalidInput, `maxRequestsInFlight must be >= 1, got ${max}`);
  let running = 0;
  const waiting: (() => void)[] = [];
  return async (fn) => {
    if (running >= max) await new Promise<void>((resolve) => waiting.push(resolve));
    else running++;
    try {
      return await fn();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else running--;
    }
  };
}
