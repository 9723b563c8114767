// The fetcher behind OIDC discovery and JWKS, against a real HTTPS server on loopback: it must
// refuse everything but a prompt, small, JSON 200 from a trusted https origin.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { httpsJsonFetcher } from '../../src/gateway/auth/https.ts';
import { createPki } from '../harness/pki.ts';

let dir: string;
let server: Server;
let origin: string;
let ca: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mcpworks-auth-https-'));
  const pki = await createPki(dir);
  ca = pki.caCert;
  server = createServer({ cert: pki.servingCert, key: pki.servingKey }, (req, res) => {
    switch (req.url) {
      case '/ok':
        return res.writeHead(200).end('{"keys":[]}');
      case '/big':
        return res.writeHead(200).end(`{"pad":"${'x'.repeat(4096)}"}`);
      case '/text':
        return res.writeHead(200).end('<html>');
      case '/redirect':
        return res.writeHead(302, { location: `${origin}/ok` }).end();
      case '/drip': {
        res.writeHead(200);
        const timer = setInterval(() => res.write(' '), 50);
        res.on('close', () => clearInterval(timer));
        return;
      }
      default:
        return res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  origin = `https://127.0.0.1:${address.port}`;
});

after(async () => {
  server?.closeAllConnections();
  await new Promise<void>((resolve) => server?.close(() => resolve()));
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('httpsJsonFetcher', () => {
  test('a JSON 200 from a trusted origin is returned', async () => {
    assert.deepEqual(await httpsJsonFetcher({ ca })(`${origin}/ok`), { keys: [] });
  });

  test('an untrusted certificate is refused', async () => {
    await assert.rejects(httpsJsonFetcher()(`${origin}/ok`));
  });

  test('plain http is refused without connecting', async () => {
    await assert.rejects(httpsJsonFetcher({ ca })('http://127.0.0.1:1/ok'), /only https/);
  });

  test('a non-200 answer is refused', async () => {
    await assert.rejects(httpsJsonFetcher({ ca })(`${origin}/missing`), /HTTP 404/);
  });

  test('redirects are not followed', async () => {
    await assert.rejects(httpsJsonFetcher({ ca })(`${origin}/redirect`), /HTTP 302/);
  });

  test('a body over the cap is refused', async () => {
    await assert.rejects(
      httpsJsonFetcher({ ca, maxBytes: 1024 })(`${origin}/big`),
      /over 1024 bytes/,
    );
  });

  test('a body that is not JSON is refused', async () => {
    await assert.rejects(httpsJsonFetcher({ ca })(`${origin}/text`), /not JSON/);
  });

  test('a server that drips bytes is cut off at the deadline', async () => {
    await assert.rejects(
      httpsJsonFetcher({ ca, timeoutMs: 300 })(`${origin}/drip`),
      /no answer in 300 ms/,
    );
  });
});
