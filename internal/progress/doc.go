// Package progress recognises the progress lines that command-line tools write while
// they work, and reads a [Value] from each: a percentage and, where the tool says,
// how much is done out of how much.
//
// A [Parser] comes from [New], given either the name of a preset or a regular
// expression of one's own. [Parser.Parse] takes one line of output, without its
// terminator, as a line splitter delivers it; a line that still holds "\r" (output
// split on "\n" only, so that a tool's redraws stayed together) is judged by its last
// non-empty "\r"-separated segment. Lines longer than [MaxLineLen] bytes are never
// progress updates.
//
// # Presets
//
// [Presets] lists them:
//
//   - percent: any line with a parenthesised percentage, "(42%)" or "(42.5%)".
//   - pg_basebackup: the lines of pg_basebackup -P,
//     "714149/1808798 kB (39%), 0/1 tablespace (pgdata/base/1/2)": Done and Total in
//     kB and the tool's own percentage.
//   - rsync: the lines of rsync --progress and --info=progress2,
//     "1,238,099  42%   11.92MB/s    0:00:10 (xfr#1, to-chk=0/1)": Done in bytes and
//     the percentage. Thousands separators may be "," or "." (rsync follows the
//     locale); the K, M, G… suffixes of rsync -h are read as powers of 1000, so
//     Done is approximate after rsync -hh.
//   - curl: the rows of curl's default progress meter (the two header lines are not
//     progress), with Done (received plus sent) and Total in bytes as the meter
//     rounds them; and the "######   42.3%" lines of curl -#. When curl does not
//     know the size, its meter shows 100 from the first byte: Parse reports -1.
//   - dd: the lines of dd status=progress, "1073741824 bytes (1.1 GB, 1.0 GiB)
//     copied, 1 s, 1.1 GB/s", and dd's final summary, which has the same shape:
//     Done in bytes, Percent -1 since dd does not know the total.
//
// The presets match the English output of these tools.
//
// # Regular expressions
//
// Any other spec given to [New] is a regular expression in Go's syntax ([regexp])
// that must name either a group pct, or both a group done and a group total; it may
// also name a group unit. Parse reports a line as progress when the expression
// matches it and the groups that took part hold numbers: digits, optionally with
// commas between groups of three ("1,234,567") and a decimal part after a ".".
// Percent is pct if it took part, else 100×done/total when both took part and total
// is not zero, else -1. Done and Total are 0 unless their groups took part; Unit is
// the text of the unit group, if any. A match in which neither pct nor done took
// part is not progress.
//
// Percent is always within [0, 100], or -1 when unknown.
//
// # Concurrency
//
// A Parser never changes after New returns it: any number of goroutines may call
// Parse at the same time.
package progress
