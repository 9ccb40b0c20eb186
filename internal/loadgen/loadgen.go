// Package loadgen drives a runbox server with many concurrent clients sending a mix of
// benign and hostile programs, and reports what came back: the load test of
// bench/serve-load.sh and of the command line's tests.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/runboxhq/runbox/api"
	"github.com/runboxhq/runbox/client"
)

// Program is one kind of request and the verdicts it may get.
type Program struct {
	Name   string
	Benign bool // its result must be ok with the expected output, or the request is lost
	Req    api.RunRequest
	Want   []api.Status
	Stdout string // for benign programs: the exact output
	Weight int    // relative frequency in the mix
}

// Mix is the default mix: mostly benign Python and JavaScript, with a fork bomb, a
// memory bomb, an output flood and an infinite loop among them.
func Mix() []Program {
	short := api.Limits{WallTime: 2 * time.Second}
	return []Program{
		{Name: "python", Benign: true, Weight: 10, Req: api.RunRequest{Language: "python", Code: "print(sum(range(1000)))"},
			Want: []api.Status{api.StatusOK}, Stdout: "499500\n"},
		{Name: "javascript", Benign: true, Weight: 4, Req: api.RunRequest{Language: "javascript", Code: "console.log([1,2,3].map(x => x * 2).join(','))"},
			Want: []api.Status{api.StatusOK}, Stdout: "2,4,6\n"},
		{Name: "bash", Benign: true, Weight: 4, Req: api.RunRequest{Language: "bash", Code: "echo $((6 * 7))"},
			Want: []api.Status{api.StatusOK}, Stdout: "42\n"},
		{Name: "fork_bomb", Weight: 1, Req: api.RunRequest{Language: "bash", Code: ":(){ :|:& };:", Limits: short},
			Want: []api.Status{api.StatusTimeout, api.StatusOK, api.StatusRuntimeError, api.StatusSignaled}},
		{Name: "memory_bomb", Weight: 1, Req: api.RunRequest{Language: "python", Code: "x = []\nwhile True: x.append(bytearray(16 << 20))", Limits: api.Limits{WallTime: 5 * time.Second, Memory: 64 << 20}},
			Want: []api.Status{api.StatusOOM, api.StatusRuntimeError}},
		{Name: "output_flood", Weight: 1, Req: api.RunRequest{Language: "python", Code: "while True: print('x' * 1000)", Limits: short},
			Want: []api.Status{api.StatusOutputLimit}},
		{Name: "infinite_loop", Weight: 1, Req: api.RunRequest{Language: "javascript", Code: "for (;;) {}", Limits: short},
			Want: []api.Status{api.StatusTimeout}},
	}
}

// Config is a load test.
type Config struct {
	Client   *client.Client
	Clients  int           // concurrent clients
	Duration time.Duration // how long they send
	Programs []Program     // default Mix()
}

// Report is what a load test saw.
type Report struct {
	Sent, Done         int            // requests sent, and answered with a result
	Rejected           int            // 429s (retried after Retry-After; not lost)
	ServerErrors       int            // 5xx
	LostBenign         int            // benign requests that did not end ok with their output
	Unexpected         int            // results whose status the program may not get
	ByStatus           map[string]int // results by program and status
	Errors             []string       // the first few failures, described
	P50, P99, Max      time.Duration  // latency of answered benign requests, retries included
	BenignThroughput   float64        // benign results per second
	Elapsed            time.Duration
	benignLatencies    []time.Duration
	mu                 sync.Mutex
	benignDone         int
	maxRecordedFailure int
}

func (r *Report) fail(format string, a ...any) {
	if len(r.Errors) < r.maxRecordedFailure {
		r.Errors = append(r.Errors, fmt.Sprintf(format, a...))
	}
}

// Run sends requests from cfg.Clients goroutines until cfg.Duration has passed (each
// finishes the request it is on), and reports.
func Run(ctx context.Context, cfg Config) *Report {
	progs := cfg.Programs
	if len(progs) == 0 {
		progs = Mix()
	}
	var bag []int
	for i, p := range progs {
		for range max(p.Weight, 1) {
			bag = append(bag, i)
		}
	}
	rep := &Report{ByStatus: map[string]int{}, maxRecordedFailure: 10}
	start := time.Now()
	stop := start.Add(cfg.Duration)
	var wg sync.WaitGroup
	for range cfg.Clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
			for time.Now().Before(stop) && ctx.Err() == nil {
				one(ctx, cfg.Client, progs[bag[rng.IntN(len(bag))]], rep)
			}
		})
	}
	wg.Wait()
	rep.Elapsed = time.Since(start)
	lat := rep.benignLatencies
	slices.Sort(lat)
	if n := len(lat); n > 0 {
		rep.P50, rep.P99, rep.Max = lat[n/2], lat[min(n-1, n*99/100)], lat[n-1]
	}
	rep.BenignThroughput = float64(rep.benignDone) / rep.Elapsed.Seconds()
	return rep
}

// one sends p until it gets an answer other than 429.
func one(ctx context.Context, c *client.Client, p Program, rep *Report) {
	start := time.Now()
	rep.mu.Lock()
	rep.Sent++
	rep.mu.Unlock()
	for {
		res, err := c.Run(ctx, p.Req)
		var ce *client.Error
		if errors.Is(err, client.ErrOverloaded) && errors.As(err, &ce) {
			rep.mu.Lock()
			rep.Rejected++
			rep.mu.Unlock()
			wait := ce.RetryAfter
			if wait <= 0 {
				wait = time.Second
			}
			// Spread the retries over the wait, so they do not come back as one wave.
			select {
			case <-time.After(wait/2 + rand.N(wait)):
				continue
			case <-ctx.Done():
				return
			}
		}
		took := time.Since(start)
		rep.mu.Lock()
		defer rep.mu.Unlock()
		switch {
		case err != nil && errors.As(err, &ce) && ce.StatusCode >= 500:
			rep.ServerErrors++
			rep.fail("%s: %v", p.Name, err)
		case err != nil:
			rep.fail("%s: %v", p.Name, err)
		}
		if res != nil {
			rep.Done++
			rep.ByStatus[p.Name+" "+string(res.Status)]++
			if !slices.Contains(p.Want, res.Status) {
				rep.Unexpected++
				rep.fail("%s: status %s (%s)", p.Name, res.Status, strings.TrimSpace(res.Error+" "+res.Stderr))
			}
		}
		if p.Benign {
			if err != nil || res == nil || res.Status != api.StatusOK || res.Stdout != p.Stdout {
				rep.LostBenign++
			} else {
				rep.benignDone++
				rep.benignLatencies = append(rep.benignLatencies, took)
			}
		}
		return
	}
}

// String summarizes the report.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d requests in %v: %d results, %d answered 429 (retried), %d 5xx, %d benign lost, %d unexpected verdicts\n",
		r.Sent, r.Elapsed.Round(time.Millisecond), r.Done, r.Rejected, r.ServerErrors, r.LostBenign, r.Unexpected)
	fmt.Fprintf(&b, "benign: %.1f results/s, latency p50 %v p99 %v max %v (retries included)\n",
		r.BenignThroughput, r.P50.Round(time.Millisecond), r.P99.Round(time.Millisecond), r.Max.Round(time.Millisecond))
	keys := make([]string, 0, len(r.ByStatus))
	for k := range r.ByStatus {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "  %-28s %d\n", k, r.ByStatus[k])
	}
	for _, e := range r.Errors {
		fmt.Fprintf(&b, "  failure: %s\n", e)
	}
	return b.String()
}
