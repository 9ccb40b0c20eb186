package sandboxtest

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/runboxhq/runbox/sandbox"
)

// outputCap is the per-stream cap of the output cases: small, so floods end at once.
const outputCap = 64 << 10

// d4Stdout and d4Stderr are what the D4 programs write: bytes that are not UTF-8, and
// NUL in both streams (the stderr bytes are valid UTF-8).
const (
	d4Stdout = "\xff\xfe\x00abc\x00\xc3\x28\n"
	d4Stderr = "err\x00ok\n"
)

func (s *suite) outputCases() []*hostileCase {
	caps := sandbox.Limits{Stdout: outputCap, Stderr: outputCap}
	return []*hostileCase{
		{
			id: "D1", name: "infinite_stdout",
			code: progs(`chunk = "y" * 4095 + "\n"
while True:
    sys.stdout.write(chunk)
`, `const chunk = 'y'.repeat(4095) + '\n';
for (;;) writeAll(1, chunk);
`, `yes
escaped "yes ended"
`),
			limits: caps,
			check: func(t *testing.T, o *outcome) {
				wantFlood(t, o, "stdout", "y\n")
			},
		},
		{
			id: "D2", name: "infinite_stderr",
			code: progs(`chunk = "y" * 4095 + "\n"
while True:
    sys.stderr.write(chunk)
`, `const chunk = 'y'.repeat(4095) + '\n';
for (;;) writeAll(2, chunk);
`, `yes >&2
escaped "yes ended"
`),
			limits: caps,
			check: func(t *testing.T, o *outcome) {
				wantFlood(t, o, "stderr", "y\n")
			},
		},
		{
			id: "D3", name: "one_1GB_line",
			code: progs(`chunk = "x" * (1 << 20)
for _ in range(1024):
    sys.stdout.write(chunk)
escaped("wrote 1 GiB")
`, `const chunk = Buffer.alloc(1 << 20, 'x');
for (let i = 0; i < 1024; i++) writeAll(1, chunk);
escaped('wrote 1 GiB');
`, `head -c 1073741824 /dev/zero | tr '\0' x
escaped "wrote 1 GiB"
`),
			limits: caps,
			check: func(t *testing.T, o *outcome) {
				wantFlood(t, o, "stdout", "x")
			},
		},
		{
			id: "D4", name: "invalid_utf8_and_nul",
			code: rawProgs(`import sys
sys.stdout.buffer.write(b"\xff\xfe\x00abc\x00\xc3\x28\n")
sys.stdout.buffer.flush()
sys.stderr.buffer.write(b"err\x00ok\n")
sys.stderr.buffer.flush()
`, `process.stdout.write(Buffer.from([0xff, 0xfe, 0x00, 0x61, 0x62, 0x63, 0x00, 0xc3, 0x28, 0x0a]));
process.stderr.write(Buffer.from('err\x00ok\n'));
`, `printf '\xff\xfe\000abc\000\xc3\x28\n'
printf 'err\000ok\n' >&2
`),
			check: func(t *testing.T, o *outcome) {
				wantExit(t, o, sandbox.StatusOK, 0)
				if o.Stdout != d4Stdout || o.Stderr != d4Stderr {
					t.Errorf("stdout %q stderr %q, want %q and %q", o.Stdout, o.Stderr, d4Stdout, d4Stderr)
				}
				// checkCommon has checked the round trip; this checks the wire form.
				b, err := json.Marshal(o.Result)
				if err != nil {
					t.Fatal(err)
				}
				var wire map[string]any
				if err := json.Unmarshal(b, &wire); err != nil {
					t.Fatalf("the result's JSON does not decode: %v\n%s", err, b)
				}
				if wire["stdout_encoding"] != "base64" {
					t.Errorf("stdout_encoding %v for bytes that are not UTF-8, want base64", wire["stdout_encoding"])
				}
				if wire["stderr"] != d4Stderr || wire["stderr_encoding"] != nil {
					t.Errorf("stderr %q encoding %v, want the UTF-8 text with its NUL as is", wire["stderr"], wire["stderr_encoding"])
				}
			},
		},
		{
			id: "D5", name: "file_and_pipe_caps",
			// 2 MiB to a file under a 1 MiB file size limit, then a flood to stdout.
			// Python and Node ignore SIGXFSZ, and see EFBIG; head dies of it.
			code: progs(`size, err = 0, "none"
with open("/work/out.bin", "wb", buffering=0) as f:
    chunk = b"\x01" * 65536
    try:
        while size < (2 << 20):
            size += f.write(chunk)
    except OSError as e:
        err = errno.errorcode.get(e.errno, str(e.errno))
print("size=%d error=%s" % (os.path.getsize("/work/out.bin"), err), flush=True)
while True:
    sys.stdout.write("z" * 4095 + "\n")
`, `const fd = fs.openSync('/work/out.bin', 'w');
const chunk = Buffer.alloc(65536, 1);
let size = 0, err = 'none';
try {
  while (size < 2 << 20) size += fs.writeSync(fd, chunk);
} catch (e) {
  err = e.code;
}
console.log('size=' + fs.statSync('/work/out.bin').size + ' error=' + err);
const line = 'z'.repeat(4095) + '\n';
for (;;) writeAll(1, line);
`, `head -c 2097152 /dev/zero >/work/out.bin 2>/dev/null
rc=$?
echo "size=$(stat -c %s /work/out.bin) rc=$rc"
yes z
`),
			limits: sandbox.Limits{FileSize: 1 << 20, Stdout: outputCap, Stderr: outputCap},
			check: func(t *testing.T, o *outcome) {
				if o.Status != sandbox.StatusOutputLimit || o.Limit != "stdout" {
					t.Fatalf("status %s limit %q, want output_limit \"stdout\"\n%s", o.Status, o.Limit, describe(o))
				}
				if n := intField(t, o.Stdout, "size"); n <= 0 || n > o.Limits.FileSize {
					t.Errorf("the file grew to %d bytes, want more than 0 and at most the file size limit %d", n, o.Limits.FileSize)
				}
				if o.variant == bash {
					// head dies of SIGXFSZ: 128+25.
					if rc := intField(t, o.Stdout, "rc"); rc != 153 {
						t.Errorf("head writing past the file size limit exited %d, want 153 (SIGXFSZ)", rc)
					}
				} else if e, _ := field(o.Stdout, "error"); e != "EFBIG" {
					t.Errorf("writing past the file size limit failed with %s, want EFBIG", e)
				}
			},
		},
		{
			id: "D6", name: "print_then_raise_keeps_order",
			code: rawProgs(`import sys
print("line1")
print("line2", file=sys.stderr)
print("line3")
raise ValueError("boom")
`, `console.log('line1');
console.error('line2');
console.log('line3');
throw new Error('boom');
`, `echo line1
echo line2 >&2
echo line3
no_such_command_sbt
`),
			combined: true,
			check: func(t *testing.T, o *outcome) {
				if o.Status != sandbox.StatusRuntimeError {
					t.Fatalf("status %s, want runtime_error\n%s", o.Status, describe(o))
				}
				rest, ok := strings.CutPrefix(o.Stdout, "line1\nline2\nline3\n")
				if !ok || o.Stderr != "" {
					t.Errorf("combined stdout %q, stderr %q; want stdout to start \"line1\\nline2\\nline3\\n\"", clip(o.Stdout), clip(o.Stderr))
				}
				if o.Diagnostic == nil || !strings.Contains(rest, o.Diagnostic.Message) {
					t.Errorf("diagnostic %+v not read from the error report at the end of the combined output %q", o.Diagnostic, clip(rest))
				}
			},
		},
	}
}

// wantFlood checks a run stopped for flooding stream with repetitions of pattern: the
// head of the flood is kept, up to the cap.
func wantFlood(t *testing.T, o *outcome, stream, pattern string) {
	t.Helper()
	if o.Status != sandbox.StatusOutputLimit || o.Limit != stream {
		t.Fatalf("status %s limit %q, want output_limit %q\n%s", o.Status, o.Limit, stream, describe(o))
	}
	kept, total, truncated, limit := o.Stdout, o.StdoutBytes, o.StdoutTruncated, o.Limits.Stdout
	if stream == "stderr" {
		kept, total, truncated, limit = o.Stderr, o.StderrBytes, o.StderrTruncated, o.Limits.Stderr
	}
	if !truncated || total < limit {
		t.Errorf("%s: truncated=%v with %d bytes written, want truncated and at least the cap of %d", stream, truncated, total, limit)
	}
	if len(kept) == 0 || int64(len(kept)) > limit {
		t.Errorf("%s: %d bytes kept, want the head of the flood, at most the cap of %d", stream, len(kept), limit)
	}
	if strings.Trim(kept, pattern) != "" {
		t.Errorf("%s: kept bytes other than the flood's %q: %q", stream, pattern, clip(kept))
	}
}
