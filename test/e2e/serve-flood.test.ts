// A flood of wrong secrets through the real `mcpworks serve` endpoint (docs/api-keys.md,
// "Floods of wrong secrets"): a valid key's first use still succeeds, a Secret change during the
// flood keeps verified keys verified and lets a new key in at its first use, and a removed key is
// refused on the next request. Outcomes only: speed is in test/bench/auth.bench.ts.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parse, stringify } from 'yaml';
import {
  apiKeyCredentialFields,
  generateApiKey,
  hashApiKey,
} from '../../src/gateway/auth/apikeys.ts';
import {
  DEMO_KEY,
  postInitialize,
  rpcHeaders,
  samplesWithSecondAgent,
  startServe,
  type RunningServe,
  replaceManifest,
} from './serve-harness.ts';

const SECRET = 'mcpworks_v1alpha1_apikeys_secret.yaml';
/** Requests in flight at once, each with a new wrong secret. */
const FLOOD = 200;
const OK = 'ok';
const UNKNOWN = '401 unknown API key';
const REVOKED = '401 the credential has been revoked';
const UNAVAILABLE = '401 the credential could not be verified right now';

let serve: RunningServe;
let dir: string;
let url: string;
let e2eKey: string;
/** An entry as older versions wrote it (no tag), with the default scrypt cost. */
const legacyKey = generateApiKey('legacy');

async function editSecret(edit: (data: Record<string, string>) => Promise<void>): Promise<void> {
  const file = join(dir, SECRET);
  const doc = parse(await readFile(file, 'utf8')) as { stringData: Record<string, string> };
  await edit(doc.stringData);
  await replaceManifest(file, stringify(doc));
}

before(async () => {
  ({ dir, key: e2eKey } = await samplesWithSecondAgent());
  await editSecret(async (data) => {
    data['legacy'] = JSON.stringify({ hash: await hashApiKey(legacyKey), agent: 'e2e-agent' });
  });
  serve = await startServe([dir], ['--watch']);
  url = `${serve.base}/mcp/default/demo`;
});
after(async () => {
  await serve?.stop();
});

/** What one `initialize` with `key` got: 'ok', or the status and the challenge's description. */
async function outcome(key: string): Promise<string> {
  const res = await postInitialize(url, rpcHeaders(key));
  await res.text();
  if (res.status === 200) return OK;
  const challenge = res.headers.get('www-authenticate') ?? '';
  return `${res.status} ${/error_description="([^"]*)"/.exec(challenge)?.[1] ?? challenge}`;
}

/** FLOOD concurrent loops of wrong secrets for `id`, until stopped; counts what they got. */
function flood(id: string) {
  let running = true;
  let sent = 0;
  const outcomes = new Map<string, number>();
  const workers = Array.from({ length: FLOOD }, async () => {
    while (running) {
      const got = await outcome(generateApiKey(id));
      outcomes.set(got, (outcomes.get(got) ?? 0) + 1);
      sent++;
    }
  });
  return {
    /** Resolves once `n` flood requests have been answered: the flood is in full swing. */
    async underway(n = 2 * FLOOD): Promise<void> {
      while (sent < n) await new Promise((r) => setTimeout(r, 20));
    },
    async stop(): Promise<Map<string, number>> {
      running = false;
      await Promise.all(workers);
      return outcomes;
    },
  };
}

/** Polls with `key` until it gets `want` (a reload is asynchronous), then returns. */
async function until(key: string, want: string, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  let got = await outcome(key);
  while (got !== want) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}: last ${got}\n${serve.stderr()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
    got = await outcome(key);
  }
}

test('under a flood of wrong secrets for a known id, valid keys succeed at their first use', async () => {
  const attack = flood('demo');
  await attack.underway();
  // Neither key has been used: each needs its scrypt, one of them for the id under attack.
  const [demo, e2e] = await Promise.all([outcome(DEMO_KEY), outcome(e2eKey)]);
  const outcomes = await attack.stop();
  assert.deepEqual([demo, e2e], [OK, OK]);
  // Tagged entry: every wrong secret is refused as unknown by its tag, none for lack of slots.
  assert.deepEqual([...outcomes.keys()], [UNKNOWN]);
  assert.ok((outcomes.get(UNKNOWN) ?? 0) >= 2 * FLOOD);
});

test('a Secret change during a flood keeps verified keys verified and admits a new key at once', async () => {
  assert.equal(await outcome(legacyKey), OK, 'the untagged key, verified before the flood');
  // Without a tag every wrong secret for `legacy` costs a scrypt: its hash slots stay full.
  const attack = flood('legacy');
  await attack.underway();
  const fresh = generateApiKey('fresh');
  const marker = generateApiKey('marker');
  await editSecret(async (data) => {
    data['fresh'] = JSON.stringify({
      ...(await apiKeyCredentialFields(fresh)),
      agent: 'e2e-agent',
    });
    data['marker'] = JSON.stringify({
      ...(await apiKeyCredentialFields(marker, { N: 1024 })),
      agent: 'e2e-agent',
    });
  });
  await until(marker, OK, 'the Secret change to load');
  // The first request with each key after the change:
  const [freshFirst, legacyAgain, demoAgain] = await Promise.all([
    outcome(fresh),
    outcome(legacyKey),
    outcome(DEMO_KEY),
  ]);
  const outcomes = await attack.stop();
  assert.deepEqual(
    { freshFirst, legacyAgain, demoAgain },
    { freshFirst: OK, legacyAgain: OK, demoAgain: OK },
  );
  // The flood itself is refused, as unknown or (its id's slots full) unverifiable; never let in.
  assert.deepEqual(
    [...outcomes.keys()].filter((o) => o !== UNKNOWN && o !== UNAVAILABLE),
    [],
  );
  assert.ok((outcomes.get(UNAVAILABLE) ?? 0) > 0, 'the untagged id was flooded past its slots');
});

test('a key removed during a flood is refused at the next request', async () => {
  const attack = flood('demo');
  await attack.underway();
  assert.equal(await outcome(legacyKey), OK);
  const marker = generateApiKey('marker2');
  await editSecret(async (data) => {
    delete data['legacy'];
    data['marker2'] = JSON.stringify({
      ...(await apiKeyCredentialFields(marker, { N: 1024 })),
      agent: 'e2e-agent',
    });
  });
  await until(marker, OK, 'the Secret change to load');
  const [legacyNext, e2eNext] = await Promise.all([outcome(legacyKey), outcome(e2eKey)]);
  const outcomes = await attack.stop();
  assert.deepEqual({ legacyNext, e2eNext }, { legacyNext: REVOKED, e2eNext: OK });
  assert.deepEqual([...outcomes.keys()], [UNKNOWN]);
});
