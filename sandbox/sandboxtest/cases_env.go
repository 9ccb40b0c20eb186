package sandboxtest

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/runboxhq/runbox/sandbox"
)

func (s *suite) envCases() []*hostileCase {
	return []*hostileCase{
		{
			id: "H1", name: "environment_allow_list",
			// Each program prints the environment it was started with; printenv is
			// a command's.
			code: rawProgs(`import sys
sys.stdout.write(open("/proc/self/environ").read().replace("\0", "\n"))
`, `process.stdout.write(require('fs').readFileSync('/proc/self/environ', 'latin1').split('\0').join('\n'));
`, `tr '\0' '\n' </proc/$$/environ
`),
			command: []string{"/usr/bin/printenv"},
			env:     map[string]string{"SBT_EXTRA": "extra value"},
			check: func(t *testing.T, o *outcome) {
				wantExit(t, o, sandbox.StatusOK, 0)
				p, err := sandbox.Prepare(o.spec)
				if err != nil {
					t.Fatalf("sandbox.Prepare: %v", err)
				}
				got := strings.Split(strings.TrimRight(o.Stdout, "\n"), "\n")
				slices.Sort(got)
				if !slices.Equal(got, p.Env) {
					t.Errorf("the box's environment is\n\t%s\nwant exactly the base environment, the language's and the spec's:\n\t%s",
						strings.Join(got, "\n\t"), strings.Join(p.Env, "\n\t"))
				}
			},
		},
		{
			id: "H2", name: "rlimits_and_cgroups",
			code: expand(progs(`import resource
print("== limits")
print(open("/proc/self/limits").read())
print("== attempts", flush=True)
for name in ["NOFILE", "FSIZE", "CORE", "NPROC"]:
    r = getattr(resource, "RLIMIT_" + name)
    soft, hard = resource.getrlimit(r)
    if hard != resource.RLIM_INFINITY:
        attempt("raise " + name, resource.setrlimit, r, (hard + 1, hard + 1))
for p in @@PATHS@@:
    attempt("open " + p, os.open, p, os.O_WRONLY)
`, `console.log('== limits');
console.log(fs.readFileSync('/proc/self/limits', 'utf8'));
console.log('== attempts');
for (const p of @@PATHS@@) attempt('open ' + p, () => fs.openSync(p, fs.constants.O_WRONLY));
`, `echo "== limits"
cat /proc/self/limits
echo "== attempts"
attempt "raise NOFILE" "ulimit -Hn $(( $(ulimit -Hn) + 1 ))"
attempt "raise FSIZE" 'ulimit -Hf unlimited'
attempt "raise CORE" 'ulimit -Hc unlimited'
for p in @@WORDS@@; do
  attempt "open $p" ': 1<>"$p"'
done
`), "PATHS", pyList(hostControlFiles), "WORDS", shWords(hostControlFiles)),
			limits: sandbox.Limits{OpenFiles: 100, FileSize: 4 * mib, Stack: 4 * mib},
			check: func(t *testing.T, o *outcome) {
				wantExit(t, o, sandbox.StatusOK, 0)
				sec := sections(o.Stdout)
				lim := procLimits(sec["limits"])
				wantLimit(t, lim, "Max open files", strconv.Itoa(o.Limits.OpenFiles), strconv.Itoa(o.Limits.OpenFiles))
				fsize := strconv.FormatInt(o.Limits.FileSize, 10)
				wantLimit(t, lim, "Max file size", fsize, fsize)
				wantLimit(t, lim, "Max core file size", "0", "0")
				wantLimit(t, lim, "Max stack size", strconv.FormatInt(o.Limits.Stack, 10), "")
				var whats []string
				for _, p := range hostControlFiles {
					whats = append(whats, "open "+p)
				}
				if o.variant != javascript {
					whats = append(whats, "raise NOFILE", "raise FSIZE", "raise CORE")
				}
				wantBlocked(t, &outcome{Result: &sandbox.Result{Stdout: sec["attempts"]}}, whats)
			},
		},
	}
}

// hostControlFiles are files whose writing would loosen the box's limits or reach the
// host's kernel: cgroup files of both hierarchies, sysctls, sysrq. The programs only
// open them for writing, and write nothing.
var hostControlFiles = []string{
	"/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/pids/pids.max",
	"/sys/fs/cgroup/cgroup.procs", "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/pids.max",
	"/proc/sys/vm/overcommit_memory", "/proc/sys/kernel/hostname", "/proc/sysrq-trigger",
}
