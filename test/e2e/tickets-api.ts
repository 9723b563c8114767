// The ticket service of examples/tools-api, as the egress world's HTTPS server plays it
// (loaded with `--app`, see test/harness/egress-world.ts). It knows one ticket, opens new ones
// and refuses callers without the example's token; every other host gets the world's echo.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import type { RecordedRequest, WorldResponse } from '../harness/egress-world.ts';
import { WORLD } from '../harness/egress-world.ts';
import { repoRoot } from '../harness/paths.ts';

export const EXAMPLE_DIR = join(repoRoot, 'examples', 'tools-api');

/** The token in the example's Secret, read from the manifest the example ships. */
export function exampleToken(): string {
  const secret = parse(readFileSync(join(EXAMPLE_DIR, 'ticket-api-token.yaml'), 'utf8')) as {
    stringData: { token: string };
  };
  return secret.stringData.token;
}

export const KNOWN_TICKET = {
  id: 'TCK-1042',
  title: 'VPN drops every 20 minutes',
  status: 'open',
  assignee: 'dana',
};
export const NEW_TICKET_ID = 'TCK-1043';

const TICKET_PATH = /^\/api\/v1\/tickets\/([^/?]+)$/;

export default function ticketsApi(request: RecordedRequest): WorldResponse {
  if (request.host !== WORLD.apiHost) {
    return { status: 200, body: { world: true, host: request.host, path: request.path } };
  }
  if (request.headers.authorization !== `Bearer ${exampleToken()}`) {
    return { status: 401, body: { error: 'missing or wrong token' } };
  }
  if (request.method === 'GET') {
    const id = TICKET_PATH.exec(request.path)?.[1];
    if (id === KNOWN_TICKET.id) return { status: 200, body: { ...KNOWN_TICKET, priority: 2 } };
    return { status: 404, body: { error: `no ticket ${id}` } };
  }
  if (request.method === 'POST' && request.path === '/api/v1/tickets') {
    const { title } = JSON.parse(request.body || '{}') as { title?: string };
    if (!title) return { status: 400, body: { error: 'title is required' } };
    return { status: 201, body: { id: NEW_TICKET_ID, title, status: 'open' } };
  }
  return { status: 404, body: { error: 'no such endpoint' } };
}
