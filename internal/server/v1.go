package server

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/runboxhq/runbox/api"
	"github.com/runboxhq/runbox/lang"
	"github.com/runboxhq/runbox/sandbox"
)

// postRun is POST /v1/runs: a RunRequest in, the sandbox result out (200 for every
// verdict of the program, 500 for sandbox_error: runbox's own failure).
func (s *Server) postRun(w http.ResponseWriter, r *http.Request) {
	tm := startTiming()
	ticket, done := s.admit(w)
	if ticket == nil {
		return
	}
	defer done()
	var req api.RunRequest
	if err := s.decodeBody(w, r, &req); err != nil {
		answerError(w, err)
		return
	}
	spec, err := s.specFrom(req)
	if err != nil {
		answerError(w, err)
		return
	}
	ctx, cancel := s.runContext(r)
	defer cancel()
	if wantsStream(r) {
		s.streamRun(ctx, w, ticket, spec)
		return
	}
	res, err := s.run(ctx, ticket, spec, "v1", tm)
	if res == nil {
		answerError(w, err)
		return
	}
	code := http.StatusOK
	if res.Status == sandbox.StatusSandboxError {
		code = http.StatusInternalServerError
	}
	writeTimedJSON(w, code, res, tm)
}

// specFrom turns a request into a spec, within the server's maxima.
func (s *Server) specFrom(req api.RunRequest) (sandbox.Spec, error) {
	spec := sandbox.Spec{Language: req.Language, Code: req.Code, CodeFile: req.CodeFile, Command: req.Command,
		Args: req.Args, Env: req.Env, Combined: req.Combined}
	for i, f := range req.Files {
		b, err := f.Decode()
		if err != nil {
			return spec, badRequest(fmt.Sprintf("files[%d].content", i), "%v", err)
		}
		spec.Files = append(spec.Files, sandbox.File{Name: f.Name, Content: b, Executable: f.Executable})
	}
	stdin, err := req.DecodeStdin()
	if err != nil {
		return spec, badRequest("stdin", "%v", err)
	}
	spec.Stdin = stdin
	if spec.Limits, err = s.limits(req.Limits); err != nil {
		return spec, err
	}
	// Validation in one place: the sandbox's, before a slot is taken.
	if _, err := sandbox.Prepare(spec); err != nil {
		return spec, err
	}
	return spec, nil
}

// limits checks requested limits against the server's maxima: one over is a 400
// naming it; one not given takes the sandbox default, lowered to the maximum.
func (s *Server) limits(req sandbox.Limits) (sandbox.Limits, error) {
	top, def := s.cfg.MaxLimits, sandbox.WithDefaults(sandbox.Limits{})
	out := req
	type field struct {
		json          string
		got, max, def int64
		set           func(int64)
	}
	ms := func(d time.Duration) int64 { return d.Milliseconds() }
	fields := []field{
		{"wall_time_ms", ms(req.WallTime), ms(top.WallTime), ms(def.WallTime), func(v int64) { out.WallTime = time.Duration(v) * time.Millisecond }},
		{"cpu_time_ms", ms(req.CPUTime), ms(top.CPUTime), ms(top.CPUTime), func(v int64) { out.CPUTime = time.Duration(v) * time.Millisecond }},
		{"memory_bytes", req.Memory, top.Memory, def.Memory, func(v int64) { out.Memory = v }},
		{"processes", int64(req.Processes), int64(top.Processes), int64(def.Processes), func(v int64) { out.Processes = int(v) }},
		{"open_files", int64(req.OpenFiles), int64(top.OpenFiles), int64(def.OpenFiles), func(v int64) { out.OpenFiles = int(v) }},
		{"file_size_bytes", req.FileSize, top.FileSize, def.FileSize, func(v int64) { out.FileSize = v }},
		{"stack_bytes", req.Stack, top.Stack, def.Stack, func(v int64) { out.Stack = v }},
		{"stdout_bytes", req.Stdout, top.Stdout, def.Stdout, func(v int64) { out.Stdout = v }},
		{"stderr_bytes", req.Stderr, top.Stderr, def.Stderr, func(v int64) { out.Stderr = v }},
		{"tmp_bytes", req.TmpSize, top.TmpSize, def.TmpSize, func(v int64) { out.TmpSize = v }},
		{"tmp_inodes", int64(req.TmpInodes), int64(top.TmpInodes), int64(def.TmpInodes), func(v int64) { out.TmpInodes = int(v) }},
	}
	for _, f := range fields {
		switch {
		case f.got < 0:
			return out, badRequest("limits."+f.json, "limits.%s %d is negative", f.json, f.got)
		case f.got > f.max:
			return out, badRequest("limits."+f.json, "limits.%s %d exceeds this server's maximum %d", f.json, f.got, f.max)
		case f.got == 0 && f.json != "cpu_time_ms":
			f.set(min(f.def, f.max))
		}
	}
	// The CPU time defaults to the wall time, as in the sandbox.
	if req.CPUTime == 0 {
		out.CPUTime = min(out.WallTime, top.CPUTime)
	}
	switch req.Network {
	case "", api.NetworkNone:
		out.Network = api.NetworkNone
	case top.Network:
	default:
		return out, badRequest("limits.network", "limits.network %q is not allowed on this server (allowed: %s)", req.Network, top.Network)
	}
	return out, nil
}

// getLanguages is GET /v1/languages.
func (s *Server) getLanguages(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.languages())
}

// languages lists the languages with their versions, read once.
func (s *Server) languages() []api.Language {
	s.langsOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, l := range lang.All() {
			v, _ := l.Version(ctx)
			s.langs = append(s.langs, api.Language{Name: l.Name, Aliases: slices.Clone(l.Aliases),
				Extensions: slices.Clone(l.Extensions), Version: v})
		}
	})
	return s.langs
}
