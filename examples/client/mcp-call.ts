#!/usr/bin/env node
// A minimal MCP client (the official TypeScript SDK) for trying an MCPWorks server by hand:
//
//   node examples/client/mcp-call.ts --url http://127.0.0.1:8080/mcp --token "$TOKEN" --list
//   node examples/client/mcp-call.ts --url http://127.0.0.1:8080/mcp --token "$TOKEN" \
//     word_count '{"text": "hello sandboxed world"}'
//
// --token is an API key (mcpw_<id>_<secret>), an OIDC access token or a Kubernetes
// ServiceAccount token; it is sent as `Authorization: Bearer <token>`, never in the URL.
// $MCP_TOKEN is read when --token is absent. Prints the result as JSON; exits 1 when the server
// answers with an error result (for example a policy denial) and 2 on a protocol or usage error.
import { parseArgs } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const USAGE =
  'usage: mcp-call.ts --url <endpoint> [--token <bearer>] (--list | <tool> [<json arguments>])\n';

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      url: { type: 'string' },
      token: { type: 'string' },
      list: { type: 'boolean', default: false },
    },
    allowPositionals: true,
  });
  const token = values.token ?? process.env['MCP_TOKEN'];
  const [tool, json] = positionals;
  if (values.url === undefined || (!values.list && tool === undefined)) {
    process.stderr.write(USAGE);
    return 2;
  }
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  const client = new Client({ name: 'mcp-call', version: '0.1.0' });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(values.url), { requestInit: { headers } }),
  );
  try {
    if (values.list) {
      const { tools } = await client.listTools();
      process.stdout.write(
        `${JSON.stringify(
          tools.map((t) => ({ name: t.name, description: t.description })),
          null,
          2,
        )}\n`,
      );
      return 0;
    }
    const args = json === undefined ? {} : (JSON.parse(json) as Record<string, unknown>);
    const result = await client.callTool({ name: tool!, arguments: args });
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return result.isError ? 1 : 0;
  } finally {
    await client.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(`mcp-call: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 2;
  },
);
