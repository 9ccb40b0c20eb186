// mcp.mjs drives runbox's MCP endpoint with the official MCP TypeScript SDK:
//
//	node mcp.mjs URL
//
// URL is the endpoint, such as http://127.0.0.1:8080/mcp; RUNBOX_TOKEN, when set, is
// sent as the bearer token. It lists the tools, runs print(6*7) in Python, lists the
// languages, and prints what it got as one JSON object on stdout.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const url = process.argv[2];
if (!url) {
  console.error("usage: node mcp.mjs URL");
  process.exit(2);
}
const headers = process.env.RUNBOX_TOKEN ? { Authorization: `Bearer ${process.env.RUNBOX_TOKEN}` } : {};
const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
const client = new Client({ name: "runbox-test", version: "0.0.0" });

try {
  await client.connect(transport);
  const { tools } = await client.listTools();
  // callTool validates structuredContent against the tool's output schema.
  const run = await client.callTool({ name: "run_code", arguments: { language: "python", code: "print(6*7)" } });
  const languages = await client.callTool({ name: "list_languages", arguments: {} });
  const server = client.getServerVersion();
  console.log(JSON.stringify({ server, tools, run, languages }));
} catch (err) {
  console.error(err?.stack ?? String(err));
  process.exitCode = 1;
} finally {
  await client.close();
}
