package sandboxtest

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/runboxhq/runbox/sandbox"
)

// pyZombies counts the zombies that are not the program's own children, and so are
// the box's init's to reap.
const pyZombies = `def zombies_not_ours():
    n = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z" and fields[1] != str(os.getpid()):
            n += 1
    return n


`

func (s *suite) processCases() []*hostileCase {
	return []*hostileCase{
		{
			id: "C1", name: "fork_bomb",
			// The program sets the bomb off in the background, then counts what it
			// sees after a while without forking itself. Node cannot fork; it spawns
			// until spawning fails.
			code: progs(`import time
print("bomb", flush=True)
if os.fork() == 0:
    while True:
        try:
            os.fork()
        except OSError:
            pass
time.sleep(1.5)
print("contained=%d" % sum(1 for d in os.listdir("/proc") if d.isdigit()), flush=True)
`, `const { spawn } = require('child_process');
console.log('bomb');
let n = 0;
for (;;) {
  let c;
  try {
    c = spawn('/bin/sleep', ['30'], { stdio: 'ignore' });
  } catch (e) {
    break;
  }
  c.on('error', () => {});
  if (c.pid === undefined) break;
  c.unref();
  n++;
}
setTimeout(() => {
  console.log('spawned=' + n);
  console.log('contained=' + fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).length);
}, 1500);
`, `mkfifo /tmp/block
exec 9<>/tmp/block
echo bomb
:(){ :|:& };:
read -t 1.5 -u 9
n=0
for d in /proc/[0-9]*; do n=$((n+1)); done
echo "contained=$n"
`),
			// The wall time leaves room for a loaded machine (the bomb's end has taken
			// over 3 s in Docker there); a contained bomb ends in ~2 s.
			limits: sandbox.Limits{Processes: 32, WallTime: 10 * time.Second, CPUTime: 30 * time.Second, Memory: 512 * mib},
			check: func(t *testing.T, o *outcome) {
				wantExit(t, o, sandbox.StatusOK, 0)
				// The box's init is in /proc too, outside the program's count.
				if n := intField(t, o.Stdout, "contained"); n > int64(o.Limits.Processes)+1 {
					t.Errorf("%d processes in the box, over the limit of %d and the init", n, o.Limits.Processes)
				}
				// The host can still fork.
				if err := exec.Command("/bin/true").Run(); err != nil {
					t.Errorf("host: /bin/true after the bomb: %v", err)
				}
			},
		},
		{
			id: "C2", name: "exact_process_limit",
			// Children that sleep until the limit is reached; the next fork fails.
			// Bash is left out: it retries a failed fork for seconds and cannot tell
			// EAGAIN.
			code: progs(`import signal, time
children, err = [], "none"
while len(children) < 64:
    try:
        pid = os.fork()
    except OSError as e:
        err = errno.errorcode.get(e.errno, str(e.errno))
        break
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    children.append(pid)
print("children=%d tasks=%d error=%s" % (len(children), len(os.listdir("/proc/self/task")), err), flush=True)
for pid in children:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
`, `const { spawn } = require('child_process');
const children = [];
for (;;) {
  const c = spawn('/bin/sleep', ['30'], { stdio: 'ignore' });
  if (c.pid === undefined) {
    const tasks = fs.readdirSync('/proc/self/task').length;
    c.on('error', (e) => {
      console.log('children=' + children.length + ' tasks=' + tasks + ' error=' + e.code);
      for (const k of children) k.kill('SIGKILL');
    });
    break;
  }
  children.push(c);
  if (children.length >= 64) {
    escaped('no process limit after 64 children');
    for (const k of children) k.kill('SIGKILL');
    break;
  }
}
`, ""),
			limits: sandbox.Limits{Processes: 16},
			check: func(t *testing.T, o *outcome) {
				wantExit(t, o, sandbox.StatusOK, 0)
				children, tasks := intField(t, o.Stdout, "children"), intField(t, o.Stdout, "tasks")
				if children+tasks != int64(o.Limits.Processes) {
					t.Errorf("%d children and %d threads of the program's own when a fork failed, want %d in all",
						children, tasks, o.Limits.Processes)
				}
				if e, _ := field(o.Stdout, "error"); e != "EAGAIN" {
					t.Errorf("the fork over the limit failed with %s, want EAGAIN", e)
				}
			},
		},
		{
			id: "C3", name: "thread_bomb",
			// Bash has no threads.
			code: progs(`import threading, time
threads, err = 0, "none"
try:
    while threads < 1000:
        threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
        threads += 1
except RuntimeError as e:
    err = str(e)
print("threads=%d tasks=%d error=%s" % (threads, len(os.listdir("/proc/self/task")), err), flush=True)
os._exit(0)
`, `const { Worker } = require('worker_threads');
let online = 0, failed = 'none';
for (let i = 0; i < 64; i++) {
  let w;
  try {
    w = new Worker('setInterval(() => {}, 1000)', { eval: true });
  } catch (e) {
    failed = e.code || e.name;
    break;
  }
  w.on('online', () => online++);
  w.on('error', (e) => { failed = e.code || e.name; });
}
setTimeout(() => {
  console.log('workers=' + online + ' tasks=' + fs.readdirSync('/proc/self/task').length + ' error=' + failed);
  process.exit(0);
}, 1500);
`, ""),
			limits: sandbox.Limits{Processes: 16},
			check: func(t *testing.T, o *outcome) {
				if o.variant == javascript && o.Status == sandbox.StatusSignaled && o.Signal == "SIGABRT" {
					// Node may abort when it cannot start a thread it needs: contained.
					t.Logf("node aborted at the thread limit: %s", clip(o.Stderr))
					return
				}
				wantExit(t, o, sandbox.StatusOK, 0)
				if tasks := intField(t, o.Stdout, "tasks"); tasks > int64(o.Limits.Processes) {
					t.Errorf("%d threads, over the limit of %d", tasks, o.Limits.Processes)
				}
				if o.variant == python {
					if n := intField(t, o.Stdout, "threads"); n != int64(o.Limits.Processes)-1 {
						t.Errorf("%d threads started beside the main one, want exactly %d", n, o.Limits.Processes-1)
					}
					if e, _ := field(o.Stdout, "error"); !strings.Contains(e, "can't start new thread") {
						t.Errorf("the thread over the limit failed with %q, want \"can't start new thread\"", e)
					}
				}
			},
		},
		{
			id: "C4", name: "zombies_reaped",
			// Children the program never waits for stay its zombies while it lives;
			// orphans that exit are the init's to reap, at once.
			code: progs(pyZombies+`import time
for i in range(10):
    if os.fork() == 0:
        os._exit(0)
for i in range(10):
    if os.fork() == 0:
        if os.fork() == 0:
            time.sleep(0.1)
            os._exit(0)
        os._exit(0)
time.sleep(1)
print("ppid=%d" % os.getppid())
print("zombies_not_ours=%d" % zombies_not_ours())
`, `const { spawnSync } = require('child_process');
for (let i = 0; i < 10; i++) spawnSync('/bin/sh', ['-c', '(sleep 0.1; exit 0) & exit 0'], { stdio: 'ignore' });
setTimeout(() => {
  let z = 0;
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let stat;
    try {
      stat = fs.readFileSync('/proc/' + d + '/stat', 'utf8');
    } catch (e) {
      continue;
    }
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (f[0] === 'Z' && f[1] !== String(process.pid)) z++;
  }
  console.log('ppid=' + process.ppid);
  console.log('zombies_not_ours=' + z);
}, 1000);
`, `for i in 1 2 3 4 5 6 7 8 9 10; do (sleep 0.1 &); done
sleep 1
z=0
for f in /proc/[0-9]*/stat; do
  read -r stat < "$f" 2>/dev/null || continue
  set -- ${stat##*) }
  [ "$1" = Z ] && [ "$2" != $$ ] && z=$((z+1))
done
echo "ppid=$PPID"
echo "zombies_not_ours=$z"
`),
			check: func(t *testing.T, o *outcome) {
				wantExit(t, o, sandbox.StatusOK, 0)
				if p := intField(t, o.Stdout, "ppid"); p != 1 {
					t.Errorf("the program's parent is pid %d, want the box's init, pid 1", p)
				}
				if z := intField(t, o.Stdout, "zombies_not_ours"); z != 0 {
					t.Errorf("%d orphans left unreaped in the box a second after they exited", z)
				}
			},
		},
	}
}
