// An independent MCP peer: the official TypeScript SDK client drives `rlm-mcp serve` over stdio.
// Usage: node peer_client.mjs REPO_PATH COMMAND [ARGS...]; prints one JSON object on stdout.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const [repo, command, ...args] = process.argv.slice(2);
const transport = new StdioClientTransport({ command, args, env: process.env, stderr: "inherit" });
const client = new Client({ name: "rlm-mcp-peer-test", version: "0.0.0" });

try {
  await client.connect(transport);
  const tools = await client.listTools();
  const load = await client.callTool({ name: "rlm_load", arguments: { path: repo } });
  const search = await client.callTool({
    name: "rlm_search",
    arguments: { pattern: "def area", glob: "*.py" },
  });
  const bad = await client.callTool({ name: "rlm_read", arguments: { path: "x", repo: "nope" } });
  console.log(
    JSON.stringify({
      server: client.getServerVersion(),
      protocol: transport.protocolVersion ?? null,
      tools: tools.tools.map((t) => t.name),
      load: load.structuredContent,
      loadError: load.isError ?? false,
      search: search.structuredContent,
      badIsError: bad.isError ?? false,
    }),
  );
} finally {
  await client.close();
}
