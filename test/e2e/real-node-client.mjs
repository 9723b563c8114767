// The agent of test/e2e/real-node.test.ts: runs in a pod of the operator image (mounted from a
// ConfigMap under /app/e2e, so it resolves the image's /app/node_modules/@modelcontextprotocol/sdk)
// and is driven with `kubectl exec`. One JSON request in argv[2], one JSON answer on stdout; it
// always exits 0 so the test asserts on what happened, not on kubectl's exit code.
//
//   {"op":"call","url":...,"token":...|"tokenFile":...,"tool":...,"args":{...}}
//   {"op":"loop", ...call..., "stopFile":..., "maxMs":..., "marker":..., "afterStop":n}
//   {"op":"get","url":...}
//   {"op":"latency", ...call..., "calls":n, "spacedMs":ms}: one session, n calls, ms of each
/* global URL, fetch, AbortSignal, setTimeout, performance */
import { existsSync, readFileSync } from 'node:fs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const req = JSON.parse(process.argv[2] ?? '{}');

function tokenOf(r) {
  return r.tokenFile ? readFileSync(r.tokenFile, 'utf8').trim() : r.token;
}

async function call(r) {
  const started = Date.now();
  const client = new Client({ name: 'e2e-agent', version: '0.1.0' });
  try {
    await client.connect(
      new StreamableHTTPClientTransport(new URL(r.url), {
        requestInit: { headers: { authorization: `Bearer ${tokenOf(r)}` } },
      }),
    );
    const result = await client.callTool({ name: r.tool, arguments: r.args ?? {} }, undefined, {
      timeout: r.timeoutMs ?? 60_000,
    });
    const text = result.content.map((c) => (c.type === 'text' ? c.text : '')).join('');
    return {
      ok: !result.isError,
      isError: result.isError === true,
      text,
      ms: Date.now() - started,
    };
  } catch (error) {
    return { ok: false, error: error instanceof Error ? error.message : String(error) };
  } finally {
    await client.close().catch(() => undefined);
  }
}

async function loop(r) {
  const results = [];
  const deadline = Date.now() + r.maxMs;
  let afterStop = 0;
  while (Date.now() < deadline && afterStop < r.afterStop) {
    const result = await call(r);
    results.push({ ok: result.ok, text: result.text, error: result.error });
    if (existsSync(r.stopFile) && result.text?.includes(r.marker)) afterStop += 1;
  }
  return { results, timedOut: afterStop < r.afterStop };
}

/** Warm-call latency as an agent sees it: one session, calls spaced like an agent's. */
async function latency(r) {
  const client = new Client({ name: 'e2e-agent', version: '0.1.0' });
  const ms = [];
  try {
    await client.connect(
      new StreamableHTTPClientTransport(new URL(r.url), {
        requestInit: { headers: { authorization: `Bearer ${tokenOf(r)}` } },
      }),
    );
    for (let i = 0; i < r.calls; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, r.spacedMs));
      const started = performance.now();
      const result = await client.callTool({ name: r.tool, arguments: r.args ?? {} });
      if (result.isError) return { ok: false, error: JSON.stringify(result.content), ms };
      ms.push(performance.now() - started);
    }
    return { ok: true, ms };
  } catch (error) {
    return { ok: false, error: error instanceof Error ? error.message : String(error), ms };
  } finally {
    await client.close().catch(() => undefined);
  }
}

async function get(r) {
  try {
    const res = await fetch(r.url, { signal: AbortSignal.timeout(10_000) });
    return { status: res.status, body: await res.text() };
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error) };
  }
}

const ops = { call, loop, get, latency };
process.stdout.write(`${JSON.stringify(await ops[req.op](req))}\n`);
