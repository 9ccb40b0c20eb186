package progress

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// MaxLineLen is the longest line Parse looks at; longer lines are not progress
// updates. The real ones are under 200 bytes; the bound keeps a flood of long lines
// from costing a regexp scan each.
const MaxLineLen = 4096

// Value is one progress reading. Percent is in [0,100], or -1 when unknown (dd reports
// only bytes done). Done and Total are in Unit (Total 0 when unknown).
type Value struct {
	Percent     float64
	Done, Total float64
	Unit        string // "kB", "bytes", "" …
}

// Parser recognises the progress lines of one tool. It is safe for concurrent use; see
// the package documentation for what each preset recognises.
type Parser struct {
	name  string
	parse func(line string) (Value, bool)
}

// ErrGroups is the error of [New] for a regular expression that names neither a group
// pct nor both groups done and total.
var ErrGroups = errors.New("progress: a regexp needs a named group pct, or named groups done and total")

// custom is the name of the parsers New makes from regular expressions.
const custom = "custom"

var presets = map[string]*Parser{
	"percent":       {name: "percent", parse: parsePercent},
	"pg_basebackup": {name: "pg_basebackup", parse: parsePgBasebackup},
	"rsync":         {name: "rsync", parse: parseRsync},
	"curl":          {name: "curl", parse: parseCurl},
	"dd":            {name: "dd", parse: parseDd},
}

// Presets returns the names of the presets, sorted.
func Presets() []string {
	return slices.Sorted(maps.Keys(presets))
}

// New returns the parser of preset spec, or else one that matches lines with spec as a
// regular expression (see the package documentation). The error says why spec is
// neither: a regexp syntax error (wrapped), or [ErrGroups].
func New(spec string) (*Parser, error) {
	if p, ok := presets[spec]; ok {
		return p, nil
	}
	re, err := regexp.Compile(spec)
	if err != nil {
		return nil, fmt.Errorf("progress: %q is neither a preset (%s) nor a valid regexp: %w",
			spec, strings.Join(Presets(), ", "), err)
	}
	c := &customParser{
		re:    re,
		pct:   re.SubexpIndex("pct"),
		done:  re.SubexpIndex("done"),
		total: re.SubexpIndex("total"),
		unit:  re.SubexpIndex("unit"),
	}
	if c.pct < 0 && (c.done < 0 || c.total < 0) {
		return nil, fmt.Errorf("%w; %q is not a preset (%s) either", ErrGroups, spec, strings.Join(Presets(), ", "))
	}
	return &Parser{name: custom, parse: c.parse}, nil
}

// Name returns the name of the preset, or "custom" for a regular expression.
func (p *Parser) Name() string { return p.name }

// Parse reads the progress in line, a line of output without its terminator. It
// returns false when line is not a progress update.
func (p *Parser) Parse(line string) (Value, bool) {
	line = strings.TrimRight(line, "\r\n")
	// Output split on "\n" only keeps a tool's redraws together; the last is current.
	if i := strings.LastIndexByte(line, '\r'); i >= 0 {
		line = line[i+1:]
	}
	if line == "" || len(line) > MaxLineLen {
		return Value{}, false
	}
	return p.parse(line)
}

type customParser struct {
	re                     *regexp.Regexp
	pct, done, total, unit int // subexpression numbers, -1 when absent
}

func (c *customParser) parse(line string) (Value, bool) {
	// Most lines are not progress, and a match without captures is cheaper.
	if !c.re.MatchString(line) {
		return Value{}, false
	}
	m := c.re.FindStringSubmatchIndex(line)
	v := Value{Percent: -1}
	pct, hasPct := group(line, m, c.pct)
	done, hasDone := group(line, m, c.done)
	total, hasTotal := group(line, m, c.total)
	if !hasPct && !hasDone {
		return Value{}, false
	}
	var ok bool
	if hasDone {
		if v.Done, ok = number(done, ',', '.'); !ok {
			return Value{}, false
		}
	}
	if hasTotal {
		if v.Total, ok = number(total, ',', '.'); !ok {
			return Value{}, false
		}
	}
	switch {
	case hasPct:
		if v.Percent, ok = number(pct, ',', '.'); !ok {
			return Value{}, false
		}
		v.Percent = clamp(v.Percent)
	case hasTotal:
		v.Percent = ratio(v.Done, v.Total)
	}
	if u, ok := group(line, m, c.unit); ok {
		// The line may live in a buffer that its caller reuses.
		v.Unit = strings.Clone(u)
	}
	return v, true
}

// group returns the text of subexpression i of match m, and whether it took part.
func group(line string, m []int, i int) (string, bool) {
	if i < 0 || m[2*i] < 0 {
		return "", false
	}
	return line[m[2*i]:m[2*i+1]], true
}

// Presets. Each parse function first rules out most other lines without a regexp.

var (
	percentRE = regexp.MustCompile(`\((\d{1,3}(?:\.\d+)?)%\)`)
	// "%*s/%s kB (%d%%), %d/%d tablespace" and the rest, from progress_report in
	// pg_basebackup.c.
	pgBasebackupRE = regexp.MustCompile(`^\s*(\d+)/(\d+) kB \((\d{1,3})%\), \d+/\d+ \S`)
	// "%15s %3d%% %7.2f%s %s%s" from rprint_progress in rsync's progress.c: bytes
	// (human_num), percent, rate with its unit, time left or taken.
	rsyncRE = regexp.MustCompile(`^\s*(\d+|\d{1,3}(?:,\d{3})+|\d{1,3}(?:\.\d{3})+|\d+[.,]\d+[KMGTPE]) +(\d{1,3})% +\d[\d,.]*[kMGTP]B/s +(?:\d+:\d\d:\d\d|\?\?:\?\?:\?\?)(?: |$)`)
	// "%-*s %5.1f%%" from curl's tool_cb_prg.c: a bar of '#', then the percentage.
	curlBarRE = regexp.MustCompile(`^#*\s+(\d{1,3}\.\d)%\s*$`)
	// "%jd bytes (%s, %s) copied, %s, %s", "%jd bytes (%s) copied, …" and "%jd
	// bytes copied, …" from print_xfer_stats in coreutils' dd.c.
	ddRE = regexp.MustCompile(`^\s*(\d+) bytes? (?:\([^)]*\) )?copied, `)
)

func parsePercent(line string) (Value, bool) {
	if !strings.Contains(line, "%)") {
		return Value{}, false
	}
	m := percentRE.FindStringSubmatchIndex(line)
	if m == nil {
		return Value{}, false
	}
	pct, ok := number(line[m[2]:m[3]], 0, '.')
	return result(Value{Percent: clamp(pct)}, ok)
}

func parsePgBasebackup(line string) (Value, bool) {
	if !strings.Contains(line, " kB (") {
		return Value{}, false
	}
	m := pgBasebackupRE.FindStringSubmatchIndex(line)
	if m == nil {
		return Value{}, false
	}
	done, ok1 := number(line[m[2]:m[3]], 0, 0)
	total, ok2 := number(line[m[4]:m[5]], 0, 0)
	pct, ok3 := number(line[m[6]:m[7]], 0, 0)
	return result(Value{Percent: clamp(pct), Done: done, Total: total, Unit: "kB"}, ok1 && ok2 && ok3)
}

func parseRsync(line string) (Value, bool) {
	if strings.IndexByte(line, '%') < 0 {
		return Value{}, false
	}
	m := rsyncRE.FindStringSubmatchIndex(line)
	if m == nil {
		return Value{}, false
	}
	done, ok1 := rsyncBytes(line[m[2]:m[3]])
	pct, ok2 := number(line[m[4]:m[5]], 0, 0)
	return result(Value{Percent: clamp(pct), Done: done, Unit: "bytes"}, ok1 && ok2)
}

// rsyncBytes reads rsync's human_num: "1,238,099", "1.238.099" where the locale's
// decimal point is a comma, or with -h "1.24M" (1,24M), in powers of 1000.
func rsyncBytes(s string) (float64, bool) {
	if k := strings.IndexByte("KMGTPE", s[len(s)-1]); k >= 0 {
		s = s[:len(s)-1]
		point := byte('.')
		if strings.IndexByte(s, ',') >= 0 {
			point = ','
		}
		f, ok := number(s, 0, point)
		for range k + 1 {
			f *= 1000
		}
		return f, ok
	}
	sep := byte(',')
	if strings.IndexByte(s, '.') >= 0 {
		sep = '.'
	}
	return number(s, sep, 0)
}

func parseCurl(line string) (Value, bool) {
	end := strings.TrimRight(line, " ")
	if end == "" {
		return Value{}, false
	}
	if end[len(end)-1] == '%' {
		m := curlBarRE.FindStringSubmatchIndex(line)
		if m == nil {
			return Value{}, false
		}
		pct, ok := number(line[m[2]:m[3]], 0, '.')
		return result(Value{Percent: clamp(pct)}, ok)
	}
	if !isDigit(strings.TrimLeft(end, " ")[0]) {
		return Value{}, false
	}
	var f [curlFields]string
	if !curlSplit(line, &f) {
		return Value{}, false
	}
	pct, ok1 := number(f[0], 0, 0)
	total, ok2 := curlBytes(f[1])
	rcvdPct, ok3 := number(f[2], 0, 0)
	rcvd, ok4 := curlBytes(f[3])
	sentPct, ok5 := number(f[4], 0, 0)
	sent, ok6 := curlBytes(f[5])
	_, ok7 := curlBytes(f[6])
	_, ok8 := curlBytes(f[7])
	_, ok9 := curlBytes(f[11])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7 && ok8 && ok9) ||
		len(f[0]) > 3 || len(f[2]) > 3 || len(f[4]) > 3 ||
		!curlTime(f[8]) || !curlTime(f[9]) || !curlTime(f[10]) {
		return Value{}, false
	}
	v := Value{Percent: clamp(pct), Done: rcvd + sent, Total: total, Unit: "bytes"}
	// Of a transfer whose size it does not know, curl counts what has arrived as the
	// total: 100% from the first byte, while the per-direction columns stay 0.
	if total == 0 || (pct >= 100 && rcvdPct == 0 && sentPct == 0) {
		v.Percent, v.Total = -1, 0
	}
	return v, true
}

// curlFields is the number of columns of curl's meter: "%3d %s  %3d %s  %3d %s  %s
// %s %s %s %s %s" in progress_meter of curl's lib/progress.c, that is total %, total
// size, received %, received, sent %, sent, two average speeds, three times (time2str:
// "--:--:--", " 0:00:09", " 27d 02h" or "  1234d") and the current speed. It has
// no regexp: a scanner reads it in a fraction of the time.
const curlFields = 12

// curlSplit splits a row of curl's meter into its fields, or reports that line has
// not the right number of them.
func curlSplit(line string, f *[curlFields]string) bool {
	i := 0
	for k := range f {
		for i < len(line) && line[i] == ' ' {
			i++
		}
		start := i
		for i < len(line) && line[i] != ' ' {
			i++
		}
		if i == start {
			return false
		}
		// A time of more than 99 hours is "%3dd %02dh": one field with a space.
		if k >= 8 && k <= 10 && line[i-1] == 'd' && i+4 <= len(line) && line[i] == ' ' &&
			isDigit(line[i+1]) && isDigit(line[i+2]) && line[i+3] == 'h' && (i+4 == len(line) || line[i+4] == ' ') {
			i += 4
		}
		f[k] = line[start:i]
	}
	for i < len(line) && line[i] == ' ' {
		i++
	}
	return i == len(line)
}

// curlTime reports whether s is a time of time2str.
func curlTime(s string) bool {
	if s == "--:--:--" {
		return true
	}
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	if i == 0 {
		return false
	}
	switch t := s[i:]; {
	case len(t) == 6: // ":mm:ss"
		return t[0] == ':' && isDigit(t[1]) && isDigit(t[2]) && t[3] == ':' && isDigit(t[4]) && isDigit(t[5])
	case len(t) == 5: // "d HHh"
		return t[0] == 'd' && t[1] == ' ' && isDigit(t[2]) && isDigit(t[3]) && t[4] == 'h'
	default:
		return t == "d"
	}
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// curlBytes reads max5data: "12345", "1234k", "12.3M", "1234M", "12.3G"…, in powers
// of 1024.
func curlBytes(s string) (float64, bool) {
	k := strings.IndexByte("kMGTP", s[len(s)-1])
	if k >= 0 {
		s = s[:len(s)-1]
	}
	f, ok := number(s, 0, '.')
	for range k + 1 {
		f *= 1024
	}
	return f, ok
}

func parseDd(line string) (Value, bool) {
	if !strings.Contains(line, " copied, ") {
		return Value{}, false
	}
	m := ddRE.FindStringSubmatchIndex(line)
	if m == nil {
		return Value{}, false
	}
	done, ok := number(line[m[2]:m[3]], 0, 0)
	return result(Value{Percent: -1, Done: done, Unit: "bytes"}, ok)
}

// result returns v, or the zero Value when not ok.
func result(v Value, ok bool) (Value, bool) {
	if !ok {
		return Value{}, false
	}
	return v, true
}

// maxNumberLen bounds the numbers that need rewriting before strconv reads them.
const maxNumberLen = 64

// number reads a non-negative decimal number: digits, with sep (0: none allowed)
// between groups of three in the integer part, and point (0: none allowed) before a
// fractional part. It does not allocate.
func number(s string, sep, point byte) (float64, bool) {
	var buf [maxNumberLen]byte
	n := 0
	plain := true  // s is as strconv wants it
	group := -1    // digits in the current group of the integer part; -1 before any sep
	intDigits := 0 // digits before the point
	frac := -1     // digits after the point; -1 before the point
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case '0' <= c && c <= '9':
			if frac >= 0 {
				frac++
			} else {
				intDigits++
				if group >= 0 {
					group++
				}
			}
		case c == sep && sep != 0 && frac < 0:
			// The first group has 1 to 3 digits, the others exactly 3.
			if (group < 0 && (intDigits == 0 || intDigits > 3)) || (group >= 0 && group != 3) {
				return 0, false
			}
			group = 0
			plain = false
			continue
		case c == point && point != 0 && frac < 0:
			if group >= 0 && group != 3 {
				return 0, false
			}
			frac = 0
			if c != '.' {
				plain = false
				c = '.'
			}
		default:
			return 0, false
		}
		if n == len(buf) {
			if !plain {
				return 0, false
			}
		} else {
			buf[n] = c
			n++
		}
	}
	if intDigits == 0 || frac == 0 || (frac < 0 && group >= 0 && group != 3) {
		return 0, false
	}
	var f float64
	var err error
	if plain {
		f, err = strconv.ParseFloat(s, 64)
	} else {
		f, err = strconv.ParseFloat(string(buf[:n]), 64)
	}
	return f, err == nil
}

func clamp(pct float64) float64 {
	return min(max(pct, 0), 100)
}

// ratio returns 100×done/total within [0,100], or -1 for a total of 0.
func ratio(done, total float64) float64 {
	if total <= 0 {
		return -1
	}
	return clamp(100 * done / total)
}
