import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { describe, test } from 'node:test';
import { parseClientHello } from './sni.ts';

const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const u24 = (n: number) => Buffer.from([n >> 16, (n >> 8) & 0xff, n & 0xff]);
const vec16 = (bytes: Buffer) => Buffer.concat([u16(bytes.length), bytes]);

function extension(type: number, body: Buffer): Buffer {
  return Buffer.concat([u16(type), vec16(body)]);
}

function serverNameExtension(...names: [type: number, name: string][]): Buffer {
  const entries = names.map(([type, name]) =>
    Buffer.concat([Buffer.from([type]), vec16(Buffer.from(name, 'latin1'))]),
  );
  return extension(0, vec16(Buffer.concat(entries)));
}

/** A minimal ClientHello handshake message with the given extensions (undefined: no extensions block). */
function clientHello(extensions: Buffer[] | undefined): Buffer {
  const body = Buffer.concat([
    Buffer.from([3, 3]),
    Buffer.alloc(32, 7),
    Buffer.from([0]),
    vec16(Buffer.from([0x13, 0x01])),
    Buffer.from([1, 0]),
    ...(extensions === undefined ? [] : [vec16(Buffer.concat(extensions))]),
  ]);
  return Buffer.concat([Buffer.from([1]), u24(body.length), body]);
}

/** Wraps handshake bytes in TLS records of at most `size` bytes each. */
function records(handshake: Buffer, size = 16_384): Buffer {
  const out: Buffer[] = [];
  for (let offset = 0; offset < handshake.length; offset += size) {
    const fragment = handshake.subarray(offset, offset + size);
    out.push(Buffer.from([0x16, 3, 1]), u16(fragment.length), fragment);
  }
  return Buffer.concat(out);
}

/** The first bytes Node's own TLS client sends, captured on a real socket. */
function realClientHello(servername: string | undefined): Promise<Buffer> {
  return new Promise((resolve) => {
    const server = createServer((socket) => {
      let bytes = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        bytes = Buffer.concat([bytes, chunk]);
        if (parseClientHello(bytes).kind !== 'incomplete') {
          socket.destroy();
          server.close();
          resolve(bytes);
        }
      });
    });
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      const client = tlsConnect({
        host: '127.0.0.1',
        port,
        ...(servername === undefined ? {} : { servername }),
      });
      client.on('error', () => undefined);
    });
  });
}

describe('parseClientHello with real TLS clients', () => {
  test("finds the server name Node's TLS client sends", async () => {
    const hello = await realClientHello('API.GitHub.com');
    assert.deepEqual(parseClientHello(hello), {
      kind: 'client-hello',
      serverName: 'api.github.com',
    });
  });

  test('reports no server name when the client sends none', async () => {
    const hello = await realClientHello('');
    assert.deepEqual(parseClientHello(hello), { kind: 'client-hello', serverName: undefined });
  });

  test('every proper prefix of a real ClientHello is incomplete', async () => {
    const hello = await realClientHello('api.github.com');
    for (let length = 0; length < hello.length; length += 1) {
      assert.equal(
        parseClientHello(hello.subarray(0, length)).kind,
        'incomplete',
        `prefix ${length}`,
      );
    }
  });
});

describe('parseClientHello with built messages', () => {
  test('reassembles a ClientHello split over several records', () => {
    const hello = clientHello([
      extension(0x0a, Buffer.alloc(40, 1)),
      serverNameExtension([0, 'a.example']),
    ]);
    assert.deepEqual(parseClientHello(records(hello, 17)), {
      kind: 'client-hello',
      serverName: 'a.example',
    });
  });

  test('ignores bytes after the ClientHello', () => {
    const hello = records(clientHello([serverNameExtension([0, 'a.example'])]));
    const result = parseClientHello(Buffer.concat([hello, Buffer.from('trailing')]));
    assert.deepEqual(result, { kind: 'client-hello', serverName: 'a.example' });
  });

  test('a ClientHello without extensions has no server name', () => {
    assert.deepEqual(parseClientHello(records(clientHello(undefined))), {
      kind: 'client-hello',
      serverName: undefined,
    });
  });

  test('skips unknown name types before the host name', () => {
    const hello = clientHello([serverNameExtension([7, 'opaque'], [0, 'b.example'])]);
    assert.deepEqual(parseClientHello(records(hello)), {
      kind: 'client-hello',
      serverName: 'b.example',
    });
  });

  test('plain text and other record types are not TLS', () => {
    assert.deepEqual(parseClientHello(Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\n')), {
      kind: 'not-tls',
    });
    assert.deepEqual(parseClientHello(Buffer.from([0x17, 3, 3, 0, 1, 0])), { kind: 'not-tls' });
    assert.deepEqual(parseClientHello(Buffer.from([0x16, 2, 0, 0, 1, 0])), { kind: 'not-tls' });
  });

  test('refuses malformed messages with a reason', () => {
    const kindOf = (bytes: Buffer) => {
      const result = parseClientHello(bytes);
      return result.kind === 'malformed' ? result.detail : result.kind;
    };
    const serverHello = Buffer.from(clientHello([]));
    serverHello[0] = 2;
    assert.equal(kindOf(records(serverHello)), 'not a ClientHello');
    assert.equal(kindOf(records(clientHello([serverNameExtension([0, ''])]))), 'empty server name');
    assert.equal(
      kindOf(records(clientHello([serverNameExtension([0, 'bü.example'])]))),
      'server name not ASCII',
    );
    assert.equal(
      kindOf(records(clientHello([serverNameExtension([7, 'x'])]))),
      'server_name extension without a host name',
    );
    const twice = serverNameExtension([0, 'a.example']);
    assert.equal(kindOf(records(clientHello([twice, twice]))), 'two server_name extensions');
    assert.equal(kindOf(records(clientHello([extension(0, Buffer.from([0, 9, 0]))]))), 'truncated');
    assert.equal(kindOf(Buffer.from([0x16, 3, 1, 0, 4, 1, 0x02, 0, 0])), 'ClientHello too large');
    assert.equal(kindOf(Buffer.from([0x16, 3, 1, 0, 0])), 'record length');
    const first = records(clientHello([serverNameExtension([0, 'a.example'])]), 10).subarray(0, 15);
    assert.equal(
      kindOf(Buffer.concat([first, Buffer.from([0x17, 3, 3, 0, 1, 0])])),
      'record interleaved',
    );
  });
});
