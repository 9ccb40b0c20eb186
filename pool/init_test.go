package pool_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runboxhq/runbox/internal/testenv"
	"github.com/runboxhq/runbox/pool"
	"github.com/runboxhq/runbox/proc"
)

type setup struct {
	Prefix string `json:"prefix"`
}

func init() {
	testenv.Register("pool-init-worker", func(args []string) int {
		var prefix string
		pool.ServeWorkerInit(func(_ context.Context, s setup) error {
			if s.Prefix == "" {
				return errors.New("empty prefix")
			}
			prefix = s.Prefix
			return nil
		}, func(_ context.Context, in string) (string, error) {
			return prefix + in, nil
		})
		return 0
	})
}

func TestInitializer(t *testing.T) {
	argv, env := testenv.Command(t, "pool-init-worker")
	cmd := &proc.Cmd{Args: argv, Env: env}
	p := startPool(t, pool.Config{Cmd: cmd, Workers: 2, Init: setup{Prefix: "ready:"}, MaxTasksPerWorker: 2})
	out, err := pool.Map[string, string](context.Background(), p, []string{"a", "b", "c", "d", "e"})
	if err != nil || strings.Join(out, ",") != "ready:a,ready:b,ready:c,ready:d,ready:e" {
		t.Errorf("Map through initialised (and recycled) workers: %v %v", out, err)
	}
	if _, err := pool.New(context.Background(), pool.Config{Cmd: cmd, Workers: 1, Init: setup{}}); err == nil || !strings.Contains(err.Error(), "empty prefix") {
		t.Errorf("a failing initializer: %v", err)
	}
	argv, env = testenv.Command(t, "pool-worker")
	if _, err := pool.New(context.Background(), pool.Config{Cmd: &proc.Cmd{Args: argv, Env: env}, Workers: 1, Init: setup{Prefix: "x"}}); err == nil || !strings.Contains(err.Error(), "no initializer") {
		t.Errorf("Init given to a worker without an initializer: %v", err)
	}
}

func TestInitializerInterpreters(t *testing.T) {
	for _, lang := range []struct{ name, interp, module, script string }{
		{"python", "/usr/bin/python3", "python/runbox_worker.py", `import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runbox_worker import serve
state = {}
def init(p): state["prefix"] = p["prefix"]
serve(lambda x: state["prefix"] + x, init=init)
`},
		{"node", "/usr/bin/node", "js/runbox_worker.js", `const { serve } = require('./runbox_worker.js');
let prefix;
serve((x) => prefix + x, { init: (p) => { prefix = p.prefix; } });
`},
	} {
		t.Run(lang.name, func(t *testing.T) {
			if _, err := os.Stat(lang.interp); err != nil {
				t.Skipf("%s not installed: %v", lang.interp, err)
			}
			dir := t.TempDir()
			mod, err := os.ReadFile(lang.module)
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, filepath.Base(lang.module)), mod, 0o644)
			script := filepath.Join(dir, "worker")
			os.WriteFile(script, []byte(lang.script), 0o644)
			args := []string{lang.interp, script}
			if lang.name == "python" {
				args = []string{lang.interp, "-I", script}
			}
			p := startPool(t, pool.Config{Cmd: &proc.Cmd{Args: args, Env: []string{"PATH=/usr/bin:/bin"}}, Workers: 1, Init: setup{Prefix: "ok:"}})
			if got, err := pool.Call[string](context.Background(), p, "x"); err != nil || got != "ok:x" {
				t.Errorf("got %q %v", got, err)
			}
		})
	}
}
