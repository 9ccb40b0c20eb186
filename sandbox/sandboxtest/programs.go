package sandboxtest

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The preludes give programs two helpers: escaped prints the marker of a program that
// got where it must not, and attempt tries something that must fail and prints
// "WHAT BLOCKED REASON" when it does (the errno's name, or Bash's message of it), or the
// marker when it does not. Cases whose programs report line numbers (J) go without.
// JavaScript also gets writeAll, a write to a descriptor that waits for the pipe
// instead of queueing in the program's memory, as process.stdout.write does once the
// pipe is full and the event loop never turns: a flood then ends in the box's memory
// limit before its output limit.
const (
	pyPrelude = `import errno, os, sys


def escaped(*what):
    print("ESC" + "APED", *what, flush=True)


def attempt(what, fn, *args):
    try:
        fn(*args)
    except OSError as e:
        reason = errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__
        print(what + " BLOCKED " + reason, flush=True)
    except Exception as e:
        print(what + " BLOCKED " + type(e).__name__, flush=True)
    else:
        escaped(what)


`
	jsPrelude = `'use strict';
const fs = require('fs');
const escaped = (...what) => console.log(['ESC' + 'APED', ...what].join(' '));
function attempt(what, fn) {
  try {
    fn();
  } catch (e) {
    console.log(what + ' BLOCKED ' + (e.code || e.name));
    return;
  }
  escaped(what);
}
function writeAll(fd, data) {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
  for (let off = 0; off < buf.length;) {
    try {
      off += fs.writeSync(fd, buf, off);
    } catch (e) {
      if (e.code !== 'EAGAIN') throw e;
    }
  }
}

`
	shPrelude = `escaped() { echo "ESC""APED $*"; }
# attempt WHAT CODE evaluates CODE and reports WHAT BLOCKED with the reason it failed.
attempt() {
  local err rc
  err=$(eval "$2" 2>&1 >/dev/null)
  rc=$?
  if [ "$rc" -eq 0 ]; then escaped "$1"; return; fi
  err=${err%%$'\n'*}
  [ -n "$err" ] || err="exit status $rc"
  echo "$1 BLOCKED ${err##*: }"
}

`
)

// pyCtypes lets a Python program make raw system calls: sys_call raises OSError.
const pyCtypes = `import ctypes

libc = ctypes.CDLL(None, use_errno=True)


def sys_call(nr, *args):
    args = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    r = libc.syscall(ctypes.c_long(nr), *args)
    if r == -1:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r


`

// progs builds a case's code map, each language's prelude first. Empty programs are
// left out.
func progs(py, js, sh string) map[string]string {
	m := make(map[string]string)
	if py != "" {
		m[python] = pyPrelude + py
	}
	if js != "" {
		m[javascript] = jsPrelude + js
	}
	if sh != "" {
		m[bash] = shPrelude + sh
	}
	return m
}

// rawProgs is progs without the preludes, for programs whose line numbers matter.
func rawProgs(py, js, sh string) map[string]string {
	m := make(map[string]string)
	for l, c := range map[string]string{python: py, javascript: js, bash: sh} {
		if c != "" {
			m[l] = c
		}
	}
	return m
}

// expand returns the programs of m with their @@NAME@@ placeholders replaced: kv holds
// names and values.
func expand(m map[string]string, kv ...string) map[string]string {
	var pairs []string
	for i := 0; i+1 < len(kv); i += 2 {
		pairs = append(pairs, "@@"+kv[i]+"@@", kv[i+1])
	}
	r := strings.NewReplacer(pairs...)
	out := make(map[string]string, len(m))
	for l, c := range m {
		out[l] = r.Replace(c)
	}
	return out
}

// errnoByMessage maps strerror's messages, lower-cased, to the errno names.
var errnoByMessage = func() map[string]string {
	m := make(map[string]string)
	for i := 1; i < 134; i++ {
		if name := unix.ErrnoName(syscall.Errno(i)); name != "" {
			m[strings.ToLower(syscall.Errno(i).Error())] = name
		}
	}
	return m
}()

var errnoName = regexp.MustCompile(`^E[A-Z0-9]+$`)

// reasonName turns the reason a program gave into an errno name where it can: Python
// and Node give names, Bash and the tools it runs give strerror's messages.
func reasonName(s string) string {
	s = strings.TrimSpace(s)
	if errnoName.MatchString(s) {
		return s
	}
	if name, ok := errnoByMessage[strings.ToLower(s)]; ok {
		return name
	}
	return s
}

// attempts returns what a program tried and failed at, with the reasons, from its
// "WHAT BLOCKED REASON" lines.
func attempts(out string) map[string]string {
	m := make(map[string]string)
	for _, l := range strings.Split(out, "\n") {
		if what, reason, ok := strings.Cut(l, blocked); ok {
			m[what] = reasonName(reason)
		}
	}
	return m
}

// wantBlocked fails unless the program reported each of whats as BLOCKED, with one of
// reasons when any is given.
func wantBlocked(t *testing.T, o *outcome, whats []string, reasons ...string) {
	t.Helper()
	got := attempts(o.Stdout)
	for _, w := range whats {
		r, ok := got[w]
		switch {
		case !ok:
			t.Errorf("%q: the program did not report it blocked (stdout:\n%s)", w, clip(o.Stdout))
		case len(reasons) > 0 && !slices.Contains(reasons, r):
			t.Errorf("%q blocked with %s, want one of %v", w, r, reasons)
		}
	}
}

// field returns the value of "key=value" in out: up to the next " word=" on its line,
// or to the end of the line, so a last value may hold spaces.
func field(out, key string) (string, bool) {
	re := regexp.MustCompile(`(?m)(?:^|\s)` + regexp.QuoteMeta(key) + `=(.*?)(?:\s+[a-z_]+=|$)`)
	m := re.FindStringSubmatch(out)
	if m == nil {
		return "", false
	}
	return strings.TrimSpace(m[1]), true
}

// intField is field for a number; it fails the test when there is none.
func intField(t *testing.T, out, key string) int64 {
	t.Helper()
	v, ok := field(out, key)
	if !ok {
		t.Fatalf("the program printed no %s= (stdout:\n%s)", key, clip(out))
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q is not a number", key, v)
	}
	return n
}

// sections splits output into the parts under "== NAME" header lines.
func sections(out string) map[string]string {
	m := make(map[string]string)
	name := ""
	for _, l := range strings.SplitAfter(out, "\n") {
		if h, ok := strings.CutPrefix(strings.TrimRight(l, "\n"), "== "); ok {
			name = h
			continue
		}
		m[name] += l
	}
	return m
}

// procLimits parses /proc/PID/limits: the soft and hard value of each limit by name
// ("Max open files").
func procLimits(text string) map[string][2]string {
	m := make(map[string][2]string)
	for _, l := range strings.Split(text, "\n") {
		if !strings.HasPrefix(l, "Max ") || len(l) < 26 {
			continue
		}
		name := strings.TrimSpace(l[:26])
		f := strings.Fields(l[26:])
		if len(f) >= 2 {
			m[name] = [2]string{f[0], f[1]}
		}
	}
	return m
}

// wantLimit fails unless limits has name with the soft value soft and, when hard is
// not empty, the hard value hard.
func wantLimit(t *testing.T, limits map[string][2]string, name, soft, hard string) {
	t.Helper()
	v, ok := limits[name]
	switch {
	case !ok:
		t.Errorf("/proc/self/limits of the box has no %q", name)
	case v[0] != soft || hard != "" && v[1] != hard:
		t.Errorf("%s: soft %s hard %s, want soft %s hard %s", name, v[0], v[1], soft, or(hard, "any"))
	}
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
