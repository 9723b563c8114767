/* global require, Buffer, URL */
/* eslint-disable @typescript-eslint/no-require-imports -- runs inside the sandbox as plain CommonJS */
// mcpworks sandbox bootstrap (node). Waits for exactly one call on stdin, runs `main(args)` from
// the tool code and writes one JSON frame to fd 3. Runs as the jail's init; nothing else ever runs.
'use strict';
const fs = require('node:fs');
const vm = require('node:vm');
const { createRequire } = require('node:module');

/**
 * The executor image's npm packages (src/executor/packages.ts): tool code's require() resolves
 * bare names from <PACKAGES>/node_modules (then the built-ins). Absent when the image carries none.
 */
const PACKAGES = '/opt/mcpworks/packages/node';
const toolRequire = createRequire(PACKAGES + '/');

/** The npm package a bare specifier names ('@scope/name/sub' → '@scope/name'), else undefined. */
function packageName(specifier) {
  if (/^(\.|\/|node:)/.test(specifier)) return undefined;
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

/** Not a built-in, nor among the image's packages: say so, not just "Cannot find module". */
function missingModuleMessage(error) {
  const match = /^Cannot find module '([^']+)'/.exec(String(error.message));
  const name = match ? packageName(match[1]) : undefined;
  if (name === undefined) return undefined;
  return (
    `Cannot find module '${match[1]}': the executor image does not carry the npm package ` +
    `'${name}' (node packages are looked up in ${PACKAGES}/node_modules; build an executor ` +
    'image with it and set spec.executor.image)'
  );
}

function frameError(error) {
  const isError = error instanceof Error;
  const type = isError ? error.name : typeof error;
  const missing =
    isError && error.code === 'MODULE_NOT_FOUND' ? missingModuleMessage(error) : undefined;
  const message = missing ?? (isError ? String(error.message) : String(error));
  let line = null;
  const match =
    isError && typeof error.stack === 'string' ? /<tool>:(\d+)/.exec(error.stack) : null;
  if (match) line = Number(match[1]);
  return { ok: false, error: { type, message: message.slice(0, 4096), line } };
}

/** Monotonic µs (the host's clock too): the executor tells hand-off from work with them. */
const micros = () => Number(process.hrtime.bigint() / 1000n);

function writeFrame(frame, readUs) {
  let text;
  try {
    text = JSON.stringify(frame);
    if (text === undefined) text = JSON.stringify({ ok: true, value: null });
  } catch (error) {
    text = JSON.stringify(
      frameError(
        new TypeError(
          'main(args) returned a value that is not JSON-serializable: ' + error.message,
        ),
      ),
    );
  }
  if (direct.length > 0) text = text.slice(0, -1) + ', "direct": ' + JSON.stringify(direct) + '}';
  text = text.slice(0, -1) + ', "t": [' + readUs + ', ' + micros() + ']}';
  const buffer = Buffer.from(text + '\n', 'utf8'); // the newline ends the frame
  let offset = 0;
  while (offset < buffer.length) offset += fs.writeSync(3, buffer, offset);
  fs.closeSync(3);
}

/** The call is one line (the executor ends it with a newline): read up to it, not to EOF. */
function readCall() {
  const chunks = [];
  const chunk = Buffer.allocUnsafe(65536);
  for (;;) {
    const n = fs.readSync(0, chunk, 0, chunk.length, null);
    if (n === 0) break;
    chunks.push(Buffer.from(chunk.subarray(0, n)));
    if (chunk[n - 1] === 0x0a) break;
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Takes one call's path once on a dummy before the sandbox reports ready, so compiling and first
 * running it (V8 compiles lazily) is not paid by the call. Nothing it creates survives.
 */
function prewarm() {
  const request = JSON.parse(
    '{"code":"function main(args) { return [args, 1.5, \\"x\\"]; }","args":{"a":[1]},"env":{}}',
  );
  const factory = vm.runInThisContext(toolWrapper(request.code), {
    filename: '<prewarm>',
    lineOffset: -1,
  });
  const main = factory(toolRequire, { exports: {} }, {});
  JSON.stringify({ ok: true, value: main(request.args) });
}

function toolWrapper(code) {
  return `(function (require, module, exports) {\n${code}\n;return typeof main === 'function' ? main : undefined;\n})`;
}

/**
 * Sockets the tool opened without the proxy (egress sandboxes only), reported with the frame. The
 * sandbox refuses them whatever this list says; it only tells the record what was tried, and code
 * that goes around the net and dgram modules (a child process, native code) is not listed.
 */
const direct = [];
const MAX_DIRECT = 16;

function noteDirect(kind, host, port) {
  if (direct.length >= MAX_DIRECT) return;
  const p = Number(port);
  direct.push({
    kind,
    host: String(host ?? '').slice(0, 253),
    port: Number.isInteger(p) && p >= 0 && p <= 65535 ? p : 0,
  });
}

/** Notes TCP connects to anything but the relay and every UDP send or connect, then goes on. */
function watchDirect(relayPort) {
  const net = require('node:net');
  const dgram = require('node:dgram');
  const connect = net.Socket.prototype.connect;
  net.Socket.prototype.connect = function (...args) {
    const first = args[0];
    const options = Array.isArray(first) ? first[0] : first;
    let host;
    let port;
    if (options !== null && typeof options === 'object') {
      if (options.path === undefined) ({ host = 'localhost', port } = options);
    } else if (typeof options !== 'string' || /^\d+$/.test(options)) {
      port = options;
      host = typeof args[1] === 'string' ? args[1] : 'localhost';
    }
    const relay = (host === '127.0.0.1' || host === 'localhost') && Number(port) === relayPort;
    if (host !== undefined && !relay) noteDirect('tcp', host, port);
    return connect.apply(this, args);
  };
  const send = dgram.Socket.prototype.send;
  dgram.Socket.prototype.send = function (...args) {
    const port = args.find(
      (a, i) => i > 0 && typeof a === 'number' && typeof args[i + 1] !== 'number',
    );
    const host = args.find((a, i) => i > 0 && typeof a === 'string');
    noteDirect('udp', host ?? '', port ?? 0);
    return send.apply(this, args);
  };
  const udpConnect = dgram.Socket.prototype.connect;
  dgram.Socket.prototype.connect = function (port, address, ...rest) {
    noteDirect('udp', typeof address === 'string' ? address : '', port);
    return udpConnect.call(this, port, address, ...rest);
  };
}

/**
 * Egress sandboxes only (the executor sets MCPWORKS_EGRESS_SOCKET at spawn): a listener on the
 * proxy address (HTTPS_PROXY, loopback) that forwards each connection to the executor's egress
 * proxy socket. The jail has no other way out; the proxy decides what passes.
 */
function startRelay() {
  const path = process.env.MCPWORKS_EGRESS_SOCKET;
  if (!path) return undefined;
  const net = require('node:net');
  const port = Number(new URL(process.env.HTTPS_PROXY).port);
  const server = net.createServer((client) => {
    const upstream = net.connect(path);
    const drop = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop);
    upstream.on('error', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  server.unref();
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  }).then(() => watchDirect(port));
}

async function serve() {
  await startRelay();
  // A warm sandbox; a cold one's call is already waiting.
  if (process.argv[1] === 'prewarm') prewarm();
  fs.writeSync(2, '\x06'); // ready: the interpreter is up and waits for its one call
  const raw = readCall();
  const readUs = micros();
  try {
    const request = JSON.parse(raw);
    for (const [name, value] of Object.entries(request.env ?? {})) process.env[name] = value;
    const factory = vm.runInThisContext(toolWrapper(request.code), {
      filename: '<tool>',
      lineOffset: -1,
    });
    const toolModule = { exports: {} };
    // A top-level main, else what the module exports: the function itself (`module.exports =
    // function (args) {...}`, named or not) or its `main` member.
    const main =
      factory(toolRequire, toolModule, toolModule.exports) ??
      (typeof toolModule.exports === 'function' ? toolModule.exports : toolModule.exports?.main);
    if (typeof main !== 'function')
      throw new ReferenceError(
        'the tool code defines no function main(args) and exports none (module.exports = main)',
      );
    const value = await main(request.args ?? {});
    writeFrame({ ok: true, value: value === undefined ? null : value }, readUs);
  } catch (error) {
    writeFrame(frameError(error), readUs);
  }
}

serve().then(
  () => process.exit(0),
  () => process.exit(70),
);
