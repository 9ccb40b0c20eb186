// Drives a runbox server with piston-client, the npm client of the Piston API, used
// as its README shows, and prints as JSON what each call returned.
//
// Usage: node piston.mjs SERVER_URL
import piston from "piston-client";

const server = process.argv[2];
if (!server) {
  console.error("usage: node piston.mjs SERVER_URL");
  process.exit(2);
}

const client = piston({ server });

const runtimes = await client.runtimes();
const python = await client.execute("python", 'import sys\nprint("Hello World!", sys.argv[1:])');
const javascript = await client.execute("javascript", 'console.log("Hello from", process.release.name)');
const config = await client.execute({
  language: "py",
  version: "*",
  files: [
    { name: "main.py", content: "import sys\nprint(open('data.txt').read() + sys.stdin.read(), sys.argv[1:])" },
    { name: "data.txt", content: "from a file, " },
  ],
  stdin: "from stdin",
  args: ["a", "b"],
  runTimeout: 5000,
});
const failure = await client.execute("python", "1/0");
const unknown = await client.execute("cobol", "DISPLAY 'HI'.");

console.log(JSON.stringify({ runtimes, python, javascript, config, failure, unknown }));
