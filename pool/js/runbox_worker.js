'use strict';
/**
 * Node side of a runbox pool worker (protocol version 1, see docs/protocol.md).
 *
 *     const { serve } = require('./runbox_worker.js');
 *     serve(async (params) => ({ n: params.n * 2 }));
 *
 * serve(fn) announces the worker, then answers one request per stdin line, one at a
 * time and in order, until stdin ends; then it exits 0 once the pending answers are
 * written. fn gets the request's params and may return a value or a promise. A throw
 * or a rejection fails that task only: the pool sees a RemoteError with the error's
 * message and name as type ("TypeError"); the worker goes on. A result JSON.stringify
 * refuses (BigInt, cycles) is an error of type "BadOutput"; undefined becomes null.
 *
 * stdout is reserved for frames: serve keeps a private handle on process.stdout's
 * writer and sends console.log/info/debug/trace/dir/table and process.stdout.write to
 * stderr, which the pool forwards to its logger. (A child process given fd 1 directly
 * still writes to the real stdout: give it 'inherit' for stderr only.)
 *
 * A task that hangs is killed by the pool (task timeout); process.exit ends the
 * worker, and the pool reports ErrWorkerDied and starts a fresh one. No dependencies;
 * Node 14+.
 */

const util = require('util');

const PROTOCOL_VERSION = 1;

function encode(obj) {
  return JSON.stringify(obj) + '\n';
}

function errorFrame(id, message, type) {
  return encode({ id, error: { message: String(message), type: String(type) } });
}

function describe(err) {
  if (err instanceof Error) {
    return { message: err.message, type: err.name || (err.constructor && err.constructor.name) || 'Error' };
  }
  if (err && typeof err === 'object' && typeof err.message === 'string') {
    return { message: err.message, type: typeof err.name === 'string' ? err.name : 'Error' };
  }
  return { message: String(err), type: 'Error' };
}

// Route everything user code may print to stdout to stderr; return the frame writer.
function takeStdout() {
  const out = process.stdout;
  const writeFrame = out.write.bind(out);
  const err = process.stderr;
  const toErr = (...args) => {
    err.write(util.format(...args) + '\n');
  };
  console.log = toErr;
  console.info = toErr;
  console.debug = toErr;
  console.dir = (obj, opts) => {
    err.write(util.inspect(obj, opts) + '\n');
  };
  console.trace = (...args) => {
    const e = new Error(util.format(...args));
    e.name = 'Trace';
    err.write(e.stack + '\n');
  };
  console.table = toErr;
  out.write = (...args) => err.write(...args);
  return writeFrame;
}

async function answer(fn, line, init) {
  let req;
  try {
    req = JSON.parse(line);
  } catch (e) {
    return errorFrame(0, 'bad request: ' + e.message, 'BadRequest');
  }
  if (req === null || typeof req !== 'object' || Array.isArray(req)) {
    return errorFrame(0, 'bad request: not a JSON object', 'BadRequest');
  }
  const id = Number.isSafeInteger(req.id) && req.id >= 0 ? req.id : 0;
  if (req.method === 'ping') {
    return encode({ id, result: 'pong' });
  }
  if (req.method === 'init') {
    if (typeof init !== 'function') {
      return errorFrame(id, 'worker has no initializer', 'BadRequest');
    }
    try {
      await init(req.params);
    } catch (e) {
      const d = describe(e);
      return errorFrame(id, d.message, d.type);
    }
    return encode({ id, result: null });
  }
  if (req.method !== 'call') {
    return errorFrame(id, 'unknown method ' + req.method, 'BadRequest');
  }
  let result;
  try {
    result = await fn(req.params);
  } catch (e) {
    const d = describe(e);
    return errorFrame(id, d.message, d.type);
  }
  try {
    return encode({ id, result: result === undefined ? null : result });
  } catch (e) {
    return errorFrame(id, 'encode result: ' + describe(e).message, 'BadOutput');
  }
}

function serve(fn, options) {
  const init = options && options.init;
  if (typeof fn !== 'function') {
    throw new TypeError('serve: fn must be a function');
  }
  const writeFrame = takeStdout();
  process.stdout.on('error', () => process.exit(1)); // the pool is gone
  writeFrame(encode({ runbox_worker: PROTOCOL_VERSION, pid: process.pid }));

  let chain = Promise.resolve();
  const enqueue = (line) => {
    chain = chain
      .then(() => answer(fn, line, init))
      .then(writeFrame)
      .catch((e) => {
        process.stderr.write('runbox_worker: ' + ((e && e.stack) || e) + '\n');
        process.exit(1);
      });
  };
  let buf = '';
  const stdin = process.stdin;
  stdin.setEncoding('utf8'); // decodes characters split across chunks
  stdin.on('data', (chunk) => {
    let from = buf.length; // a long frame arrives in pieces: scan only the new one
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf('\n', from)) >= 0) {
      enqueue(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
      from = 0;
    }
  });
  stdin.on('end', () => {
    if (buf.length > 0) {
      enqueue(buf);
      buf = '';
    }
    // Exit even if the tasks left timers or sockets behind, once the answers are out.
    chain.then(() => writeFrame('', () => process.exit(0)));
  });
}

module.exports = { serve };
