import type { KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { parseSigningKey } from '../gateway/decisions/signing.ts';

/**
 * Reads `--audit-signing-key <file>` (PEM PKCS#8 Ed25519, as `mcpworks audit keygen` writes
 * it). Fails closed: an unreadable file or any other kind of key is an error that says why,
 * never a gateway that runs unsigned.
 */
export async function readSigningKeyFile(path: string): Promise<KeyObject | string> {
  let pem: string;
  try {
    pem = await readFile(path, 'utf8');
  } catch (error) {
    return `--audit-signing-key ${path}: cannot read it: ${(error as Error).message}`;
  }
  try {
    return parseSigningKey(pem);
  } catch (error) {
    return `--audit-signing-key ${path}: ${(error as Error).message}`;
  }
}
