'use strict';
// The bootstrap of a JavaScript ready run (sandbox/native/ready.go): every native box
// has it at /etc/runbox/node-ready.js. The zygote's program, once confined, execs
//
//   /usr/bin/node -r /etc/runbox/node-ready.js /etc/runbox/node-ready.js
//
// in /, with the run's config pipe on fd 100 and a report pipe to the run's pid 1 on
// fd 101 (zygote.py's exec_early). Node preloads this file before its main module: it
// says "r" on the report pipe, blocks until the run's config (boxinit.Config.Write's
// bytes) is on the config pipe, writes the input files under /work as the run's own
// uid, changes to /work, closes both pipes, sets process.argv as `node FILE ARGS`
// would, and returns. Node then runs its main module its own way, with FILE in place
// of the placeholder: every frame of a stack trace, the CommonJS/ES module choice, the
// handling of uncaught errors and of the exit are node's, as in a cold run.
//
// Nothing of it stays: its module leaves the require cache, -r leaves
// process.execArgv, Module.runMain and Module._findPath are node's own again before
// FILE is resolved, and node's own descriptors have the numbers they have in a cold
// run. Worker threads inherit -r and load this file too: it does nothing there (their
// process.argv has no placeholder) but remove itself. What does show: the command
// line in /proc/self/cmdline, and that node started earlier (process.uptime()).
{
  const fs = require('fs');
  const path = require('path');
  const Module = module.constructor;
  delete Module._cache[__filename];
  for (const key of Object.keys(Module._pathCache)) {
    if (Module._pathCache[key] === __filename) delete Module._pathCache[key];
  }
  const at = process.execArgv.indexOf(__filename);
  if (at > 0) process.execArgv.splice(at - 1, 2);

  // The config and report pipes, where the zygote's exec_early puts them.
  const CONFIG = 100, REPORT = 101;

  // fail reports why the run could not be set up (the run's verdict is then
  // sandbox_error, as for a cold box whose init failed) and exits as an exec failure.
  const fail = (stage, err) => {
    try {
      fs.writeSync(REPORT, JSON.stringify({ stage, error: String(err && err.message || err) }));
    } finally {
      process.reallyExit(127);
    }
  };

  const readAll = (fd) => {
    const chunks = [];
    for (;;) {
      const b = Buffer.allocUnsafeSlow(1 << 20);
      const n = fs.readSync(fd, b, 0, b.length, null);
      if (n === 0) return Buffer.concat(chunks);
      chunks.push(b.subarray(0, n));
    }
  };

  // parse returns the config line and the input files' contents.
  const parse = (data) => {
    const nl = data.indexOf(10);
    if (nl < 0) throw new Error('no config line');
    const cfg = JSON.parse(data.toString('utf8', 0, nl));
    let off = nl + 1;
    const contents = [];
    for (const f of cfg.files || []) {
      if (off + f.size > data.length) throw new Error(`read input file ${f.name}: short`);
      contents.push(data.subarray(off, off + f.size));
      off += f.size;
    }
    if (cfg.stdin_size || off !== data.length) throw new Error('a ready run takes no stdin');
    return [cfg, contents];
  };

  // writeFiles writes the input files under the work directory (the run's own tmpfs,
  // as the run's uid), as the zygote's write_files does.
  const writeFiles = (work, cfg, contents) => {
    const c = fs.constants;
    (cfg.files || []).forEach((f, i) => {
      const dst = path.normalize(path.join(work, f.name));
      if (!dst.startsWith(work + '/')) throw new Error(`input file ${JSON.stringify(f.name)} leaves the work directory`);
      let d = work;
      for (const part of path.dirname(f.name).split('/')) {
        if (part === '' || part === '.') continue;
        d = path.join(d, part);
        try {
          fs.mkdirSync(d, 0o755);
        } catch (e) {
          if (e.code !== 'EEXIST') throw e;
        }
        if (!fs.lstatSync(d).isDirectory()) throw new Error(`mkdir ${d}: not a directory`);
      }
      const fd = fs.openSync(dst, c.O_WRONLY | c.O_CREAT | c.O_EXCL | c.O_NOFOLLOW, f.executable ? 0o755 : 0o644);
      try {
        const b = contents[i];
        for (let w = 0; w < b.length;) w += fs.writeSync(fd, b, w, b.length - w);
      } finally {
        fs.closeSync(fd);
      }
    });
  };

  // rehearse goes the way taking the run will, on a file of its own that it
  // removes: the functions it runs are compiled now, not on the run's clock. It also
  // loads node's net module, which a first console.log loads to make process.stdout
  // on a pipe (most of that print's cost). Nothing more of the print: making
  // process.stdout would make fd 1 non-blocking before the run's code writes to it,
  // and a console's first print makes process.stderr, and its callbacks run after
  // the main module (an extra frame in the stack of an error thrown after an await).
  const rehearse = (work) => {
    const code = Buffer.from('console.log(1)\n');
    const name = '.runbox-rehearsal.js';
    const line = JSON.stringify({ argv: [process.execPath, name], files: [{ name, size: code.length }] });
    const [cfg, contents] = parse(Buffer.concat([Buffer.from(line + '\n'), code]));
    writeFiles(work, cfg, contents);
    fs.unlinkSync(path.join(work, name));
    path.resolve(cfg.argv[1]);
    require('net');
  };

  if (process.argv.length === 2 && process.argv[1] === __filename) {
    // Node started in /, not in the work directory: what it looked up as it started
    // (such as the package.json of -r's parent, which it keeps) is not of the run's
    // files, which do not exist yet.
    const work = '/work';
    let cfg, contents;
    try {
      process.chdir(work);
      rehearse(work);
      fs.writeSync(REPORT, 'r');
      const data = readAll(CONFIG);
      fs.closeSync(CONFIG);
      if (data.length === 0) process.reallyExit(0); // given up unused
      [cfg, contents] = parse(data);
    } catch (e) {
      fail('config', e);
    }
    try {
      writeFiles(work, cfg, contents);
    } catch (e) {
      fail('files', e);
    }
    fs.closeSync(REPORT); // the program starts: pid 1 sees the pipe close

    // process.argv as node makes it for `node FILE ARGS`: FILE resolved.
    const main = path.resolve(cfg.argv[1]);
    process.argv.length = 1;
    process.argv.push(main, ...cfg.argv.slice(2));
    // Node calls Module.runMain(placeholder) once this returns. The bound function
    // calls node's own with FILE (a bound function is no frame of a stack trace), and
    // the first thing node's does is resolve it with Module._findPath: both are
    // node's own again from then on, before anything of FILE runs.
    const runMain = Module.runMain, findPath = Module._findPath;
    Module.runMain = runMain.bind(Module, main);
    Module._findPath = function (...args) {
      Module.runMain = runMain;
      Module._findPath = findPath;
      return Reflect.apply(findPath, this, args);
    };
  }
}
