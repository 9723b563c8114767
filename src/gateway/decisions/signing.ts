/**
 * Writer identity for the decision log: each record's chain position is signed with an Ed25519
 * key the operator controls, so a chain fabricated by someone who can write to the log (every
 * hash recomputed) still fails `mcpworks audit verify --public-key`.
 *
 * What is signed (docs/observability.md states it; it must not change, or logs written before
 * would stop verifying): the UTF-8 bytes of
 *
 *   SIGNING_CONTEXT + canonicalJson({ hash, keyId, seq, writerId })
 *
 * `hash` already covers every other member (prevHash and keyId included), so a signature binds
 * the whole record and its place in its writer's chain; a signature copied onto another record
 * does not verify. `keyId` is the first 16 hex digits of the SHA-256 of the raw 32-byte public
 * key: it names the key for rotation, it is not a secret and not proof of anything by itself.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { sign, verify, type KeyObject } from 'node:crypto';
import { canonicalJson } from './canonical.ts';
import { ErrorCode, McpworksError } from '../../shared/errors.ts';

export const SIGNING_CONTEXT = 'mcpworks.io decision signature v1\n';

export const KEY_ID_PATTERN = /^[0-9a-f]{16}$/;
/** An Ed25519 signature (64 bytes) in unpadded base64url. */
export const SIGNATURE_PATTERN = /^[A-Za-z0-9_-]{86}$/;

/** The bytes a record's `signature` is over. */
export function signingInput(members: {
  hash: string;
  keyId: string;
  seq: number;
  writerId: string;
}): Buffer {
  const { hash, keyId, seq, writerId } = members;
  return Buffer.from(SIGNING_CONTEXT + canonicalJson({ hash, keyId, seq, writerId }), 'utf8');
}

/** First 16 hex digits of the SHA-256 of the raw 32-byte Ed25519 public key. */
export function keyIdOf(key: KeyObject): string {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  const { x } = publicKey.export({ format: 'jwk' });
  return createHash('sha256')
    .update(Buffer.from(x as string, 'base64url'))
    .digest('hex')
    .slice(0, 16);
}

export interface DecisionSigner {
  readonly keyId: string;
  /** Unpadded base64url Ed25519 signature of signingInput(...). */
  sign(input: Buffer): string;
}

/** A signer for the recorder; refuses anything but an Ed25519 private key. */
export function createDecisionSigner(privateKey: KeyObject): DecisionSigner {
  if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'ed25519') {
    throw new McpworksError(
      ErrorCode.InvalidInput,
      `the audit signing key must be an Ed25519 private key, got a ${privateKey.asymmetricKeyType ?? 'symmetric'} ${privateKey.type} key`,
    );
  }
  const keyId = keyIdOf(privateKey);
  return {
    keyId,
    sign: (input) => sign(null, input, privateKey).toString('base64url'),
  };
}

/** Parses a PEM PKCS#8 Ed25519 private key (the gateway's --audit-signing-key file). */
export function parseSigningKey(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch (error) {
    throw new McpworksError(
      ErrorCode.InvalidInput,
      `not a PEM private key (expected "-----BEGIN PRIVATE KEY-----", Ed25519 PKCS#8): ${(error as Error).message}`,
      { cause: error },
    );
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new McpworksError(
      ErrorCode.InvalidInput,
      `an ${key.asymmetricKeyType ?? 'unknown'} private key, not Ed25519 (create one with \`mcpworks audit keygen\`)`,
    );
  }
  return key;
}

const PUBLIC_KEY_BLOCK = /-----BEGIN PUBLIC KEY-----[\s\S]*?-----END PUBLIC KEY-----/g;

/**
 * The Ed25519 public keys (PEM SPKI) in `text`: one or several blocks, e.g. the current and the
 * previous key during a rotation. Anything else in the text (comments) is ignored; a block that
 * is not an Ed25519 public key, or no block at all, is an error.
 */
export function parsePublicKeys(text: string): KeyObject[] {
  const blocks = text.match(PUBLIC_KEY_BLOCK) ?? [];
  if (blocks.length === 0) {
    throw new McpworksError(
      ErrorCode.InvalidInput,
      'no "-----BEGIN PUBLIC KEY-----" block (an Ed25519 public key in PEM SPKI form)',
    );
  }
  return blocks.map((block, i) => {
    let key: KeyObject;
    try {
      key = createPublicKey({ key: block, format: 'pem' });
    } catch (error) {
      throw new McpworksError(
        ErrorCode.InvalidInput,
        `public key ${i + 1}: not a valid PEM public key: ${(error as Error).message}`,
        { cause: error },
      );
    }
    if (key.asymmetricKeyType !== 'ed25519') {
      throw new McpworksError(
        ErrorCode.InvalidInput,
        `public key ${i + 1}: an ${key.asymmetricKeyType ?? 'unknown'} key, not Ed25519`,
      );
    }
    return key;
  });
}

/** Whether `signature` is `key`'s signature of the record's signing input. */
export function verifyRecordSignature(
  key: KeyObject,
  members: { hash: string; keyId: string; seq: number; writerId: string },
  signature: string,
): boolean {
  return verify(null, signingInput(members), key, Buffer.from(signature, 'base64url'));
}

export interface GeneratedSigningKey {
  keyId: string;
  /** PEM PKCS#8. */
  privateKeyPem: string;
  /** PEM SPKI. */
  publicKeyPem: string;
}

export function generateSigningKey(): GeneratedSigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    keyId: keyIdOf(publicKey),
    privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }) as string,
    publicKeyPem: publicKey.export({ format: 'pem', type: 'spki' }) as string,
  };
}
