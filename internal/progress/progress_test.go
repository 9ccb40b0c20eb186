package progress

import (
	"errors"
	"math"
	"regexp/syntax"
	"slices"
	"strings"
	"sync"
	"testing"
	"unsafe"
)

const (
	kiB = 1024
	miB = 1024 * kiB
	giB = 1024 * miB
)

// sample is a line and what Parse must make of it; ok false means "not progress".
type sample struct {
	line string
	want Value
	ok   bool
}

func progressLine(line string, v Value) sample { return sample{line, v, true} }
func notProgress(line string) sample           { return sample{line: line} }

// ordinary lines that no preset may take for progress.
var ordinary = []string{
	"",
	"   ",
	"hello world",
	"2024-05-01T12:00:00Z INFO starting worker 7",
	"2024-05-01 12:00:00.123 disk usage at 85% on /dev/sda1",
	"CPU: 45%, memory: 3.2 GiB",
	"error: 100% of requests failed",
	"coverage: 83.2% of statements",
	"Receiving objects:  45% (4500/10000), 1.20 MiB | 2.30 MiB/s",
	"Resolving deltas: 100% (1234/1234), done.",
	"ok  \tgithub.com/runboxhq/runbox/internal/lines\t0.012s",
	"%)",
	"(%)",
}

var samples = map[string][]sample{
	"percent": {
		progressLine("processed 3 lines (75%)", Value{Percent: 75}),
		progressLine("processed 4 lines (100%)", Value{Percent: 100}),
		progressLine("Downloading layer sha256:9f2a (42.5%)", Value{Percent: 42.5}),
		progressLine("(0%)", Value{Percent: 0}),
		progressLine("  714149/1808798 kB (39%), 0/1 tablespace (pgdata/base/1/2)", Value{Percent: 39}),
		progressLine("[####      ] 1234/5000 (24.68%) eta 12s", Value{Percent: 24.68}),
		progressLine("resized (150%)", Value{Percent: 100}), // clamped
		progressLine("step (3/10) (30%) then (40%)", Value{Percent: 30}),
		notProgress("discount of 50% (on everything)"),
		notProgress("(1234%)"),
		notProgress("( 45%)"),
		notProgress("(45 %)"),
		notProgress("(-5%)"),
		notProgress("(4.%)"),
		notProgress("(45%"),
		notProgress("45%)"),
	},
	"pg_basebackup": {
		progressLine("  714149/1808798 kB (39%), 0/1 tablespace (pgdata/base/1/2)",
			Value{Percent: 39, Done: 714149, Total: 1808798, Unit: "kB"}),
		progressLine("1274532/1808798 kB (70%), 0/1 tablespace",
			Value{Percent: 70, Done: 1274532, Total: 1808798, Unit: "kB"}),
		// The final report: filename replaced by padding.
		progressLine("1808798/1808798 kB (100%), 1/1 tablespace                                        ",
			Value{Percent: 100, Done: 1808798, Total: 1808798, Unit: "kB"}),
		// Filenames are padded to 35 columns, or cut at the front behind "...".
		progressLine("     0/1808798 kB (0%), 0/1 tablespace (pgdata/base/1/2                   )",
			Value{Percent: 0, Done: 0, Total: 1808798, Unit: "kB"}),
		progressLine("  25609/31339 kB (81%), 0/1 tablespace (...ase/13445/pg_internal.init)",
			Value{Percent: 81, Done: 25609, Total: 31339, Unit: "kB"}),
		progressLine("23456/987654 kB (2%), 1/3 tablespaces (/srv/ts1/PG_16_202307071/16384/16385)",
			Value{Percent: 2, Done: 23456, Total: 987654, Unit: "kB"}),
		notProgress("pg_basebackup: initiating base backup, waiting for checkpoint to complete"),
		notProgress("pg_basebackup: checkpoint completed"),
		notProgress("pg_basebackup: write-ahead log start point: 0/2000028 on timeline 1"),
		notProgress("pg_basebackup: base backup completed"),
		notProgress("shared_buffers: 131072 kB (25%) of RAM"),
		notProgress("transferred 512/1024 kB (50%)"),
		notProgress("512/1024 MB (50%), 0/1 tablespace"),
	},
	"rsync": {
		progressLine("      1,238,099  42%   11.92MB/s    0:00:10 (xfr#1, to-chk=0/1)",
			Value{Percent: 42, Done: 1238099, Unit: "bytes"}),
		progressLine("  3,506,077,696 100%  233.12MB/s    0:00:14 (xfr#5, to-chk=0/7)",
			Value{Percent: 100, Done: 3506077696, Unit: "bytes"}),
		progressLine("              0   0%    0.00kB/s    0:00:00 (xfr#0, ir-chk=1000/1234)",
			Value{Percent: 0, Done: 0, Unit: "bytes"}),
		// --progress, per file, in the middle of a transfer: two trailing spaces.
		progressLine("         32,768   0%    0.00kB/s    0:00:00  ", Value{Percent: 0, Done: 32768, Unit: "bytes"}),
		progressLine("     98,304,000  93%   93.75MB/s      ??:??:??  ", Value{Percent: 93, Done: 98304000, Unit: "bytes"}),
		// -h: units of 1000.
		progressLine("        557.06M  42%   53.05MB/s    0:00:10 (xfr#1, to-chk=0/1)",
			Value{Percent: 42, Done: 557.06e6, Unit: "bytes"}),
		// A locale whose decimal point is a comma.
		progressLine("      1.238.099  42%   11,92MB/s    0:00:10 (xfr#1, to-chk=0/1)",
			Value{Percent: 42, Done: 1238099, Unit: "bytes"}),
		progressLine("          1,24G  42%   11,92MB/s    0:00:10 (xfr#1, to-chk=0/1)",
			Value{Percent: 42, Done: 1.24e9, Unit: "bytes"}),
		progressLine("1,073,741,824 100%  102.40MB/s    0:00:10", Value{Percent: 100, Done: 1073741824, Unit: "bytes"}),
		notProgress("sending incremental file list"),
		notProgress("sent 1,234 bytes  received 35 bytes  2,538.00 bytes/sec"),
		notProgress("total size is 3,506,077,696  speedup is 1.00"),
		notProgress("Number of files: 7 (reg: 5, dir: 2)"),
		notProgress("42% done"),
		notProgress("1,2345  42%   11.92MB/s    0:00:10"), // bad grouping
		notProgress("1,238,099  42%   11.92MB/s"),
	},
	"curl": {
		progressLine(" 45  100M   45 45.0M    0     0  10.2M      0  0:00:09  0:00:04  0:00:05 10.2M",
			Value{Percent: 45, Done: 45 * miB, Total: 100 * miB, Unit: "bytes"}),
		progressLine("100  100M  100  100M    0     0  10.4M      0  0:00:09  0:00:09 --:--:-- 11.1M",
			Value{Percent: 100, Done: 100 * miB, Total: 100 * miB, Unit: "bytes"}),
		progressLine("  0  100M    0     0    0     0      0      0 --:--:-- --:--:-- --:--:--     0",
			Value{Percent: 0, Done: 0, Total: 100 * miB, Unit: "bytes"}),
		progressLine("100  1256  100  1256    0     0  12787      0 --:--:-- --:--:-- --:--:-- 12816",
			Value{Percent: 100, Done: 1256, Total: 1256, Unit: "bytes"}),
		progressLine(" 12 1024M    0     0   12  123M      0  10.2M  0:01:40  0:00:12  0:01:28 10.3M",
			Value{Percent: 12, Done: 123 * miB, Total: 1024 * miB, Unit: "bytes"}),
		progressLine("  3 95.2G    3 3126M    0     0  1024k      0  27d 02h  0:52:06  27d 01h 1100k",
			Value{Percent: 3, Done: 3126 * miB, Total: 95.2 * giB, Unit: "bytes"}),
		progressLine(" 67  9876    67  6617    0     0   6617      0  0:00:01  0:00:01 --:--:--  6617",
			Value{Percent: 67, Done: 6617, Total: 9876, Unit: "bytes"}),
		// Size unknown (chunked): curl shows 100 in the first column from the start.
		progressLine("100 52.3M    0 52.3M    0     0  10.2M      0 --:--:--  0:00:05 --:--:-- 10.4M",
			Value{Percent: -1, Done: 52.3 * miB, Unit: "bytes"}),
		progressLine("  0     0    0     0    0     0      0      0 --:--:-- --:--:-- --:--:--     0",
			Value{Percent: -1, Unit: "bytes"}),
		// curl -#.
		progressLine("######################                                                     30.6%", Value{Percent: 30.6}),
		progressLine("######################################################################## 100.0%", Value{Percent: 100}),
		progressLine("                                                                           0.0%", Value{Percent: 0}),
		notProgress("  % Total    % Received % Xferd  Average Speed   Time    Time     Time  Current"),
		notProgress("                                 Dload  Upload   Total   Spent    Left  Speed"),
		notProgress("curl: (6) Could not resolve host: example.invalid"),
		notProgress("-=O=-       #     #      #       #"),
		notProgress("#=#=#"),
		notProgress("## 5.0% of the budget"),
		notProgress("50.0%"),
		notProgress("100"),
		notProgress("2024-05-01 12:00:00 GET /x 200 1234"),
		notProgress("1 2 3 4 5 6 7 8 9 10 11 12"),
	},
	"dd": {
		progressLine("1073741824 bytes (1.1 GB, 1.0 GiB) copied, 1.2 s, 900 MB/s", Value{Percent: -1, Done: 1073741824, Unit: "bytes"}),
		progressLine("524288000 bytes (524 MB, 500 MiB) copied, 1 s, 524 MB/s", Value{Percent: -1, Done: 524288000, Unit: "bytes"}),
		// The final summary.
		progressLine("2147483648 bytes (2.1 GB, 2.0 GiB) copied, 2.31149 s, 929 MB/s", Value{Percent: -1, Done: 2147483648, Unit: "bytes"}),
		progressLine("1000 bytes (1.0 kB) copied, 0.000120 s, 8.3 MB/s", Value{Percent: -1, Done: 1000, Unit: "bytes"}),
		progressLine("512 bytes copied, 0.000123 s, 4.2 MB/s", Value{Percent: -1, Done: 512, Unit: "bytes"}),
		progressLine("1 byte copied, 5.1e-05 s, 19.6 kB/s", Value{Percent: -1, Done: 1, Unit: "bytes"}),
		progressLine("0 bytes copied, 1 s, 0 B/s", Value{Percent: -1, Done: 0, Unit: "bytes"}),
		notProgress("2048+0 records in"),
		notProgress("2048+0 records out"),
		notProgress("dd: error writing '/dev/sdb': No space left on device"),
		notProgress("1024 bytes copied"),
		notProgress("copied 1024 bytes, done"),
		notProgress("about 1024 bytes (1.0 kB) copied, 1 s, 1 kB/s"),
	},
}

func TestPresets(t *testing.T) {
	want := []string{"curl", "dd", "percent", "pg_basebackup", "rsync"}
	if got := Presets(); !slices.Equal(got, want) {
		t.Errorf("Presets() = %q, want %q", got, want)
	}
	for _, name := range want {
		if _, ok := samples[name]; !ok {
			t.Errorf("no samples for preset %s", name)
		}
	}
}

func TestParsePresets(t *testing.T) {
	for name, cases := range samples {
		t.Run(name, func(t *testing.T) {
			p, err := New(name)
			if err != nil {
				t.Fatal(err)
			}
			if p.Name() != name {
				t.Errorf("Name() = %q", p.Name())
			}
			for _, l := range ordinary {
				cases = append(cases, notProgress(l))
			}
			for _, c := range cases {
				got, ok := p.Parse(c.line)
				if ok != c.ok || (ok && !same(got, c.want)) {
					t.Errorf("Parse(%q) = %+v, %v; want %+v, %v", c.line, got, ok, c.want, c.ok)
				}
			}
		})
	}
}

// same compares values, allowing for the rounding of decimal suffixes.
func same(a, b Value) bool {
	near := func(x, y float64) bool { return math.Abs(x-y) <= 1e-9*math.Max(1, math.Abs(y)) }
	return near(a.Percent, b.Percent) && near(a.Done, b.Done) && near(a.Total, b.Total) && a.Unit == b.Unit
}

func TestParseTerminatorsAndRedraws(t *testing.T) {
	p, _ := New("rsync")
	for _, line := range []string{
		"      2,000,000  60%   11.92MB/s    0:00:05  \n",
		"      2,000,000  60%   11.92MB/s    0:00:05  \r\n",
		"      2,000,000  60%   11.92MB/s    0:00:05  \r",
		// Split on "\n" only: the redraws arrive together; the last one counts.
		"\r      1,238,099  42%   11.92MB/s    0:00:10  \r      2,000,000  60%   11.92MB/s    0:00:05  ",
		"      1,238,099  42%   11.92MB/s    0:00:10  \r      2,000,000  60%   11.92MB/s    0:00:05  \r",
	} {
		v, ok := p.Parse(line)
		if !ok || v.Percent != 60 || v.Done != 2e6 {
			t.Errorf("Parse(%q) = %+v, %v; want 60%% of 2,000,000", line, v, ok)
		}
	}
	for _, line := range []string{"\r", "\r\n", "\r\r", "      1,238,099  42%   11.92MB/s    0:00:10  \rsomething else"} {
		if v, ok := p.Parse(line); ok {
			t.Errorf("Parse(%q) = %+v, want no progress", line, v)
		}
	}
}

func TestParseLongLine(t *testing.T) {
	p, _ := New("percent")
	if _, ok := p.Parse(strings.Repeat("x", MaxLineLen-5) + "(50%)"); !ok {
		t.Error("a line of MaxLineLen bytes is not progress")
	}
	if _, ok := p.Parse(strings.Repeat("x", MaxLineLen-4) + "(50%)"); ok {
		t.Error("a line over MaxLineLen bytes is progress")
	}
}

func TestCustom(t *testing.T) {
	for _, c := range []struct {
		spec string
		sample
	}{
		{`(?P<pct>\d+(?:\.\d+)?)%`, progressLine("upload 45.5% done", Value{Percent: 45.5})},
		{`(?P<pct>\d+)%`, progressLine("overshoot 250%", Value{Percent: 100})},
		{`(?P<pct>\d+)%`, notProgress("no percent here")},
		{`(?P<pct>\S+)%`, notProgress("abc% is not a number")},
		{`(?P<pct>\S+)%`, notProgress("NaN%")},
		{`(?P<pct>\S+)%`, notProgress("-5%")},
		{`(?P<done>[\d,.]+)/(?P<total>[\d,.]+) (?P<unit>\w+)`,
			progressLine("copied 1,234/5,000 MB", Value{Percent: 24.68, Done: 1234, Total: 5000, Unit: "MB"})},
		{`(?P<done>[\d,.]+)/(?P<total>[\d,.]+) (?P<unit>\w+)`,
			progressLine("copied 2.5/10 GB", Value{Percent: 25, Done: 2.5, Total: 10, Unit: "GB"})},
		{`(?P<done>[\d,.]+)/(?P<total>[\d,.]+) (?P<unit>\w+)`, notProgress("copied 1,23/5 MB")},
		{`(?P<done>\d+)/(?P<total>\d+)`, progressLine("item 7/0", Value{Percent: -1, Done: 7})},
		{`(?P<done>\d+)/(?P<total>\d+)`, progressLine("item 12/10", Value{Percent: 100, Done: 12, Total: 10})},
		// Optional groups: whichever took part.
		{`(?P<done>\d+)(?:/(?P<total>\d+))? items`, progressLine("5 items", Value{Percent: -1, Done: 5})},
		{`(?P<done>\d+)(?:/(?P<total>\d+))? items`, progressLine("5/20 items", Value{Percent: 25, Done: 5, Total: 20})},
		{`(?P<pct>\d+)%|(?P<done>\d+)/(?P<total>\d+)`, progressLine("3/4", Value{Percent: 75, Done: 3, Total: 4})},
		{`(?P<pct>\d+)%|(?P<done>\d+)/(?P<total>\d+)`, progressLine("at 30%", Value{Percent: 30})},
		// pct wins over done and total; all are read.
		{`(?P<done>\d+)/(?P<total>\d+) \((?P<pct>\d+)%\)`,
			progressLine("1/3 (33%)", Value{Percent: 33, Done: 1, Total: 3})},
		// Neither pct nor done took part.
		{`(?P<pct>\d+)%|(?P<done>\d+)/(?P<total>\d+)|idle`, notProgress("idle")},
	} {
		p, err := New(c.spec)
		if err != nil {
			t.Fatalf("New(%q): %v", c.spec, err)
		}
		if p.Name() != "custom" {
			t.Errorf("Name() = %q", p.Name())
		}
		got, ok := p.Parse(c.line)
		if ok != c.ok || (ok && !same(got, c.want)) {
			t.Errorf("New(%q).Parse(%q) = %+v, %v; want %+v, %v", c.spec, c.line, got, ok, c.want, c.ok)
		}
	}
}

func TestCustomUnitIsCopied(t *testing.T) {
	p, _ := New(`(?P<pct>\d+)% (?P<unit>\w+)`)
	b := []byte("50% files")
	v, _ := p.Parse(unsafe.String(&b[0], len(b))) // as a caller avoiding a copy might

	copy(b, "00% XXXXX")
	if v.Unit != "files" {
		t.Errorf("Unit = %q", v.Unit)
	}
}

func TestNewErrors(t *testing.T) {
	for _, spec := range []string{"", "(no groups)", `(?P<done>\d+)`, `(?P<total>\d+)`, `(?P<unit>\w+)`, "pg-basebackup"} {
		_, err := New(spec)
		if !errors.Is(err, ErrGroups) {
			t.Errorf("New(%q): %v, want ErrGroups", spec, err)
			continue
		}
		for _, want := range []string{"named group", "pct", "done", "total", "rsync"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("New(%q): %q does not mention %q", spec, err, want)
			}
		}
	}
	_, err := New(`(?P<pct>\d+`)
	if _, ok := errors.AsType[*syntax.Error](err); !ok || errors.Is(err, ErrGroups) {
		t.Errorf("New with a bad regexp: %v, want a wrapped *syntax.Error", err)
	}
}

func TestNumber(t *testing.T) {
	for _, c := range []struct {
		s          string
		sep, point byte
		want       float64
		ok         bool
	}{
		{"0", 0, 0, 0, true},
		{"42", 0, 0, 42, true},
		{"007", 0, 0, 7, true},
		{"1,234,567", ',', '.', 1234567, true},
		{"1,234,567.25", ',', '.', 1234567.25, true},
		{"12.5", ',', '.', 12.5, true},
		{"123", ',', '.', 123, true},
		{"1234", ',', '.', 1234, true},
		{"1.238.099", '.', 0, 1238099, true},
		{"1,24", 0, ',', 1.24, true},
		{"1,234", 0, 0, 0, false},
		{"1,23", ',', '.', 0, false},
		{"1234,567", ',', '.', 0, false},
		{",123", ',', '.', 0, false},
		{"1,,234", ',', '.', 0, false},
		{"1,234,", ',', '.', 0, false},
		{"1,2345", ',', '.', 0, false},
		{"1,234.5,6", ',', '.', 0, false},
		{"1.5", 0, 0, 0, false},
		{"12.", ',', '.', 0, false},
		{".5", ',', '.', 0, false},
		{"1.2.3", ',', '.', 0, false},
		{"", ',', '.', 0, false},
		{"-1", ',', '.', 0, false},
		{"+1", ',', '.', 0, false},
		{"1e5", ',', '.', 0, false},
		{"NaN", ',', '.', 0, false},
		{"Inf", ',', '.', 0, false},
		{"0x10", ',', '.', 0, false},
		{"1_000", ',', '.', 0, false},
		{" 1", ',', '.', 0, false},
		{strings.Repeat("9", 100), ',', '.', 1e100, true},
		{strings.Repeat("9", 400), ',', '.', 0, false},         // out of range
		{"1" + strings.Repeat(",000", 30), ',', '.', 0, false}, // too long to rewrite
	} {
		got, ok := number(c.s, c.sep, c.point)
		if ok != c.ok || (ok && math.Abs(got-c.want) > 1e-9*math.Max(1, c.want)) {
			t.Errorf("number(%q, %q, %q) = %v, %v; want %v, %v", c.s, c.sep, c.point, got, ok, c.want, c.ok)
		}
	}
}

func TestNoAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	parsers := []*Parser{}
	for _, spec := range append(Presets(), `(?P<done>\d+)/(?P<total>\d+) files`) {
		p, err := New(spec)
		if err != nil {
			t.Fatal(err)
		}
		parsers = append(parsers, p)
	}
	var lines []string
	lines = append(lines, ordinary...)
	for _, cases := range samples {
		for _, c := range cases {
			if !c.ok {
				lines = append(lines, c.line)
			}
		}
	}
	for _, p := range parsers {
		for _, line := range lines {
			if _, ok := p.Parse(line); ok {
				continue
			}
			if n := testing.AllocsPerRun(10, func() { p.Parse(line) }); n != 0 {
				t.Errorf("%s: Parse(%q) allocates %v times", p.Name(), line, n)
			}
		}
	}
	if n := testing.AllocsPerRun(10, func() { number("1,234,567.5", ',', '.') }); n != 0 {
		t.Errorf("number allocates %v times", n)
	}
}

func TestConcurrentParse(t *testing.T) {
	p, _ := New("curl")
	line := " 45  100M   45 45.0M    0     0  10.2M      0  0:00:09  0:00:04  0:00:05 10.2M"
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				if v, ok := p.Parse(line); !ok || v.Percent != 45 {
					t.Errorf("Parse = %+v, %v", v, ok)
					return
				}
			}
		})
	}
	wg.Wait()
}

// allParsers returns every preset and a few custom parsers.
func allParsers(tb testing.TB) []*Parser {
	var ps []*Parser
	for _, spec := range append(Presets(),
		`(?P<pct>\S+)%`,
		`(?P<done>[\d,.]+)/(?P<total>[\d,.]+) ?(?P<unit>\w*)`,
		`(?P<pct>\d+)%|(?P<done>\S+) of (?P<total>\S+)|(?P<unit>x)`,
	) {
		p, err := New(spec)
		if err != nil {
			tb.Fatal(err)
		}
		ps = append(ps, p)
	}
	return ps
}

func FuzzParse(f *testing.F) {
	for _, cases := range samples {
		for _, c := range cases {
			f.Add(c.line)
		}
	}
	for _, l := range ordinary {
		f.Add(l)
	}
	f.Add("1,234/0 x")
	f.Add("99999999999999999999999999999999999999 of 0.000000000000000000001")
	parsers := allParsers(f)
	f.Fuzz(func(t *testing.T, line string) {
		for _, p := range parsers {
			v, ok := p.Parse(line)
			if !ok {
				if v != (Value{}) {
					t.Errorf("%s: Parse(%q) = %+v, false; want the zero Value", p.Name(), line, v)
				}
				continue
			}
			if v.Percent != -1 && !(v.Percent >= 0 && v.Percent <= 100) {
				t.Errorf("%s: Parse(%q).Percent = %v", p.Name(), line, v.Percent)
			}
			for _, x := range []float64{v.Done, v.Total} {
				if !(x >= 0) || math.IsInf(x, 0) {
					t.Errorf("%s: Parse(%q) = %+v: Done and Total must be finite and non-negative", p.Name(), line, v)
				}
			}
		}
	})
}

// benchLines mixes real progress lines of every preset with ordinary log lines, about
// one in three being progress.
func benchLines() []string {
	var lines []string
	for _, cases := range samples {
		for _, c := range cases {
			if c.ok {
				lines = append(lines, c.line)
			}
		}
	}
	for range 2 {
		for _, cases := range samples {
			for _, c := range cases {
				if !c.ok {
					lines = append(lines, c.line)
				}
			}
		}
		lines = append(lines, ordinary...)
	}
	slices.Sort(lines) // a fixed order, interleaving kinds
	return lines
}

// BenchmarkParse reports the time to judge one line.
func BenchmarkParse(b *testing.B) {
	lines := benchLines()
	for _, spec := range append(Presets(), `(?P<done>[\d,]+)/(?P<total>[\d,]+) (?P<unit>\w+)`) {
		p, err := New(spec)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(p.Name(), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				p.Parse(lines[i])
				if i++; i == len(lines) {
					i = 0
				}
			}
		})
	}
}
