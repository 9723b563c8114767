// The one way authentication fetches remote documents (OIDC discovery, JWKS): HTTPS only, no
// redirects, a deadline and a size cap, so a slow or hostile issuer cannot stall or bloat the
// gateway. A custom CA bundle serves in-cluster issuers such as the Kubernetes API server.
import { request } from 'node:https';

/** Fetches a JSON document; rejects on anything but a 200 with a JSON body. */
export type JsonFetcher = (url: string) => Promise<unknown>;

export interface HttpsJsonFetcherOptions {
  /** PEM bundle to trust instead of the system roots. */
  ca?: string | undefined;
  timeoutMs?: number;
  maxBytes?: number;
}

export function httpsJsonFetcher(options: HttpsJsonFetcherOptions = {}): JsonFetcher {
  const timeoutMs = options.timeoutMs ?? 5_000;
  const maxBytes = options.maxBytes ?? 1024 * 1024;
  return (url) =>
    new Promise((resolve, reject) => {
      const target = new URL(url);
      if (target.protocol !== 'https:') {
        reject(new Error(`refusing to fetch ${target.origin}: only https is allowed`));
        return;
      }
      const req = request(
        target,
        {
          method: 'GET',
          headers: { accept: 'application/json' },
          timeout: timeoutMs,
          ...(options.ca === undefined ? {} : { ca: options.ca }),
        },
        (res) => {
          if (res.statusCode !== 200) {
            res.resume();
            reject(new Error(`GET ${target.origin}${target.pathname}: HTTP ${res.statusCode}`));
            return;
          }
          const chunks: Buffer[] = [];
          let size = 0;
          let overflow = false;
          res.on('data', (chunk: Buffer) => {
            if (overflow) return;
            size += chunk.length;
            if (size > maxBytes) {
              overflow = true;
              reject(
                new Error(`GET ${target.origin}${target.pathname}: body over ${maxBytes} bytes`),
              );
              req.destroy();
              return;
            }
            chunks.push(chunk);
          });
          res.on('end', () => {
            if (overflow) return;
            try {
              resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
            } catch {
              reject(new Error(`GET ${target.origin}${target.pathname}: body is not JSON`));
            }
          });
          res.on('error', reject);
        },
      );
      // `timeout` only bounds idle time; the deadline also stops a server that drips bytes.
      const giveUp = () => {
        reject(new Error(`GET ${target.origin}: no answer in ${timeoutMs} ms`));
        req.destroy();
      };
      const deadline = setTimeout(giveUp, timeoutMs);
      deadline.unref();
      req.on('close', () => clearTimeout(deadline));
      req.on('timeout', giveUp);
      req.on('error', reject);
      req.end();
    });
}
