import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Server } from '@modelcontextprotocol/sdk/server/index.js';
import type { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { agentPrincipal } from './auth/principal.ts';
import { newSessionId, principalKey, SessionTable } from './sessions.ts';

const alice = agentPrincipal('alice', [], 'api-key');
const bob = agentPrincipal('bob', [], 'api-key');
const aliceViaOidc = agentPrincipal('alice', [], 'oidc');

function session(id: string, owner = alice, lastActiveMs = 0) {
  const closed: string[] = [];
  const server = { close: async () => void closed.push(id) } as unknown as Server;
  return {
    closed,
    session: {
      id,
      principalKey: principalKey(owner),
      transport: {} as StreamableHTTPServerTransport,
      server,
      lastActiveMs,
    },
  };
}

const limits = { maxSessions: 3, maxSessionsPerPrincipal: 2, idleTimeoutMs: 1_000 };

test('session ids are long and random', () => {
  const ids = new Set(Array.from({ length: 100 }, newSessionId));
  assert.equal(ids.size, 100);
  for (const id of ids) assert.match(id, /^[A-Za-z0-9_-]{32}$/);
});

test('a session is found only by the principal that created it', () => {
  const table = new SessionTable(limits);
  table.add(session('s1').session);
  assert.ok(table.lookup('s1', alice, 0));
  assert.equal(table.lookup('s1', bob, 0), undefined);
  // The same agent name through another credential method is another principal.
  assert.equal(table.lookup('s1', aliceViaOidc, 0), undefined);
});

test('idle sessions are closed by the sweep; active ones stay', () => {
  const table = new SessionTable(limits);
  const idle = session('idle', alice, 0);
  table.add(idle.session);
  table.add(session('busy', bob, 0).session);
  table.lookup('busy', bob, 900);
  assert.equal(table.sweep(1_000), 1);
  assert.equal(table.size, 1);
  assert.deepEqual(idle.closed, ['idle']);
});

test("a principal at its cap loses its own oldest session, nobody else's", () => {
  const table = new SessionTable(limits);
  table.add(session('b1', bob, 0).session);
  table.add(session('a1', alice, 1).session);
  table.add(session('a2', alice, 2).session);
  assert.equal(table.makeRoom(alice), true);
  assert.equal(table.lookup('a1', alice, 3), undefined);
  assert.ok(table.lookup('b1', bob, 3));
});

test('the table as a whole is capped', () => {
  const table = new SessionTable({ ...limits, maxSessionsPerPrincipal: 10 });
  for (const id of ['1', '2', '3']) table.add(session(id, bob).session);
  assert.equal(table.makeRoom(alice), false);
});
