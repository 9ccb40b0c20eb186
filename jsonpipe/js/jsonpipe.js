// Child side of jsonpipe for Node: one JSON request on stdin, one JSON result on stdout.
//
//   const { serve } = require('./jsonpipe.js');
//   serve(async (req) => ({ n: req.text.length }));
//
// fn may be sync or async. On failure the last line of stderr is
// {"error": "message", "type": "ErrorName"} and the exit code is 1; input that is not
// JSON is reported with type "BadInput". Log with console.error, never console.log:
// stdout carries the result only. No dependencies; Node 20.
'use strict';

function errorType(err) {
  if (err instanceof Error) {
    if (err.name && err.name !== 'Error') return err.name;
    return (err.constructor && err.constructor.name) || 'Error';
  }
  return typeof err;
}

function errorMessage(err) {
  if (err instanceof Error) return err.message;
  try {
    return typeof err === 'string' ? err : JSON.stringify(err) ?? String(err);
  } catch {
    return String(err);
  }
}

// finish writes data to stream and exits with code once it is flushed: process.exit
// right after a write to a pipe could drop the tail of it.
function finish(stream, data, code) {
  stream.write(data, () => process.exit(code));
}

function fail(message, type) {
  // The report must be the last line of stderr, on a line of its own.
  finish(process.stderr, '\n' + JSON.stringify({ error: message, type }) + '\n', 1);
}

function readStdin() {
  return new Promise((resolve, reject) => {
    const chunks = [];
    process.stdin.on('data', (c) => chunks.push(c));
    process.stdin.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    process.stdin.on('error', reject);
  });
}

// serve reads one JSON value from stdin, calls fn with it, writes its result as JSON
// to stdout and exits 0.
async function serve(fn) {
  let req;
  try {
    req = JSON.parse(await readStdin());
  } catch (err) {
    fail('decode input: ' + errorMessage(err), 'BadInput');
    return;
  }
  let out;
  try {
    out = JSON.stringify(await fn(req));
    if (out === undefined) throw new TypeError('result is not JSON-serialisable');
  } catch (err) {
    fail(errorMessage(err), errorType(err));
    return;
  }
  finish(process.stdout, out + '\n', 0);
}

module.exports = { serve };
