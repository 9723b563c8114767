// API keys: `mcpw_<id>_<secret>`, stored as scrypt hashes in a Secret (docs/api-keys.md).
//
// scrypt makes a leaked Secret useless to an attacker, but it costs tens of milliseconds, far
// over the gateway's latency budget. So a key that verified once is remembered by its SHA-256
// (a fast hash of a 256-bit random value is as unguessable as the value) for as long as its
// entry is unchanged: a removed, re-issued or edited entry is forgotten at once.
//
// scrypt slots are few, so a flood of wrong secrets must not reach them: each entry carries a
// 16-bit tag (a domain-separated SHA-256 of the entry's salt and the key), and a token whose tag does not match is
// refused after one fast hash. An unknown key id costs the same hash, against a dummy salt, so
// the time and the answer (`unknown-key`) do not tell a known id from an unknown one.
import crypto from 'node:crypto';
import { z } from 'zod';
import type { Clock } from '../../shared/clock.ts';
import type { Logger } from '../../shared/logger.ts';
import { Semaphore } from './semaphore.ts';
import { agentPrincipal } from './principal.ts';
import { authFailure, type AuthResult, type CredentialVerifier } from './types.ts';

// Looked up on the module object at call time (not destructured) so tests can observe them.
function scrypt(
  password: string,
  salt: Buffer,
  keylen: number,
  options: crypto.ScryptOptions,
): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    crypto.scrypt(password, salt, keylen, options, (err, key) =>
      err ? reject(err) : resolve(key),
    ),
  );
}

export const API_KEY_PREFIX = 'mcpw_';
/** Key ids are Secret data keys too: lowercase letters, digits and inner dashes. */
export const API_KEY_ID_PATTERN = /^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$/;
const SECRET_PATTERN = /^[A-Za-z0-9_-]{32,128}$/;

export const SCRYPT_DEFAULTS = { N: 2 ** 14, r: 8, p: 1, saltBytes: 16, keyBytes: 32 } as const;
/** Bounds on hash parameters read from a Secret, so a hostile entry cannot exhaust memory. */
const SCRYPT_BOUNDS = { minLog2N: 10, maxLog2N: 20, maxR: 32, maxP: 16, maxMemBytes: 256 << 20 };

export interface ScryptHash {
  N: number;
  r: number;
  p: number;
  salt: Buffer;
  hash: Buffer;
}

/** Parses `scrypt$N$r$p$<salt base64>$<hash base64>`; throws with a reason when invalid. */
export function parseScryptHash(text: string): ScryptHash {
  const parts = text.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') {
    throw new Error('hash must have the form scrypt$N$r$p$<salt>$<hash>');
  }
  const [, nText, rText, pText, saltText, hashText] = parts as [string, ...string[]];
  const N = Number(nText);
  const r = Number(rText);
  const p = Number(pText);
  const log2N = Math.log2(N);
  if (
    !Number.isInteger(log2N) ||
    log2N < SCRYPT_BOUNDS.minLog2N ||
    log2N > SCRYPT_BOUNDS.maxLog2N
  ) {
    throw new Error(
      `N must be a power of two between 2^${SCRYPT_BOUNDS.minLog2N} and 2^${SCRYPT_BOUNDS.maxLog2N}`,
    );
  }
  if (!Number.isInteger(r) || r < 1 || r > SCRYPT_BOUNDS.maxR) throw new Error('r out of range');
  if (!Number.isInteger(p) || p < 1 || p > SCRYPT_BOUNDS.maxP) throw new Error('p out of range');
  if (scryptMemory(N, r) > SCRYPT_BOUNDS.maxMemBytes) throw new Error('N*r needs too much memory');
  const salt = Buffer.from(saltText ?? '', 'base64');
  const hash = Buffer.from(hashText ?? '', 'base64');
  if (salt.length < 16) throw new Error('salt must be at least 16 bytes');
  if (hash.length < 32 || hash.length > 64) throw new Error('hash must be 32 to 64 bytes');
  return { N, r, p, salt, hash };
}

const scryptMemory = (N: number, r: number) => 128 * N * r;

/** The Secret entry's `hash` for a key; used by `mcpworks apikey` and tests. */
export async function hashApiKey(
  key: string,
  params: { N?: number; r?: number; p?: number } = {},
): Promise<string> {
  const N = params.N ?? SCRYPT_DEFAULTS.N;
  const r = params.r ?? SCRYPT_DEFAULTS.r;
  const p = params.p ?? SCRYPT_DEFAULTS.p;
  const salt = crypto.randomBytes(SCRYPT_DEFAULTS.saltBytes);
  const hash = await scrypt(key, salt, SCRYPT_DEFAULTS.keyBytes, {
    N,
    r,
    p,
    maxmem: 2 * scryptMemory(N, r),
  });
  const text = `scrypt$${N}$${r}$${p}$${salt.toString('base64')}$${hash.toString('base64')}`;
  parseScryptHash(text); // refuse to produce a hash the store would reject
  return text;
}

/** A fresh key for `id`: 256 random bits. */
export function generateApiKey(id: string): string {
  if (!API_KEY_ID_PATTERN.test(id)) throw new Error(`invalid API key id "${id}"`);
  return `${API_KEY_PREFIX}${id}_${crypto.randomBytes(32).toString('base64url')}`;
}

/** Bytes of the entry's `tag`: 16 bits let through 1 in 65 536 wrong secrets to scrypt. */
export const API_KEY_TAG_BYTES = 2;
const TAG_PATTERN = /^[0-9a-f]{4}$/;
/** Domain separation: this hash is used for nothing else. */
const TAG_DOMAIN = Buffer.from('mcpworks api-key tag v1\0');

/**
 * The fast check of `key` against an entry's salt (the one fast hash every refusal costs):
 * SHA-256 over the domain, the salt's length (2 bytes), the salt and the key. A one-shot hash,
 * several times cheaper than an HMAC (measured in the bench: the unknown-id path).
 */
export function apiKeyTagBytes(key: string, salt: Buffer): Buffer {
  const length = Buffer.alloc(2);
  length.writeUInt16BE(salt.length);
  const input = Buffer.concat([TAG_DOMAIN, length, salt, Buffer.from(key, 'utf8')]);
  return crypto.hash('sha256', input, 'buffer').subarray(0, API_KEY_TAG_BYTES);
}

/** The Secret entry's `tag` for a key and its `hash` (from hashApiKey). */
export function apiKeyTag(key: string, hash: string): string {
  return apiKeyTagBytes(key, parseScryptHash(hash).salt).toString('hex');
}

/** `hash` and `tag` of a new Secret entry; `mcpworks apikey new` writes both. */
export async function apiKeyCredentialFields(
  key: string,
  params: { N?: number; r?: number; p?: number } = {},
): Promise<{ hash: string; tag: string }> {
  const hash = await hashApiKey(key, params);
  return { hash, tag: apiKeyTag(key, hash) };
}

/** `mcpw_<id>_<secret>` → its id, or undefined when the shape is wrong. */
export function apiKeyId(key: string): string | undefined {
  if (!key.startsWith(API_KEY_PREFIX)) return undefined;
  const rest = key.slice(API_KEY_PREFIX.length);
  const sep = rest.indexOf('_');
  if (sep < 0) return undefined;
  const id = rest.slice(0, sep);
  if (!API_KEY_ID_PATTERN.test(id) || !SECRET_PATTERN.test(rest.slice(sep + 1))) return undefined;
  return id;
}

export const isApiKey = (token: string): boolean => token.startsWith(API_KEY_PREFIX);

export const ApiKeyEntrySchema = z.strictObject({
  hash: z.string().min(1).max(512),
  tag: z.string().regex(TAG_PATTERN, 'tag must be 4 lowercase hex digits').optional(),
  agent: z.string().min(1).max(253),
  groups: z.array(z.string().min(1).max(253)).max(64).default([]),
  expires: z.iso.datetime({ offset: true }).optional(),
});
export type ApiKeyEntry = z.infer<typeof ApiKeyEntrySchema>;

export interface ApiKeyRecord {
  id: string;
  hash: ScryptHash;
  /** Absent on entries written before tags existed: those are checked by scrypt alone. */
  tag?: Buffer;
  agent: string;
  groups: readonly string[];
  expiresAt?: Date;
  /** The parsed entry, canonical: equal fingerprints mean an unchanged entry. */
  readonly fingerprint: string;
}

export interface ReplaceResult {
  loaded: number;
  /** Entries that were not loaded, with why (never the hash). */
  rejected: { id: string; problem: string }[];
}

/** Remember at most this many revoked ids, to name revocation in the failure reason. */
const MAX_REVOKED_IDS = 10_000;

/**
 * The current set of API keys. `replace` swaps it atomically (the gateway calls it when the
 * Secret changes). An entry that did not change keeps its record object, so a verifier's cache
 * of it stays valid; a removed or changed entry gets none or a new one, so what was verified
 * against it stops counting for the next request without a restart.
 */
export class ApiKeyStore {
  #records = new Map<string, ApiKeyRecord>();
  #revoked = new Set<string>();
  #generation = 0;
  #lastRejected: ReplaceResult['rejected'] = [];
  #listeners = new Set<() => void>();

  /**
   * A store of these entries. `revoked` carries the ids an earlier store of the same server saw
   * removed (`revokedIds()`), so a configuration snapshot that builds a new store still names a
   * revoked key as revoked rather than unknown.
   */
  static from(
    entries: Readonly<Record<string, string>>,
    revoked: Iterable<string> = [],
  ): ApiKeyStore {
    const store = new ApiKeyStore();
    for (const id of revoked) store.#revoked.add(id);
    store.replace(entries);
    return store;
  }

  /** The ids removed by a `replace` and not added back since (at most MAX_REVOKED_IDS). */
  revokedIds(): string[] {
    return [...this.#revoked];
  }

  get generation(): number {
    return this.#generation;
  }

  /** Entries the last `replace` skipped, with why; for operators' logs and status. */
  get rejected(): ReplaceResult['rejected'] {
    return this.#lastRejected;
  }

  get size(): number {
    return this.#records.size;
  }

  /** Entries are the Secret's data: key id → JSON of ApiKeyEntry (already base64-decoded). */
  replace(entries: Readonly<Record<string, string>>): ReplaceResult {
    const next = new Map<string, ApiKeyRecord>();
    const rejected: ReplaceResult['rejected'] = [];
    for (const [id, json] of Object.entries(entries)) {
      try {
        const record = parseRecord(id, json);
        const previous = this.#records.get(id);
        next.set(id, previous?.fingerprint === record.fingerprint ? previous : record);
      } catch (err) {
        rejected.push({ id, problem: (err as Error).message });
      }
    }
    for (const id of this.#records.keys()) {
      if (!next.has(id)) this.#revoked.add(id);
    }
    for (const id of next.keys()) this.#revoked.delete(id);
    while (this.#revoked.size > MAX_REVOKED_IDS) {
      const oldest = this.#revoked.values().next().value as string;
      this.#revoked.delete(oldest);
    }
    this.#records = next;
    this.#lastRejected = rejected;
    this.#generation++;
    for (const listener of this.#listeners) listener();
    return { loaded: next.size, rejected };
  }

  lookup(id: string): ApiKeyRecord | undefined {
    return this.#records.get(id);
  }

  records(): IterableIterator<ApiKeyRecord> {
    return this.#records.values();
  }

  wasRevoked(id: string): boolean {
    return this.#revoked.has(id);
  }

  /** Called synchronously inside every `replace`. Returns an unsubscribe function. */
  onReplace(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}

function parseRecord(id: string, json: string): ApiKeyRecord {
  if (!API_KEY_ID_PATTERN.test(id)) {
    throw new Error('key id must be lowercase letters, digits and inner dashes (max 63)');
  }
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    throw new Error('entry is not JSON');
  }
  const parsed = ApiKeyEntrySchema.safeParse(raw);
  if (!parsed.success) {
    throw new Error(
      parsed.error.issues.map((i) => `${i.path.join('.') || '(entry)'}: ${i.message}`).join('; '),
    );
  }
  const entry = parsed.data;
  const record: ApiKeyRecord = {
    id,
    hash: parseScryptHash(entry.hash),
    agent: entry.agent,
    groups: Object.freeze([...entry.groups]),
    fingerprint: JSON.stringify([
      entry.hash,
      entry.tag ?? null,
      entry.agent,
      entry.groups,
      entry.expires ?? null,
    ]),
  };
  if (entry.tag !== undefined) record.tag = Buffer.from(entry.tag, 'hex');
  if (entry.expires !== undefined) record.expiresAt = new Date(entry.expires);
  return record;
}

/** A Secret (`data` base64, `stringData` plain) → store entries; `key` selects one entry. */
export function apiKeyEntriesFromSecret(
  secret: {
    data?: Record<string, string> | undefined;
    stringData?: Record<string, string> | undefined;
  },
  key?: string,
): Record<string, string> {
  const entries: Record<string, string> = {};
  for (const [id, value] of Object.entries(secret.data ?? {})) {
    entries[id] = Buffer.from(value, 'base64').toString('utf8');
  }
  Object.assign(entries, secret.stringData ?? {});
  if (key === undefined) return entries;
  return key in entries ? { [key]: entries[key] as string } : {};
}

export interface ApiKeyVerifierOptions {
  store: ApiKeyStore;
  clock: Clock;
  logger: Logger;
  /** Verified keys remembered (by SHA-256) while their entry is unchanged; default 10 000. */
  cacheSize?: number;
  /** How long a wrong key for a known id is remembered as wrong; default 30 s. */
  negativeTtlMs?: number;
  /** scrypt computations at once (each holds ~16-64 MiB and a libuv thread); default 2. */
  maxConcurrentHashes?: number;
  /** Computations allowed to wait; beyond, requests fail fast (`verifier-unavailable`). */
  maxQueuedHashes?: number;
  /**
   * Computations running or waiting for one key id; default 8. Beyond, that id's requests fail
   * fast, so a flood against one id (an entry without a tag) cannot take every slot from others.
   */
  maxHashesPerKey?: number;
}

/** What a cache entry was decided against: it counts only while the store holds that record. */
interface Verified {
  record: ApiKeyRecord;
}
interface Wrong {
  record: ApiKeyRecord;
  until: number;
}
interface Inflight {
  record: ApiKeyRecord;
  check: Promise<boolean>;
}

/** Verifies `mcpw_` bearer tokens against an ApiKeyStore. */
export class ApiKeyVerifier implements CredentialVerifier {
  readonly method = 'api-key' as const;
  readonly #store: ApiKeyStore;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #cacheSize: number;
  readonly #negativeTtlMs: number;
  readonly #maxHashesPerKey: number;
  readonly #verified = new Map<string, Verified>();
  readonly #wrong = new Map<string, Wrong>();
  readonly #inflight = new Map<string, Inflight>();
  /** Hash computations running or queued, per key id. */
  readonly #hashesPerKey = new Map<string, number>();
  readonly #hashSlots: Semaphore;
  /** What an unknown id is checked against, so it costs what a known id with a wrong tag does. */
  readonly #dummy = {
    salt: crypto.randomBytes(SCRYPT_DEFAULTS.saltBytes),
    tag: crypto.randomBytes(API_KEY_TAG_BYTES),
  };
  readonly #warnedUntagged = new WeakSet<ApiKeyRecord>();

  constructor(options: ApiKeyVerifierOptions) {
    this.#store = options.store;
    this.#clock = options.clock;
    this.#logger = options.logger;
    this.#cacheSize = options.cacheSize ?? 10_000;
    this.#negativeTtlMs = options.negativeTtlMs ?? 30_000;
    this.#maxHashesPerKey = options.maxHashesPerKey ?? 8;
    if (!(this.#cacheSize >= 1)) throw new Error('cacheSize must be at least 1');
    if (!(this.#maxHashesPerKey >= 1)) throw new Error('maxHashesPerKey must be at least 1');
    // A flood of wrong secrets must not take every libuv thread and hundreds of MiB with it.
    this.#hashSlots = new Semaphore(
      options.maxConcurrentHashes ?? 2,
      options.maxQueuedHashes ?? 64,
    );
    this.#warnAboutUntagged();
    // Forget what was decided against entries that are gone or changed; the rest stays valid
    // (lookups compare the record anyway, so this only frees memory and names old entries).
    this.#store.onReplace(() => {
      this.#prune(this.#verified);
      this.#prune(this.#wrong);
      this.#warnAboutUntagged();
    });
  }

  async verify(token: string): Promise<AuthResult> {
    const id = apiKeyId(token);
    if (id === undefined) return authFailure('malformed', { method: this.method });
    const digest = crypto.createHash('sha256').update(token).digest('base64');

    const hit = this.#verified.get(digest);
    if (hit !== undefined && this.#store.lookup(hit.record.id) === hit.record) {
      return this.#accept(hit.record);
    }

    // One fast hash on every path from here, against the entry's salt or a dummy one: an
    // unknown id and a wrong secret for a known id cost the same and get the same answer.
    const record = this.#store.lookup(id);
    const salt = record?.hash.salt ?? this.#dummy.salt;
    const expected = record?.tag ?? this.#dummy.tag;
    const presented = apiKeyTagBytes(token, salt);
    const tagMatches =
      presented.length === expected.length && crypto.timingSafeEqual(presented, expected);
    if (record === undefined) {
      const reason = this.#store.wasRevoked(id) ? 'revoked' : 'unknown-key';
      return authFailure(reason, { method: this.method });
    }
    if (record.tag !== undefined && !tagMatches) {
      return authFailure('unknown-key', { method: this.method });
    }

    const wrong = this.#wrong.get(digest);
    if (wrong !== undefined && wrong.record === record && wrong.until > this.#clock.monotonicMs()) {
      return authFailure('unknown-key', { method: this.method });
    }

    let inflight = this.#inflight.get(digest);
    if (inflight === undefined || inflight.record !== record) {
      const started = this.#startHash(token, digest, record);
      if (started === undefined) {
        this.#logger.warn({ keyId: id }, 'API key verification refused: too many hashes queued');
        return authFailure('verifier-unavailable', { method: this.method });
      }
      inflight = started;
    }
    let ok: boolean;
    try {
      ok = await inflight.check;
    } catch (err) {
      this.#logger.error({ err, keyId: id }, 'API key verification failed');
      return authFailure('verifier-unavailable', { method: this.method });
    }
    // The entry was removed or changed while scrypt ran: decide against the current one.
    if (this.#store.lookup(id) !== record) return this.verify(token);
    if (!ok) {
      this.#remember(this.#wrong, digest, {
        record,
        until: this.#clock.monotonicMs() + this.#negativeTtlMs,
      });
      return authFailure('unknown-key', { method: this.method });
    }
    this.#remember(this.#verified, digest, { record });
    return this.#accept(record);
  }

  /** Queues one scrypt for `record`, or undefined when its id's or the global queue is full. */
  #startHash(token: string, digest: string, record: ApiKeyRecord): Inflight | undefined {
    const id = record.id;
    const perKey = this.#hashesPerKey.get(id) ?? 0;
    if (perKey >= this.#maxHashesPerKey) return undefined;
    const acquired = this.#hashSlots.tryAcquire();
    if (acquired === undefined) return undefined;
    this.#hashesPerKey.set(id, perKey + 1);
    const inflight: Inflight = {
      record,
      check: acquired
        .then(() => matches(token, record.hash))
        .finally(() => {
          this.#hashSlots.release();
          const left = (this.#hashesPerKey.get(id) ?? 1) - 1;
          if (left > 0) this.#hashesPerKey.set(id, left);
          else this.#hashesPerKey.delete(id);
          if (this.#inflight.get(digest) === inflight) this.#inflight.delete(digest);
        }),
    };
    this.#inflight.set(digest, inflight);
    return inflight;
  }

  #accept(record: ApiKeyRecord): AuthResult {
    // Checked on every request, cached or not: expiry is the control that must never be skipped.
    if (
      record.expiresAt !== undefined &&
      record.expiresAt.getTime() <= this.#clock.now().getTime()
    ) {
      return authFailure('expired', { method: this.method });
    }
    const credential: { id: string; expiresAt?: Date } = { id: record.id };
    if (record.expiresAt !== undefined) credential.expiresAt = record.expiresAt;
    return {
      ok: true,
      method: this.method,
      principal: agentPrincipal(record.agent, record.groups, 'api-key'),
      credential,
    };
  }

  #prune(map: Map<string, { record: ApiKeyRecord }>): void {
    for (const [digest, entry] of map) {
      if (this.#store.lookup(entry.record.id) !== entry.record) map.delete(digest);
    }
  }

  /** Once per entry: an entry without a tag is exposed to floods of wrong secrets. */
  #warnAboutUntagged(): void {
    for (const record of this.#store.records()) {
      if (record.tag !== undefined || this.#warnedUntagged.has(record)) continue;
      this.#warnedUntagged.add(record);
      this.#logger.warn(
        { keyId: record.id },
        'API key entry has no tag: every wrong secret for its id costs a scrypt, so a flood ' +
          'can delay or refuse its first use; re-issue it with `mcpworks apikey new`',
      );
    }
  }

  #remember<V>(map: Map<string, V>, key: string, value: V): void {
    if (map.size >= this.#cacheSize && !map.has(key)) {
      const oldest = map.keys().next().value as string;
      map.delete(oldest);
    }
    map.set(key, value);
  }
}

/** Derives the presented key's hash with the stored parameters; compares in constant time. */
async function matches(token: string, stored: ScryptHash): Promise<boolean> {
  const derived = await scrypt(token, stored.salt, stored.hash.length, {
    N: stored.N,
    r: stored.r,
    p: stored.p,
    maxmem: 2 * scryptMemory(stored.N, stored.r),
  });
  return derived.length === stored.hash.length && crypto.timingSafeEqual(derived, stored.hash);
}
