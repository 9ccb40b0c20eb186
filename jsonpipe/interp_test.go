package jsonpipe_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runboxhq/runbox/jsonpipe"
	"github.com/runboxhq/runbox/proc"
)

// The child sides in python/ and js/, run by the real interpreters. Each script
// behaves according to req["mode"].

const pythonChild = `import sys, time
sys.path.insert(0, %q)
from jsonpipe import serve

def handle(req):
    mode = req["mode"]
    if mode == "raise":
        raise ValueError("no such article: " + req["text"])
    if mode == "garbage":
        print("this is not JSON")
    if mode == "sleep":
        time.sleep(60)
    return {"lang": "python", "echo": req["text"], "words": len(req["text"].split())}

serve(handle)
`

const nodeChild = `const { serve } = require(%q);

serve(async (req) => {
  switch (req.mode) {
    case 'raise':
      throw new TypeError('no such article: ' + req.text);
    case 'garbage':
      console.log('this is not JSON');
      break;
    case 'sleep':
      await new Promise((resolve) => setTimeout(resolve, 60000));
  }
  return { lang: 'node', echo: req.text, words: req.text.split(/\s+/).filter(Boolean).length };
});
`

type interpRequest struct {
	Mode string `json:"mode"`
	Text string `json:"text"`
}

type interpReply struct {
	Lang  string `json:"lang"`
	Echo  string `json:"echo"`
	Words int    `json:"words"`
}

type interpreter struct {
	lang      string
	ext       string // of the script file
	path      string
	flags     []string
	raiseType string // the type a raise reports
	shapeType string // the type a request of the wrong shape reports
}

var interpreters = []interpreter{
	{lang: "python", ext: "py", path: "/usr/bin/python3", flags: []string{"-I"}, raiseType: "ValueError", shapeType: "TypeError"},
	{lang: "node", ext: "js", path: "/usr/bin/node", raiseType: "TypeError", shapeType: "TypeError"},
}

// script writes the child for ip to a temporary directory and returns its path.
func (ip interpreter) script(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(ip.path); err != nil {
		t.Skipf("%s not installed: %v", ip.path, err)
	}
	var src string
	switch ip.lang {
	case "python":
		dir, err := filepath.Abs("python")
		if err != nil {
			t.Fatal(err)
		}
		src = fmt.Sprintf(pythonChild, dir)
	case "node":
		mod, err := filepath.Abs("js/jsonpipe.js")
		if err != nil {
			t.Fatal(err)
		}
		src = fmt.Sprintf(nodeChild, mod)
	}
	path := filepath.Join(t.TempDir(), "child."+ip.ext)
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// command runs script with a scrubbed environment.
func (ip interpreter) command(script string) *proc.Cmd {
	c := proc.Command(ip.path, append(ip.flags, script)...)
	c.Env = []string{"PATH=/usr/bin:/bin"}
	return c
}

func TestInterpreters(t *testing.T) {
	for _, ip := range interpreters {
		t.Run(ip.lang, func(t *testing.T) {
			t.Parallel()
			script := ip.script(t)
			call := func(c *proc.Cmd, in any) (interpReply, error) {
				return jsonpipe.Call[interpReply](t.Context(), c, in)
			}

			t.Run("success", func(t *testing.T) {
				got, err := call(ip.command(script), interpRequest{Mode: "ok", Text: "three little words"})
				want := interpReply{Lang: ip.lang, Echo: "three little words", Words: 3}
				if err != nil || got != want {
					t.Errorf("Call = %+v, %v; want %+v", got, err, want)
				}
			})

			t.Run("unicode", func(t *testing.T) {
				text := "naïve café — 日本語 😀 \u2028 \"quoted\" \\ end"
				got, err := call(ip.command(script), interpRequest{Mode: "ok", Text: text})
				if err != nil || got.Echo != text {
					t.Errorf("round trip = %q, %v; want %q", got.Echo, err, text)
				}
			})

			t.Run("raise", func(t *testing.T) {
				_, err := call(ip.command(script), interpRequest{Mode: "raise", Text: "Zoë"})
				re, ok := errors.AsType[*jsonpipe.RemoteError](err)
				if !ok || re.Message != "no such article: Zoë" || re.Type != ip.raiseType || re.Result.ExitCode != 1 {
					t.Errorf("raise: %v", err)
				}
			})

			t.Run("wrong shape", func(t *testing.T) {
				_, err := call(ip.command(script), []int{1, 2})
				if re, ok := errors.AsType[*jsonpipe.RemoteError](err); !ok || re.Type != ip.shapeType {
					t.Errorf("wrong shape: %v", err)
				}
			})

			t.Run("not JSON", func(t *testing.T) {
				// Call always sends valid JSON; a shell in between sends something else.
				argv := append([]string{ip.path}, ip.flags...)
				c := proc.Command("/bin/sh", "-c", `printf 'not json' | exec "$@"`, "sh")
				c.Args = append(c.Args, append(argv, script)...)
				c.Env = []string{"PATH=/usr/bin:/bin"}
				_, err := call(c, interpRequest{})
				re, ok := errors.AsType[*jsonpipe.RemoteError](err)
				if !ok || re.Type != "BadInput" || !strings.HasPrefix(re.Message, "decode input: ") {
					t.Errorf("bad input: %v", err)
				}
			})

			t.Run("garbage", func(t *testing.T) {
				_, err := call(ip.command(script), interpRequest{Mode: "garbage", Text: "x"})
				if de, ok := errors.AsType[*jsonpipe.DecodeError](err); !ok || !strings.HasPrefix(de.Head, "this is not JSON\n") {
					t.Errorf("garbage: %v", err)
				}
			})

			t.Run("timeout", func(t *testing.T) {
				c := ip.command(script)
				c.Timeout = 200 * time.Millisecond
				start := time.Now()
				_, err := call(c, interpRequest{Mode: "sleep"})
				if !errors.Is(err, proc.ErrTimeout) {
					t.Errorf("timeout: %v", err)
				}
				if d := time.Since(start); d > 5*time.Second {
					t.Errorf("timeout took %v", d)
				}
			})
		})
	}
}
