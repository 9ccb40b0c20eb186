package jsonpipe_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/runboxhq/runbox/internal/testenv"
	"github.com/runboxhq/runbox/jsonpipe"
	"github.com/runboxhq/runbox/proc"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type article struct {
	Title string `json:"title"`
	Text  string `json:"text"`
}

type report struct {
	Title string `json:"title"`
	Words int    `json:"words"`
}

// The Go child side, as a user writes it: three lines around the function.
func init() {
	testenv.Register("count-words", func(args []string) int {
		jsonpipe.Serve(func(_ context.Context, a article) (report, error) {
			switch a.Text {
			case "fail":
				return report{}, errors.New("cannot analyse an empty article")
			case "hang":
				time.Sleep(time.Hour)
			}
			return report{Title: a.Title, Words: len(strings.Fields(a.Text))}, nil
		})
		return 0
	})
	testenv.Register("print-garbage", func(args []string) int {
		fmt.Print("this is not JSON at all, but a log line that went to stdout")
		return 0
	})
	testenv.Register("crash-quietly", func(args []string) int {
		fmt.Fprintln(os.Stderr, "segfault imminent")
		return 3
	})
}

func helper(t *testing.T, name string) *proc.Cmd {
	argv, env := testenv.Command(t, name)
	return &proc.Cmd{Args: argv, Env: env}
}

func TestCall(t *testing.T) {
	ctx := context.Background()
	got, err := jsonpipe.Call[report](ctx, helper(t, "count-words"), article{Title: "t", Text: "three little words"})
	if err != nil || got != (report{Title: "t", Words: 3}) {
		t.Errorf("Call = %+v, %v", got, err)
	}
}

func TestCallErrors(t *testing.T) {
	ctx := context.Background()
	_, err := jsonpipe.Call[report](ctx, helper(t, "count-words"), article{Text: "fail"})
	if re, ok := errors.AsType[*jsonpipe.RemoteError](err); !ok || re.Message != "cannot analyse an empty article" || re.Result.ExitCode != 1 {
		t.Errorf("remote failure: %v", err)
	}

	_, err = jsonpipe.Call[report](ctx, helper(t, "count-words"), []int{1, 2})
	if re, ok := errors.AsType[*jsonpipe.RemoteError](err); !ok || re.Type != "BadInput" {
		t.Errorf("bad input: %v", err)
	}

	_, err = jsonpipe.Call[report](ctx, helper(t, "print-garbage"), article{})
	if de, ok := errors.AsType[*jsonpipe.DecodeError](err); !ok || !strings.HasPrefix(de.Head, "this is not JSON") || !strings.Contains(err.Error(), "this is not JSON") {
		t.Errorf("garbage: %v", err)
	}

	_, err = jsonpipe.Call[report](ctx, helper(t, "crash-quietly"), article{})
	if ee, ok := errors.AsType[*proc.ExitError](err); !ok || ee.Result.ExitCode != 3 || !strings.Contains(err.Error(), "segfault imminent") {
		t.Errorf("crash without a report: %v", err)
	}

	c := helper(t, "count-words")
	c.Timeout = 200 * time.Millisecond
	start := time.Now()
	_, err = jsonpipe.Call[report](ctx, c, article{Text: "hang"})
	if !errors.Is(err, proc.ErrTimeout) || time.Since(start) > 3*time.Second {
		t.Errorf("timeout: %v after %v", err, time.Since(start))
	}

	_, err = jsonpipe.Call[report](ctx, proc.Command("runbox-no-such-worker"), article{})
	if !errors.Is(err, proc.ErrNotFound) {
		t.Errorf("missing worker: %v", err)
	}

	_, err = jsonpipe.Call[report](ctx, helper(t, "count-words"), func() {})
	if err == nil || !strings.Contains(err.Error(), "encode argument") {
		t.Errorf("unencodable argument: %v", err)
	}
}

func TestCallRejectsTrailingOutput(t *testing.T) {
	c := proc.Command("/bin/sh", "-c", `cat >/dev/null; echo '{"title":"a","words":1}'; echo '{"title":"b"}'`)
	_, err := jsonpipe.Call[report](context.Background(), c, article{})
	if _, ok := errors.AsType[*jsonpipe.DecodeError](err); !ok {
		t.Errorf("two values accepted: %v", err)
	}
}
