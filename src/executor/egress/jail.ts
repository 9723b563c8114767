/**
 * How an egress-capable sandbox differs from any other, as data (no I/O): where the executor's
 * per-sandbox directory (the proxy's socket, the CA bundle) appears inside the jail, the
 * environment its code starts with, the seccomp policy variant that lets it open loopback TCP
 * sockets, and the bounded attempt record a call returns. See docs/adr/0019-egress-proxy.md.
 */
import type { EgressAttemptRecord } from '../types.ts';
import { EgressReason } from './allowlist.ts';
import type { EgressAttempt } from './proxy.ts';

/** Mount point (in every runtime root) of the sandbox's private egress directory. */
export const EGRESS_MOUNT = '/run/mcpworks';
/** The proxy's unix socket, in the sandbox's egress directory. */
export const EGRESS_SOCKET_NAME = 'egress.sock';
/** The CA bundle's mount point (an empty file the executor's bundle is bound over, read-only). */
export const CA_BUNDLE_NAME = 'ca.crt';
/** The in-jail relay (the bootstrap's loopback listener forwarding to the socket). */
export const EGRESS_RELAY_PORT = 3128;
/** Attempts a result carries; the rest are only counted (ToolCallResult.egressOmitted). */
export const MAX_EGRESS_RECORDS = 64;

/**
 * The environment an egress sandbox starts with (on top of the base one). Node reads
 * NODE_USE_ENV_PROXY and NODE_EXTRA_CA_CERTS only at process start, so these are spawn-time, not
 * per call. The names are reserved (RESERVED_ENV_NAMES): a tool cannot set them.
 * MCPWORKS_EGRESS_SOCKET tells the bootstrap to start the relay.
 */
export function egressEnvironment(): Record<string, string> {
  const proxy = `http://127.0.0.1:${EGRESS_RELAY_PORT}`;
  const caBundle = `${EGRESS_MOUNT}/${CA_BUNDLE_NAME}`;
  return {
    HTTPS_PROXY: proxy,
    https_proxy: proxy,
    HTTP_PROXY: proxy,
    http_proxy: proxy,
    NO_PROXY: '',
    no_proxy: '',
    NODE_USE_ENV_PROXY: '1',
    SSL_CERT_FILE: caBundle,
    NODE_EXTRA_CA_CERTS: caBundle,
    MCPWORKS_EGRESS_SOCKET: `${EGRESS_MOUNT}/${EGRESS_SOCKET_NAME}`,
  };
}

const UNIX_ONLY = 'socket { family == AF_UNIX }';
const AF_UNIX_DEFINE = /^#define AF_UNIX 1$/m;

/**
 * The seccomp policy of egress sandboxes, derived from the base policy: `socket()` also admits
 * AF_INET/AF_INET6 SOCK_STREAM with protocol 0 or TCP (the relay's loopback listener and the
 * code's connection to it; the jail's network namespace has only `lo`). UDP, raw, packet and
 * netlink sockets stay refused. Everything else is the base policy, byte for byte. Throws when
 * the base policy does not have the one `socket` rule this replaces (a custom policy): egress
 * is then unavailable rather than silently wider or narrower.
 */
export function egressSeccompPolicy(base: string): string {
  const at = base.indexOf(UNIX_ONLY);
  if (at < 0 || base.indexOf(UNIX_ONLY, at + 1) >= 0 || !AF_UNIX_DEFINE.test(base)) {
    throw new Error(
      `the seccomp policy has no single "${UNIX_ONLY}" rule and "#define AF_UNIX 1" to derive the egress variant from`,
    );
  }
  const defines = [
    '#define AF_UNIX 1',
    '#define AF_INET 2',
    '#define AF_INET6 10',
    '#define SOCK_STREAM 1',
    '#define SOCK_TYPE_MASK 0xf  // SOCK_NONBLOCK and SOCK_CLOEXEC are flags above it',
    '#define IPPROTO_TCP 6',
  ].join('\n');
  const rule =
    'socket { family == AF_UNIX || ((family == AF_INET || family == AF_INET6) && ' +
    '(type & SOCK_TYPE_MASK) == SOCK_STREAM && (protocol == 0 || protocol == IPPROTO_TCP)) }';
  return (
    base.slice(0, at).replace(AF_UNIX_DEFINE, defines) + rule + base.slice(at + UNIX_ONLY.length)
  );
}

/** What a call's result carries: the first MAX_EGRESS_RECORDS attempts, and how many more. */
export function egressRecords(
  attempts: readonly EgressAttempt[],
  max = MAX_EGRESS_RECORDS,
): { egress: EgressAttemptRecord[]; omitted: number } {
  return {
    egress: attempts.slice(0, max).map((attempt) => ({ ...attempt })),
    omitted: Math.max(0, attempts.length - max),
  };
}

/** Counts for the 'tool call finished' log line: attempts, denied ones by reason. No payload. */
export function egressLogSummary(attempts: readonly EgressAttempt[]): {
  attempts: number;
  denied: number;
  deniedByReason: Record<string, number>;
} {
  const deniedByReason: Record<string, number> = {};
  let denied = 0;
  for (const attempt of attempts) {
    if (attempt.allowed) continue;
    denied += 1;
    deniedByReason[attempt.reason] = (deniedByReason[attempt.reason] ?? 0) + 1;
  }
  return { attempts: attempts.length, denied, deniedByReason };
}

/** Sandbox-reported attempts a result carries at most (the bootstraps stop at this many too). */
export const MAX_DIRECT_ATTEMPTS = 16;
const DIRECT_KINDS: Record<string, string> = {
  tcp: 'a TCP connection',
  udp: 'a UDP socket',
  raw: 'a raw socket',
  other: 'a socket',
  name: 'a name look-up',
};

/**
 * The attempts the bootstrap saw the tool make without the proxy (the frame's `direct`: TCP
 * connects to anything but the relay, UDP and raw sockets, name look-ups). Each is refused by the
 * sandbox itself (no route, no resolver, seccomp); these entries only say what was tried. They
 * come from inside the jail, so they are bounded, checked and never taken for anything but a
 * refusal; code that goes around the runtime's socket layer is not listed.
 */
export function sandboxReportedAttempts(frame: unknown): EgressAttempt[] {
  const direct = (frame as { direct?: unknown } | null | undefined)?.direct;
  if (!Array.isArray(direct)) return [];
  const attempts: EgressAttempt[] = [];
  for (const entry of direct.slice(0, MAX_DIRECT_ATTEMPTS)) {
    const { kind, host, port } = (entry ?? {}) as {
      kind?: unknown;
      host?: unknown;
      port?: unknown;
    };
    if (typeof kind !== 'string' || !(kind in DIRECT_KINDS)) continue;
    if (typeof host !== 'string' || host.length > 253) continue;
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65_535) continue;
    attempts.push({
      host,
      port,
      allowed: false,
      reason: EgressReason.NotProxied,
      detail: `${DIRECT_KINDS[kind]} without the proxy, refused by the sandbox (reported by the tool's runtime)`,
      bytesUp: 0,
      bytesDown: 0,
      durationMs: 0,
    });
  }
  return attempts;
}
