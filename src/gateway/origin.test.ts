import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkHost, checkOrigin, checkQuery, LOOPBACK_HOSTS } from './origin.ts';

const policy = { allowedOrigins: ['https://app.example.com'], allowedHosts: LOOPBACK_HOSTS };

test('a request without Origin (not a browser) passes', () => {
  assert.equal(checkOrigin(undefined, policy).ok, true);
});

test('loopback origins pass, on any port', () => {
  for (const o of ['http://127.0.0.1:3000', 'http://localhost', 'https://[::1]:8443']) {
    assert.equal(checkOrigin(o, policy).ok, true, o);
  }
});

test('a configured origin passes; a look-alike does not', () => {
  assert.equal(checkOrigin('https://app.example.com', policy).ok, true);
  assert.equal(checkOrigin('https://app.example.com.evil.io', policy).ok, false);
  assert.equal(checkOrigin('http://app.example.com', policy).ok, false);
});

test('foreign, null and non-http origins are refused', () => {
  for (const o of [
    'http://evil.example',
    'null',
    'file://',
    'chrome-extension://abc',
    'http://localhost.evil.io',
  ]) {
    const r = checkOrigin(o, policy);
    assert.equal(r.ok, false, o);
  }
});

test('an Origin that is not a serialized origin is refused, whatever host its URL reads as', () => {
  for (const o of [
    'http://evil.com@127.0.0.1',
    'http://evil.com:x@localhost:8080',
    'http://127.0.0.1/evil',
    'http://localhost?x=1',
    'http://127.0.0.1#frag',
    ' http://127.0.0.1',
    'https://app.example.com/',
    'https://user@app.example.com',
  ]) {
    assert.equal(checkOrigin(o, policy).ok, false, o);
  }
});

test('the Host check accepts loopback names with ports and refuses rebound names', () => {
  assert.equal(checkHost('127.0.0.1:8080', policy).ok, true);
  assert.equal(checkHost('localhost', policy).ok, true);
  assert.equal(checkHost('[::1]:8080', policy).ok, true);
  assert.equal(checkHost('evil.example:8080', policy).ok, false);
  assert.equal(checkHost('127.0.0.1.evil.example', policy).ok, false);
  assert.equal(checkHost(undefined, policy).ok, false);
});

test('without allowedHosts any Host passes (behind a Service)', () => {
  assert.equal(checkHost('gateway.ns.svc', { allowedOrigins: [] }).ok, true);
});

test('credential-like query parameters are refused, whatever their case', () => {
  for (const q of ['access_token=x', 'API_KEY=x', 'token=', 'a=1&apikey=2']) {
    assert.equal(checkQuery(new URLSearchParams(q)).ok, false, q);
  }
  assert.equal(checkQuery(new URLSearchParams('page=2')).ok, true);
});
