// `mcpworks serve --watch`: a policy edit and an API-key revocation in the manifest files apply
// to the next request, without a restart and without closing the client's session.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parse, stringify } from 'yaml';
import {
  connectClient,
  DEMO_KEY,
  samplesWithSecondAgent,
  startServe,
  type RunningServe,
  replaceManifest,
} from './serve-harness.ts';

let serve: RunningServe;
let dir: string;
let url: string;

before(async () => {
  ({ dir } = await samplesWithSecondAgent());
  serve = await startServe([dir], ['--watch']);
  url = `${serve.base}/mcp/default/demo`;
});
after(async () => {
  await serve?.stop();
});

async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${serve.stderr()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function editYaml(name: string, edit: (doc: Record<string, unknown>) => void): Promise<void> {
  const file = join(dir, name);
  const doc = parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  edit(doc);
  await replaceManifest(file, stringify(doc));
}

test('a policy edit applies to the next call in the same session', async () => {
  const client = await connectClient(url, DEMO_KEY);
  assert.equal(
    (await client.callTool({ name: 'word_count', arguments: { text: 'a b' } })).isError,
    false,
  );
  await editYaml('mcpworks_v1alpha1_agentpolicy.yaml', (doc) => {
    const spec = doc['spec'] as { rules: { effect: string; tools: string[] }[] };
    spec.rules[0]!.tools = ['json_summary'];
  });
  await eventually(
    async () =>
      (await client.callTool({ name: 'word_count', arguments: { text: 'a b' } })).isError === true,
    'the policy edit',
  );
  await client.close();
});

test('removing a key from the Secret revokes it for the next request, recorded as revoked', async () => {
  const client = await connectClient(url, DEMO_KEY);
  await editYaml('mcpworks_v1alpha1_apikeys_secret.yaml', (doc) => {
    delete (doc['stringData'] as Record<string, string>)['demo'];
  });
  await eventually(async () => {
    try {
      await client.listTools();
      return false;
    } catch (error) {
      // Each reload builds a new key store: it must still know the id was revoked, not unknown.
      assert.match(String(error), /the credential has been revoked/);
      return true;
    }
  }, 'the revocation');
  await client.close();
  const records = await serve.decisions();
  const refused = records.filter((r) => r.authentication.outcome === 'failed');
  assert.ok(refused.length > 0);
  for (const r of refused) assert.equal(r.authentication.reason, 'revoked');
});

test('a broken edit keeps the last good configuration and says why', async () => {
  await writeFile(
    join(dir, 'broken.yaml'),
    'apiVersion: mcpworks.io/v1alpha1\nkind: AgentPolicy\nmetadata: {name: x}\nspec: {}\n',
  );
  await eventually(
    async () => /reload failed, keeping the previous configuration/.test(serve.stderr()),
    'the reload error',
  );
  assert.equal((await fetch(`${serve.base}/healthz`)).status, 200);
});
