package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const python = "/usr/bin/python3"

// misbehave crashes on the article titled "crash", hangs on "hang", and otherwise
// counts words by spaces.
const misbehave = `import json, os, sys, time
a = json.load(sys.stdin)
if a["title"] == "crash":
    os.abort()
if a["title"] == "hang":
    time.sleep(60)
print(json.dumps({"title": a["title"], "word_count": len(a["text"].split()), "unique_words": 0, "top_words": []}))
`

func needPython(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(python); err != nil {
		t.Skipf("%s not installed: %v", python, err)
	}
}

// runAgent runs the program with args and returns its exit code, its reports and
// its stderr.
func runAgent(t *testing.T, args ...string) (int, []report, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), args, &stdout, &stderr)
	var reports []report
	dec := json.NewDecoder(&stdout)
	for dec.More() {
		var r report
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("report %d: %v\nstdout: %s", len(reports), err, stdout.String())
		}
		reports = append(reports, r)
	}
	return code, reports, stderr.String()
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSampleArticles(t *testing.T) {
	needPython(t)
	code, reports, stderr := runAgent(t, "articles.json")
	if code != 0 || len(reports) != 3 {
		t.Fatalf("exit %d, %d reports; stderr:\n%s", code, len(reports), stderr)
	}
	want := []report{
		{Title: "Bees", Analysis: &Analysis{WordCount: 13, UniqueWords: 8, TopWords: []wordCount{{"bees", 3}, {"flowers", 3}, {"visit", 2}}}},
		{Title: "Tides", Analysis: &Analysis{WordCount: 17, UniqueWords: 13, TopWords: []wordCount{{"the", 4}, {"sea", 2}, {"a", 1}}}},
		{Title: "Café culture", Analysis: &Analysis{WordCount: 16, UniqueWords: 13, TopWords: []wordCount{{"a", 3}, {"café", 2}, {"an", 1}}}},
	}
	for i := range want {
		if !reflect.DeepEqual(reports[i], want[i]) {
			t.Errorf("report %d = %+v %+v, want %+v %+v", i, reports[i], reports[i].Analysis, want[i], want[i].Analysis)
		}
	}
}

func TestFailedAnalysisContinues(t *testing.T) {
	needPython(t)
	script := writeFile(t, "misbehave.py", misbehave)
	for _, tc := range []struct{ title, errText string }{
		{"crash", "SIGABRT"},
		{"hang", "timed out"},
	} {
		t.Run(tc.title, func(t *testing.T) {
			articles, _ := json.Marshal([]article{{"first", "one two"}, {tc.title, "x"}, {"last", "a b c"}})
			start := time.Now()
			code, reports, stderr := runAgent(t, "-script", script, "-timeout", "300ms", writeFile(t, "articles.json", string(articles)))
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("run took %v", d)
			}
			if code != 0 || len(reports) != 3 {
				t.Fatalf("exit %d, %d reports; stderr:\n%s", code, len(reports), stderr)
			}
			if r := reports[1]; r.Title != tc.title || r.Analysis != nil || !strings.Contains(r.Error, tc.errText) {
				t.Errorf("failed article: %+v, want an error mentioning %q", r, tc.errText)
			}
			if r := reports[2]; r.Title != "last" || r.Error != "" || r.Analysis == nil || r.WordCount != 3 {
				t.Errorf("next article: %+v", r)
			}
			if !strings.Contains(stderr, "analysis failed") || !strings.Contains(stderr, "title="+tc.title) {
				t.Errorf("stderr does not log the failure:\n%s", stderr)
			}
		})
	}
}

func TestBadArticlesFile(t *testing.T) {
	for name, path := range map[string]string{
		"missing": filepath.Join(t.TempDir(), "none.json"),
		"invalid": writeFile(t, "bad.json", `{"title": "not an array"}`),
	} {
		t.Run(name, func(t *testing.T) {
			code, reports, stderr := runAgent(t, path)
			if code != 2 || len(reports) != 0 || !strings.Contains(stderr, "research-agent: ") {
				t.Errorf("exit %d, %d reports, stderr %q", code, len(reports), stderr)
			}
		})
	}
}
