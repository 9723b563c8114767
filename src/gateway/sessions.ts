/**
 * MCP sessions: random ids (192 bits), each bound to the principal that initialized it. A request
 * carrying another principal's session id is answered exactly like an unknown id (404), so ids
 * cannot be probed. Bounded: idle sessions expire, each principal holds a limited number (its
 * oldest is closed to make room), and the table as a whole is capped.
 */
import { randomBytes } from 'node:crypto';
import type { Server } from '@modelcontextprotocol/sdk/server/index.js';
import type { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { Principal } from './auth/principal.ts';

export interface Session {
  id: string;
  principalKey: string;
  transport: StreamableHTTPServerTransport;
  server: Server;
  lastActiveMs: number;
}

export interface SessionLimits {
  /** Sessions open at once per gateway app; default 1000. */
  maxSessions: number;
  /** Sessions open at once per principal; default 32. */
  maxSessionsPerPrincipal: number;
  /** A session unused for this long is closed; default 30 minutes. */
  idleTimeoutMs: number;
}

export const DEFAULT_SESSION_LIMITS: SessionLimits = {
  maxSessions: 1000,
  maxSessionsPerPrincipal: 32,
  idleTimeoutMs: 30 * 60_000,
};

export function newSessionId(): string {
  return randomBytes(24).toString('base64url');
}

/** Identity a session is bound to: the same agent through the same kind of credential. */
export function principalKey(p: Principal): string {
  return `${p.kind}\u0000${p.authMethod}\u0000${p.name}`;
}

export class SessionTable {
  readonly #sessions = new Map<string, Session>();
  readonly #limits: SessionLimits;

  constructor(limits: SessionLimits) {
    this.#limits = limits;
  }

  get size(): number {
    return this.#sessions.size;
  }

  /** The session, if it exists and belongs to `principal`; touches it. */
  lookup(id: string, principal: Principal, nowMs: number): Session | undefined {
    const session = this.#sessions.get(id);
    if (session === undefined || session.principalKey !== principalKey(principal)) return undefined;
    session.lastActiveMs = nowMs;
    return session;
  }

  /** Whether one more session may open; closes the principal's oldest when it is at its cap. */
  makeRoom(principal: Principal): boolean {
    const key = principalKey(principal);
    const own = [...this.#sessions.values()].filter((s) => s.principalKey === key);
    if (own.length >= this.#limits.maxSessionsPerPrincipal) {
      const oldest = own.reduce((a, b) => (a.lastActiveMs <= b.lastActiveMs ? a : b));
      this.close(oldest.id);
    }
    return this.#sessions.size < this.#limits.maxSessions;
  }

  add(session: Session): void {
    this.#sessions.set(session.id, session);
  }

  has(id: string): boolean {
    return this.#sessions.has(id);
  }

  /** Forgets the session (called from the transport's onsessionclosed / onclose too). */
  remove(id: string): void {
    this.#sessions.delete(id);
  }

  close(id: string): void {
    const session = this.#sessions.get(id);
    if (session === undefined) return;
    this.#sessions.delete(id);
    void session.server.close().catch(() => undefined);
  }

  /** Closes sessions idle for longer than the timeout; returns how many. */
  sweep(nowMs: number): number {
    let closed = 0;
    for (const session of [...this.#sessions.values()]) {
      if (nowMs - session.lastActiveMs >= this.#limits.idleTimeoutMs) {
        this.close(session.id);
        closed += 1;
      }
    }
    return closed;
  }

  closeAll(): void {
    for (const id of [...this.#sessions.keys()]) this.close(id);
  }
}
