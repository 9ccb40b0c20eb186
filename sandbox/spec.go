package sandbox

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/docker/go-units"
	"github.com/runboxhq/runbox/api"
	"github.com/runboxhq/runbox/lang"
)

// Spec is one run: what to execute and with what. Either Command or Language (with
// Code, or with CodeFile naming one of Files) is set.
type Spec struct {
	// RunID names the run in logs and results; empty means a random one.
	RunID string `json:"run_id,omitempty"`
	// Command is the argv inside the box. Command[0] is an absolute path, or a name
	// looked up in the box's PATH.
	Command []string `json:"command,omitempty"`
	// Language ("python", "javascript", "bash" or an alias) runs Code, or the file
	// CodeFile, with that language's interpreter.
	Language string `json:"language,omitempty"`
	Code     string `json:"code,omitempty"`
	// CodeFile is the name Code is written to (default: the language's, such as
	// main.py), or, without Code, the input file to run.
	CodeFile string `json:"code_file,omitempty"`
	// Args follow the command or the code file on the command line.
	Args []string `json:"args,omitempty"`
	// Files are written to the work directory before the program starts.
	Files []File `json:"files,omitempty"`
	// Stdin is the program's standard input (empty: /dev/null).
	Stdin []byte `json:"stdin,omitempty"`
	// Env adds variables to the box's base environment (BaseEnv); nothing of the
	// host's environment enters the box.
	Env map[string]string `json:"env,omitempty"`
	// Combined gives the program one output for both streams (2>&1): Result.Stdout
	// holds everything in the exact order it was written, under the stdout limit, and
	// Stderr is empty. Two streams captured apart cannot keep their relative order;
	// this is the way to get it.
	Combined bool `json:"combined,omitempty"`
	// Limits bound the run; zero fields take the defaults.
	Limits Limits `json:"limits"`
}

// File is an input file, written to the work directory before the program starts.
type File struct {
	// Name is a relative path with "/" separators, such as "data/in.csv".
	Name       string `json:"name"`
	Content    []byte `json:"content"`
	Executable bool   `json:"executable,omitempty"`
}

// Limits bound one run; see api.Limits.
type Limits = api.Limits

// Result is what one run did; see api.RunResult.
type Result = api.RunResult

// Status is a run's verdict; see api.Status.
type Status = api.Status

// Diagnostic locates an error in the user's code; see api.Diagnostic.
type Diagnostic = api.Diagnostic

// The statuses, for convenience.
const (
	StatusOK           = api.StatusOK
	StatusRuntimeError = api.StatusRuntimeError
	StatusSyntaxError  = api.StatusSyntaxError
	StatusTimeout      = api.StatusTimeout
	StatusOOM          = api.StatusOOM
	StatusOutputLimit  = api.StatusOutputLimit
	StatusSignaled     = api.StatusSignaled
	StatusSandboxError = api.StatusSandboxError
)

// Defaults: every limit is finite unless the caller raises it, up to the Max* bounds.
const (
	DefaultWallTime  = 10 * time.Second
	DefaultMemory    = 256 << 20
	DefaultProcesses = 64
	DefaultOpenFiles = 256
	DefaultFileSize  = 64 << 20
	DefaultStack     = 8 << 20
	DefaultOutput    = 1 << 20 // per stream
	DefaultTmpSize   = 64 << 20
	DefaultTmpInodes = 8192
	// The CPU time limit defaults to the wall time limit.

	MaxWallTime  = time.Hour
	MaxMemory    = 64 << 30
	MinMemory    = 16 << 20 // the box's init takes a few MiB of it
	MaxProcesses = 4096
	MaxOpenFiles = 16384
	MaxFileSize  = 4 << 30
	MaxStack     = 1 << 30
	MaxOutput    = 256 << 20
	MaxTmpSize   = 16 << 30
	MaxTmpInodes = 1 << 20

	MaxFiles      = 4096     // input files per run
	MaxFilesBytes = 64 << 20 // their total size, and the code's
	MaxStdin      = 64 << 20
	MaxEnv        = 256 // variables in Spec.Env
	MaxArgs       = 4096
	MaxArgBytes   = 1 << 20 // command, args and env together
	maxNameLen    = 1024
)

// ErrInvalidSpec is wrapped by every validation error: the caller's spec is wrong, and
// nothing ran.
var ErrInvalidSpec = errors.New("sandbox: invalid spec")

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidSpec, fmt.Sprintf(format, a...))
}

// WithDefaults returns l with every zero field set to its default.
func WithDefaults(l Limits) Limits {
	def := func(v *int64, d int64) {
		if *v == 0 {
			*v = d
		}
	}
	if l.WallTime == 0 {
		l.WallTime = DefaultWallTime
	}
	if l.CPUTime == 0 {
		l.CPUTime = l.WallTime
	}
	def(&l.Memory, DefaultMemory)
	if l.Processes == 0 {
		l.Processes = DefaultProcesses
	}
	if l.OpenFiles == 0 {
		l.OpenFiles = DefaultOpenFiles
	}
	def(&l.FileSize, DefaultFileSize)
	def(&l.Stack, DefaultStack)
	def(&l.Stdout, DefaultOutput)
	def(&l.Stderr, DefaultOutput)
	def(&l.TmpSize, DefaultTmpSize)
	if l.TmpInodes == 0 {
		l.TmpInodes = DefaultTmpInodes
	}
	if l.Network == "" {
		l.Network = api.NetworkNone
	}
	return l
}

// ValidateLimits checks limits that have their defaults filled in.
func ValidateLimits(l Limits) error {
	dur := func(name string, v time.Duration) error {
		if v <= 0 || v > MaxWallTime {
			return invalid("%s %v out of range (0, %v]", name, v, MaxWallTime)
		}
		return nil
	}
	size := func(name string, v, lo, hi int64) error {
		if v < lo || v > hi {
			return invalid("%s %d out of range [%s, %s]", name, v,
				units.BytesSize(float64(lo)), units.BytesSize(float64(hi)))
		}
		return nil
	}
	count := func(name string, v, hi int) error {
		if v < 1 || v > hi {
			return invalid("%s %d out of range [1, %d]", name, v, hi)
		}
		return nil
	}
	return errors.Join(
		dur("wall time", l.WallTime), dur("cpu time", l.CPUTime),
		size("memory", l.Memory, MinMemory, MaxMemory),
		count("processes", l.Processes, MaxProcesses),
		count("open files", l.OpenFiles, MaxOpenFiles),
		size("file size", l.FileSize, 1, MaxFileSize),
		size("stack", l.Stack, 64<<10, MaxStack),
		size("stdout limit", l.Stdout, 1, MaxOutput),
		size("stderr limit", l.Stderr, 1, MaxOutput),
		size("tmp size", l.TmpSize, 64<<10, MaxTmpSize),
		count("tmp inodes", l.TmpInodes, MaxTmpInodes),
		func() error {
			if l.Network != api.NetworkNone && l.Network != api.NetworkLoopback {
				return invalid("network %q: want %q or %q", l.Network, api.NetworkNone, api.NetworkLoopback)
			}
			return nil
		}(),
	)
}

// BaseEnv is the environment of every box, before Spec.Env.
var BaseEnv = map[string]string{
	"PATH":   "/usr/local/bin:/usr/bin:/bin",
	"HOME":   WorkDir,
	"TMPDIR": "/tmp",
	"LANG":   "C.UTF-8",
	"USER":   "sandbox",
	"TERM":   "dumb",
	// Output is flushed as written, so what a killed program printed is kept.
	"PYTHONUNBUFFERED": "1",
}

// WorkDir is the program's working directory, and HOME, in every backend.
const WorkDir = "/work"

// Prepared is a validated spec ready for a backend: defaults filled in, a language
// turned into a command and its code into a file.
type Prepared struct {
	Spec
	// Env is the whole environment of the program, "K=V", sorted.
	Env []string
	// Language is the spec's language, nil for a plain command.
	Language *lang.Language
	// File is the code file that runs, for a language.
	File string
	// WorkDir is where the program runs as it sees it: WorkDir in a box; a backend that
	// runs elsewhere sets its own (error reports name files under it).
	WorkDir string
}

var (
	runIDPattern   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	envNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// NewRunID returns a random run id.
func NewRunID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Prepare validates spec and returns it ready to run. Every error wraps ErrInvalidSpec
// and says what is wrong.
func Prepare(spec Spec) (*Prepared, error) {
	p := &Prepared{Spec: spec, WorkDir: WorkDir}
	if p.RunID == "" {
		p.RunID = NewRunID()
	} else if !runIDPattern.MatchString(p.RunID) {
		return nil, invalid("run id %q: want 1–64 letters, digits, '_', '.' or '-'", p.RunID)
	}
	p.Limits = WithDefaults(spec.Limits)
	if err := ValidateLimits(p.Limits); err != nil {
		return nil, err
	}
	if err := validateFiles(spec.Files); err != nil {
		return nil, err
	}
	if len(spec.Stdin) > MaxStdin {
		return nil, invalid("stdin of %d bytes exceeds %d", len(spec.Stdin), MaxStdin)
	}
	if err := p.resolveCommand(); err != nil {
		return nil, err
	}
	env, err := buildEnv(p.Language, spec.Env)
	if err != nil {
		return nil, err
	}
	p.Env = env
	argBytes := 0
	for _, a := range slices.Concat(p.Command, p.Env) {
		if strings.IndexByte(a, 0) >= 0 {
			return nil, invalid("NUL byte in argument or environment %q", truncate(a))
		}
		argBytes += len(a) + 1
	}
	if len(p.Command) > MaxArgs || argBytes > MaxArgBytes {
		return nil, invalid("command line and environment too large (%d arguments, %d bytes)", len(p.Command), argBytes)
	}
	return p, nil
}

func (p *Prepared) resolveCommand() error {
	if p.Language == nil && p.Spec.Language == "" {
		if len(p.Command) == 0 || p.Command[0] == "" {
			return invalid("neither command nor language given")
		}
		if p.Code != "" || p.CodeFile != "" {
			return invalid("code needs a language")
		}
		p.Command = slices.Concat(p.Command, p.Args)
		return nil
	}
	if len(p.Command) > 0 {
		return invalid("give a command or a language, not both")
	}
	l, ok := lang.Lookup(p.Spec.Language)
	if !ok {
		return invalid("unknown language %q (known: %s)", p.Spec.Language, strings.Join(Languages(), ", "))
	}
	p.Language = l
	if strings.IndexByte(p.Code, 0) >= 0 {
		return invalid("NUL byte in code at offset %d", strings.IndexByte(p.Code, 0))
	}
	p.File = p.CodeFile
	switch {
	case p.Code != "":
		if p.File == "" {
			p.File = l.CodeFile
		}
		if err := validName(p.File); err != nil {
			return err
		}
		if slices.ContainsFunc(p.Files, func(f File) bool { return f.Name == p.File }) {
			return invalid("code file %q is also an input file", p.File)
		}
		if len(p.Code)+totalSize(p.Files) > MaxFilesBytes {
			return invalid("code and files exceed %d bytes", MaxFilesBytes)
		}
		p.Files = append(slices.Clone(p.Files), File{Name: p.File, Content: []byte(p.Code)})
	case p.File != "":
		if !slices.ContainsFunc(p.Files, func(f File) bool { return f.Name == p.File }) {
			return invalid("code file %q is not among the input files", p.File)
		}
	default:
		return invalid("language %s given without code", l.Name)
	}
	p.Command = l.Args(p.File, p.Args)
	return nil
}

// Languages lists the names of the languages a spec may name.
func Languages() []string {
	var names []string
	for _, l := range lang.All() {
		names = append(names, l.Name)
	}
	return names
}

func buildEnv(l *lang.Language, extra map[string]string) ([]string, error) {
	if len(extra) > MaxEnv {
		return nil, invalid("%d environment variables exceed %d", len(extra), MaxEnv)
	}
	env := make(map[string]string, len(BaseEnv)+len(extra)+4)
	for k, v := range BaseEnv {
		env[k] = v
	}
	if l != nil {
		for k, v := range l.Env {
			env[k] = v
		}
	}
	for k, v := range extra {
		if !envNamePattern.MatchString(k) {
			return nil, invalid("environment variable name %q", truncate(k))
		}
		env[k] = v
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out, nil
}

func totalSize(files []File) int {
	n := 0
	for _, f := range files {
		n += len(f.Content)
	}
	return n
}

// validateFiles rejects names that could leave the work directory or clash: absolute
// paths, "..", empty or "." components, NUL, duplicates, and a name that is both a file
// and a directory ("a" and "a/b").
func validateFiles(files []File) error {
	if len(files) > MaxFiles {
		return invalid("%d input files exceed %d", len(files), MaxFiles)
	}
	if totalSize(files) > MaxFilesBytes {
		return invalid("input files exceed %d bytes", MaxFilesBytes)
	}
	seen := make(map[string]bool, len(files))
	dirs := make(map[string]bool)
	for _, f := range files {
		if err := validName(f.Name); err != nil {
			return err
		}
		if seen[f.Name] {
			return invalid("input file %q given twice", f.Name)
		}
		seen[f.Name] = true
		for d := path.Dir(f.Name); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	for _, f := range files {
		if dirs[f.Name] {
			return invalid("input file %q is also a directory of another input file", f.Name)
		}
	}
	return nil
}

func validName(name string) error {
	switch {
	case name == "":
		return invalid("empty input file name")
	case len(name) > maxNameLen:
		return invalid("input file name of %d bytes exceeds %d", len(name), maxNameLen)
	case strings.IndexByte(name, 0) >= 0:
		return invalid("NUL byte in input file name %q", truncate(name))
	case strings.HasPrefix(name, "/"):
		return invalid("input file name %q is absolute; give a path relative to the work directory", name)
	}
	for _, part := range strings.Split(name, "/") {
		switch part {
		case "..":
			return invalid("input file name %q leaves the work directory", name)
		case "", ".":
			return invalid("input file name %q is not clean (empty or '.' component)", name)
		}
		if len(part) > 255 {
			return invalid("input file name %q has a component longer than 255 bytes", truncate(name))
		}
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
