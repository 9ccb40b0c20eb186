// Command research-agent analyses articles with a Python script, one child process
// per article, through package jsonpipe. It prints one JSON report per article; an
// analysis that crashes or times out yields a report with an error, and the run goes
// on with the next article.
//
//	research-agent [-script PATH] [-timeout D] [-python PATH] ARTICLES.json
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/runboxhq/runbox/jsonpipe"
	"github.com/runboxhq/runbox/proc"
)

type article struct {
	Title string `json:"title"`
	Text  string `json:"text"`
}

// Analysis is what the script returns.
type Analysis struct {
	WordCount   int         `json:"word_count"`
	UniqueWords int         `json:"unique_words"`
	TopWords    []wordCount `json:"top_words"`
}

// report is one output line: the analysis, or the error in its place.
type report struct {
	Title     string `json:"title"`
	*Analysis        // nil when Error is set, and then left out of the JSON
	Error     string `json:"error,omitempty"`
}

// wordCount is one entry of top_words, a [word, count] pair in JSON.
type wordCount struct {
	Word  string
	Count int
}

func (w *wordCount) UnmarshalJSON(b []byte) error {
	var pair [2]json.RawMessage
	if err := json.Unmarshal(b, &pair); err != nil {
		return err
	}
	if err := json.Unmarshal(pair[0], &w.Word); err != nil {
		return err
	}
	return json.Unmarshal(pair[1], &w.Count)
}

func (w wordCount) MarshalJSON() ([]byte, error) { return json.Marshal([]any{w.Word, w.Count}) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run is the program: it returns 0 when every article got a report, even one with an
// error; 2 for bad usage or an unreadable article file; 1 when interrupted.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("research-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	script := fs.String("script", "analysis_script.py", "analysis `script` (reads an article, writes a report)")
	timeout := fs.Duration("timeout", 10*time.Second, "time limit per article")
	python := fs.String("python", "/usr/bin/python3", "Python `interpreter`")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: research-agent [-script PATH] [-timeout D] [-python PATH] ARTICLES.json")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	articles, err := readArticles(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "research-agent: %v\n", err)
		return 2
	}

	log := slog.New(slog.NewTextHandler(stderr, nil))
	out := json.NewEncoder(stdout)
	out.SetEscapeHTML(false)
	for i, a := range articles {
		cmd := proc.Command(*python, "-I", *script)
		cmd.Env = []string{"PATH=/usr/bin:/bin"} // a clean environment: faster, and no leaks
		cmd.Timeout = *timeout
		rep := report{Title: a.Title}
		res, err := jsonpipe.Call[Analysis](ctx, cmd, a)
		if ctx.Err() != nil {
			log.Warn("interrupted", "article", i, "title", a.Title)
			return 1
		}
		if err != nil {
			log.Error("analysis failed", "article", i, "title", a.Title, "err", err)
			rep.Error = err.Error()
		} else {
			rep.Analysis = &res
		}
		if err := out.Encode(rep); err != nil {
			log.Error("write report", "err", err)
			return 1
		}
	}
	return 0
}

func readArticles(path string) ([]article, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var articles []article
	if err := json.Unmarshal(b, &articles); err != nil {
		return nil, fmt.Errorf("%s: want a JSON array of {\"title\", \"text\"}: %v", path, err)
	}
	return articles, nil
}
