/**
 * Reads the server name (SNI) from the first bytes a TLS client sends: the ClientHello, possibly
 * split over several handshake records. Only what is needed to find `server_name` is parsed;
 * anything that does not look like a TLS ClientHello is `not-tls` or `malformed`, never a guess.
 */
export type ClientHelloResult =
  | { kind: 'incomplete' }
  | { kind: 'not-tls' }
  | { kind: 'malformed'; detail: string }
  | { kind: 'client-hello'; serverName: string | undefined };

const RECORD_HANDSHAKE = 0x16;
const HANDSHAKE_CLIENT_HELLO = 0x01;
const EXTENSION_SERVER_NAME = 0x0000;
const NAME_TYPE_HOST = 0x00;
/** A ClientHello larger than this is refused rather than buffered. */
export const MAX_CLIENT_HELLO_BYTES = 64 * 1024;

class Malformed extends Error {}

class Reader {
  private offset = 0;
  private readonly bytes: Buffer;
  constructor(bytes: Buffer) {
    this.bytes = bytes;
  }
  get remaining(): number {
    return this.bytes.length - this.offset;
  }
  u8(): number {
    if (this.remaining < 1) throw new Malformed('truncated');
    return this.bytes[this.offset++]!;
  }
  u16(): number {
    if (this.remaining < 2) throw new Malformed('truncated');
    const value = this.bytes.readUInt16BE(this.offset);
    this.offset += 2;
    return value;
  }
  take(length: number): Buffer {
    if (this.remaining < length) throw new Malformed('truncated');
    const slice = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return slice;
  }
}

/** The handshake bytes carried by the leading handshake records, and whether more are needed. */
function handshakeBytes(data: Buffer): { bytes: Buffer; complete: boolean } | ClientHelloResult {
  const fragments: Buffer[] = [];
  let offset = 0;
  let collected = 0;
  while (true) {
    if (collected >= 4) {
      const first = Buffer.concat(fragments);
      const needed = 4 + first.readUIntBE(1, 3);
      if (needed > MAX_CLIENT_HELLO_BYTES)
        return { kind: 'malformed', detail: 'ClientHello too large' };
      if (collected >= needed) return { bytes: first.subarray(0, needed), complete: true };
    }
    if (data.length - offset < 5) return { kind: 'incomplete' };
    if (data[offset] !== RECORD_HANDSHAKE) {
      return offset === 0
        ? { kind: 'not-tls' }
        : { kind: 'malformed', detail: 'record interleaved' };
    }
    const major = data[offset + 1];
    if (major !== 0x03)
      return offset === 0 ? { kind: 'not-tls' } : { kind: 'malformed', detail: 'record version' };
    const length = data.readUInt16BE(offset + 3);
    if (length === 0 || length > 16_384 + 2048)
      return { kind: 'malformed', detail: 'record length' };
    if (data.length - offset - 5 < length) return { kind: 'incomplete' };
    fragments.push(data.subarray(offset + 5, offset + 5 + length));
    collected += length;
    offset += 5 + length;
  }
}

function serverNameFrom(extension: Buffer): string {
  const reader = new Reader(extension);
  const list = new Reader(reader.take(reader.u16()));
  while (list.remaining > 0) {
    const type = list.u8();
    const name = list.take(list.u16());
    if (type === NAME_TYPE_HOST) {
      if (name.length === 0) throw new Malformed('empty server name');
      // RFC 6066: ASCII host name, no trailing dot.
      if (!/^[\x21-\x7e]+$/.test(name.toString('latin1')))
        throw new Malformed('server name not ASCII');
      return name.toString('ascii').toLowerCase();
    }
  }
  throw new Malformed('server_name extension without a host name');
}

/** Parses the start of a TLS client stream. Call again with more bytes while `incomplete`. */
export function parseClientHello(data: Buffer): ClientHelloResult {
  const handshake = handshakeBytes(data);
  if ('kind' in handshake) return handshake;
  try {
    const reader = new Reader(handshake.bytes);
    if (reader.u8() !== HANDSHAKE_CLIENT_HELLO)
      return { kind: 'malformed', detail: 'not a ClientHello' };
    const body = new Reader(reader.take(reader.u8() * 0x10000 + reader.u16()));
    body.take(2 + 32); // legacy_version, random
    body.take(body.u8()); // session id
    body.take(body.u16()); // cipher suites
    body.take(body.u8()); // compression methods
    if (body.remaining === 0) return { kind: 'client-hello', serverName: undefined };
    const extensions = new Reader(body.take(body.u16()));
    let serverName: string | undefined;
    while (extensions.remaining > 0) {
      const type = extensions.u16();
      const data = extensions.take(extensions.u16());
      if (type === EXTENSION_SERVER_NAME) {
        if (serverName !== undefined)
          return { kind: 'malformed', detail: 'two server_name extensions' };
        serverName = serverNameFrom(data);
      }
    }
    return { kind: 'client-hello', serverName };
  } catch (error) {
    if (error instanceof Malformed) return { kind: 'malformed', detail: error.message };
    throw error;
  }
}
