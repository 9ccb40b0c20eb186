package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/runboxhq/runbox/internal/iostreams"
	"github.com/runboxhq/runbox/sandbox"
	"github.com/runboxhq/runbox/sandbox/docker"
	_ "github.com/runboxhq/runbox/sandbox/host"   // registers "host"
	_ "github.com/runboxhq/runbox/sandbox/native" // registers "native"
)

// doctorTimeout bounds the whole report, trial runs included.
const doctorTimeout = 30 * time.Second

// DoctorOptions are the settings of `runbox doctor`.
type DoctorOptions struct {
	IO       *iostreams.IOStreams
	Backends []string // nil: every registered backend, and the queue
	JSON     bool
	// NATS and DataDir say where the submissions queue is, as for runbox serve.
	NATS, DataDir string
}

// BackendReport is one backend's part of `runbox doctor --json`.
type BackendReport struct {
	Backend string          `json:"backend"`
	Works   bool            `json:"works"`
	Checks  []sandbox.Check `json:"checks"`
}

// NewDoctorCmd returns `runbox doctor`. runF replaces the run for tests; nil runs it.
func NewDoctorCmd(ios *iostreams.IOStreams, runF func(context.Context, *DoctorOptions) error) *cobra.Command {
	opts := &DoctorOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "doctor [BACKEND...|queue]",
		Short: "Check which sandbox backends work on this host, and the submissions queue",
		Long: `Check each sandbox backend's requirements on this host (privileges, user namespaces,
cgroup version and delegation, seccomp, Landlock, the Docker engine), then try a run.
For each requirement that is missing it prints what was found and how to fix it.

Then the submissions queue of runbox serve: embedded (in --data-dir, when a
runbox serve runs there) or remote (--nats URL); the submissions waiting and running,
the workers' idle requests, and the cluster's peers.

Exit code: 0 when every backend checked works, 1 otherwise.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Backends = args
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return doctorRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the report as JSON")
	cmd.Flags().StringVar(&opts.NATS, "nats", "", "NATS URLs of a cluster's queue (default: the embedded queue of --data-dir)")
	cmd.Flags().StringVar(&opts.DataDir, "data-dir", "", "the embedded queue's directory, as given to runbox serve")
	return cmd
}

func doctorRun(ctx context.Context, opts *DoctorOptions) error {
	ctx, cancel := context.WithTimeout(ctx, doctorTimeout)
	defer cancel()
	names := opts.Backends
	withQueue := len(names) == 0 || slices.Contains(names, "queue")
	names = slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == "queue" })
	if len(opts.Backends) == 0 {
		names = sandbox.Backends()
	}
	var reports []BackendReport
	allWork := true
	for _, name := range names {
		r := BackendReport{Backend: name}
		var b sandbox.Backend
		var err error
		if name == docker.Name {
			b, err = docker.New(ctx, docker.Config{ClientOpts: dockerEnv})
		} else {
			b, err = sandbox.Open(ctx, name)
		}
		if err != nil {
			r.Checks = []sandbox.Check{{Name: "open", Detail: err.Error()}}
		} else {
			if d, ok := b.(sandbox.Doctor); ok {
				r.Checks = d.Diagnose(ctx)
			} else {
				r.Checks = []sandbox.Check{{Name: "diagnose", Detail: "this backend cannot diagnose itself"}}
			}
			b.Close()
		}
		r.Works = len(r.Checks) > 0
		for _, c := range r.Checks {
			if !c.OK && !c.Optional {
				r.Works = false
			}
		}
		allWork = allWork && r.Works
		reports = append(reports, r)
	}
	if withQueue {
		r := queueReport(ctx, opts.NATS, opts.DataDir)
		allWork = allWork && r.Works
		reports = append(reports, r)
	}
	out := opts.IO.Out
	if opts.JSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(reports); err != nil {
			return err
		}
	} else {
		for _, r := range reports {
			verdict := "works"
			if !r.Works {
				verdict = "does NOT work"
			}
			fmt.Fprintf(out, "%s: %s\n", r.Backend, verdict)
			for _, c := range r.Checks {
				mark := "ok  "
				switch {
				case !c.OK && c.Optional:
					mark = "warn"
				case !c.OK:
					mark = "FAIL"
				}
				fmt.Fprintf(out, "  [%s] %-16s %s\n", mark, c.Name, c.Detail)
				if !c.OK && c.Fix != "" {
					fmt.Fprintf(out, "         %-16s fix: %s\n", "", c.Fix)
				}
			}
		}
	}
	if !allWork {
		return &exitError{code: 1}
	}
	return nil
}
