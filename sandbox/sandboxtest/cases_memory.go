package sandboxtest

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runboxhq/runbox/sandbox"
)

const mib = 1 << 20

func (s *suite) memoryCases() []*hostileCase {
	return []*hostileCase{
		{
			id: "B1", name: "touch_4x_the_limit",
			// Bash doubles a string until it is 256 MiB; bytes filled with a value are
			// touched, unlike zeroed ones a kernel may leave unmapped.
			code: progs(`b = b"\x01" * (256 << 20)
escaped("allocated", len(b))
`, `const b = Buffer.alloc(512 << 20, 1);
escaped('allocated ' + b.length);
`, `s=x
for i in {1..28}; do s+=$s; done
escaped "allocated ${#s}"
`),
			limits:     sandbox.Limits{Memory: 64 * mib},
			langLimits: map[string]sandbox.Limits{javascript: {Memory: 128 * mib}},
			check: func(t *testing.T, o *outcome) {
				wantOOM(t, o)
				if o.Signal != "SIGKILL" {
					t.Errorf("signal %q, want SIGKILL from the OOM killer", o.Signal)
				}
			},
		},
		{
			id: "B2", name: "grow_slowly",
			code: progs(`chunks = []
while True:
    chunks.append(b"\x01" * (1 << 20))
`, `const chunks = [];
for (;;) chunks.push(Buffer.alloc(1 << 20, 1));
`, `a=()
while :; do printf -v chunk '%*s' 1048576 ''; a+=("$chunk"); done
`),
			limits:     sandbox.Limits{Memory: 64 * mib},
			langLimits: map[string]sandbox.Limits{javascript: {Memory: 128 * mib}},
			check:      wantOOMOrMemoryError,
		},
		{
			id: "B2", name: "memory_error",
			// 8 TiB at once: malloc fails (MemoryError) unless the host overcommits
			// without limit, and then filling it is an OOM kill.
			code:   progs("x = [0] * (1 << 40)\nescaped(\"allocated 8 TiB\")\n", "", ""),
			limits: sandbox.Limits{Memory: 64 * mib},
			check:  wantOOMOrMemoryError,
		},
		{
			id: "B3", name: "split_across_children",
			// Four children of 64 MiB each under 192 MiB for the run: each fits, all
			// do not.
			code: progs(`import time
pids = []
for i in range(4):
    pid = os.fork()
    if pid == 0:
        b = b"\x01" * (64 << 20)
        time.sleep(2)
        os._exit(0)
    pids.append(pid)
ok = 0
for pid in pids:
    _, status = os.waitpid(pid, 0)
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        ok += 1
print("children_ok=%d" % ok, flush=True)
if ok == len(pids):
    escaped("all children kept their memory")
`, `const { spawn } = require('child_process');
const child = 'const b = Buffer.alloc(64 << 20, 1); setTimeout(() => {}, 2000);';
let ok = 0, left = 4;
for (let i = 0; i < 4; i++) {
  spawn(process.execPath, ['-e', child], { stdio: 'inherit' }).on('exit', (code) => {
    if (code === 0) ok++;
    if (--left === 0) {
      console.log('children_ok=' + ok);
      if (ok === 4) escaped('all children kept their memory');
    }
  });
}
`, `pids=()
for i in 1 2 3 4; do
  ( printf -v s '%*s' 67108864 ''; sleep 2 ) &
  pids+=($!)
done
ok=0
for p in "${pids[@]}"; do wait "$p" && ok=$((ok+1)); done
echo "children_ok=$ok"
[ "$ok" = 4 ] && escaped "all children kept their memory"
`),
			limits: sandbox.Limits{Memory: 192 * mib, Processes: 256},
			check: func(t *testing.T, o *outcome) {
				wantOOM(t, o)
			},
		},
		{
			id: "B4", name: "dev_shm_bounded",
			// Writes up to 64 MiB to /dev/shm, sized 16 MiB.
			code: progs(`written, err = 0, "none"
with open("/dev/shm/fill", "wb", buffering=0) as f:
    chunk = b"\x01" * (1 << 20)
    try:
        while written < (64 << 20):
            written += f.write(chunk)
    except OSError as e:
        err = errno.errorcode.get(e.errno, str(e.errno))
print("written=%d error=%s" % (written, err))
`, `const fd = fs.openSync('/dev/shm/fill', 'w');
const chunk = Buffer.alloc(1 << 20, 1);
let written = 0, err = 'none';
try {
  while (written < 64 << 20) written += fs.writeSync(fd, chunk);
} catch (e) {
  err = e.code;
}
console.log('written=' + written + ' error=' + err);
`, `err=$(head -c 67108864 /dev/zero 2>&1 >/dev/shm/fill)
echo "written=$(stat -c %s /dev/shm/fill) error=${err##*: }"
`),
			limits: sandbox.Limits{TmpSize: 16 * mib, Memory: 128 * mib},
			check: func(t *testing.T, o *outcome) {
				wantExit(t, o, sandbox.StatusOK, 0)
				wantFull(t, o.Stdout, "/dev/shm", o.Limits.TmpSize, "ENOSPC")
			},
		},
		{
			id: "B4", name: "sparse_mmap",
			// A 1 TiB mapping without reserve, touched one page in 16: 256 MiB of it
			// under a 64 MiB limit.
			code: progs(`import mmap
MAP_NORESERVE = 0x4000
try:
    m = mmap.mmap(-1, 1 << 40, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_NORESERVE)
except OSError as e:
    print("mmap BLOCKED " + errno.errorcode.get(e.errno, str(e.errno)), flush=True)
    sys.exit(0)
print("mapped 1 TiB", flush=True)
for off in range(0, 1 << 32, 1 << 16):
    m[off] = 1
escaped("touched 256 MiB of a mapping under a 64 MiB limit")
`, "", ""),
			limits: sandbox.Limits{Memory: 64 * mib},
			check: func(t *testing.T, o *outcome) {
				if o.Status == sandbox.StatusOK && strings.Contains(o.Stdout, "mmap BLOCKED") {
					return // refusing the mapping bounds it too
				}
				wantOOM(t, o)
			},
		},
		{
			id: "B5", name: "concurrent_runs", variants: langs,
			multi: s.concurrentRuns,
		},
		{
			id: "B6", name: "node_starts_under_a_sane_limit",
			// No RLIMIT_AS: WebAssembly reserves gigabytes of address space.
			code: progs(`print(open("/proc/self/limits").read())
print("started")
`, `process.stdout.write(fs.readFileSync('/proc/self/limits', 'utf8'));
new WebAssembly.Memory({ initial: 1, maximum: 65536 });
const b = Buffer.alloc(32 << 20, 1);
console.log('started ' + process.version + ' ' + b.length);
`, `cat /proc/self/limits
echo started
`),
			limits: sandbox.Limits{Memory: 128 * mib},
			check: func(t *testing.T, o *outcome) {
				wantExit(t, o, sandbox.StatusOK, 0)
				if !strings.Contains(o.Stdout, "started") {
					t.Errorf("the program did not start: stdout %q", clip(o.Stdout))
				}
				wantLimit(t, procLimits(o.Stdout), "Max address space", "unlimited", "unlimited")
			},
		},
	}
}

// b5Code allocates 48 MiB (Node 64), holds it a second, and says so.
var b5Code = rawProgs(`import time
b = b"\x01" * (48 << 20)
time.sleep(1)
print("allocated", len(b) >> 20)
`, `const b = Buffer.alloc(64 << 20, 1);
setTimeout(() => console.log('allocated ' + (b.length >> 20)), 1000);
`, `printf -v s '%*s' 50331648 ''
sleep 1
echo "allocated $(( ${#s} >> 20 ))"
`)

// concurrentRuns (B5) runs three boxes at once, each using most of its memory limit:
// all succeed only if each run has a cgroup of its own.
func (s *suite) concurrentRuns(t *testing.T, v string) {
	spec := sandbox.Spec{Language: v, Limits: sandbox.Limits{Memory: 96 * mib, WallTime: defaultWall}}
	want := "allocated 48\n"
	spec.Code = b5Code[v]
	switch v {
	case javascript:
		spec.Limits.Memory = 160 * mib
		want = "allocated 64\n"
	case bash:
		spec.Limits.Memory = 160 * mib // printf builds its 48 MiB twice over
	}
	const n = 3
	outs := make([]*outcome, n)
	var starts, ends [n]time.Time
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			starts[i] = time.Now()
			outs[i] = s.exec(t.Context(), spec)
			ends[i] = time.Now()
		})
	}
	wg.Wait()
	for i, o := range outs {
		if !s.checkCommon(t, o) {
			continue
		}
		if o.Status != sandbox.StatusOK || o.Stdout != want {
			t.Errorf("run %d of %d at once: status %s stdout %q, want ok and %q\n%s", i+1, n, o.Status, o.Stdout, want, describe(o))
		}
	}
	for i := 1; i < n; i++ {
		if starts[i].After(ends[0]) || starts[0].After(ends[i]) {
			t.Logf("runs 1 and %d did not overlap: the backend may serialize runs, and this case proves less", i+1)
		}
	}
}

// wantOOM checks a run the kernel killed for memory.
func wantOOM(t *testing.T, o *outcome) {
	t.Helper()
	if o.Status != sandbox.StatusOOM || o.Limit != "memory" {
		t.Fatalf("status %s limit %q, want oom \"memory\"\n%s", o.Status, o.Limit, describe(o))
	}
}

// wantOOMOrMemoryError checks a program that ran out of memory: the kernel killed it,
// or the runtime raised its memory error and the diagnostic says what the limit is.
func wantOOMOrMemoryError(t *testing.T, o *outcome) {
	t.Helper()
	if o.Status == sandbox.StatusOOM {
		wantOOM(t, o)
		return
	}
	d := o.Diagnostic
	if o.Status != sandbox.StatusRuntimeError || d == nil || d.Type != "MemoryError" || d.Hint == "" {
		t.Fatalf("status %s diagnostic %+v, want oom, or runtime_error with a MemoryError and a hint\n%s", o.Status, d, describe(o))
	}
}

// wantFull checks the "written=N error=E" report of a program that filled dir, a file
// system of size bytes.
func wantFull(t *testing.T, out, dir string, size int64, errno string) {
	t.Helper()
	n := intField(t, out, "written")
	e, _ := field(out, "error")
	if n <= 0 || n > size {
		t.Errorf("%s: %d bytes written, want more than 0 and at most its size %d", dir, n, size)
	}
	if reasonName(e) != errno {
		t.Errorf("%s: writing stopped with %q, want %s", dir, e, errno)
	}
}
