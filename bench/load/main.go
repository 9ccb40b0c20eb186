// Command load drives a running `runbox serve` with concurrent clients sending a mix of
// benign and hostile programs (internal/loadgen), samples the server's resident memory
// once a second, and prints the report. bench/serve-load.sh runs it.
//
//	go run ./bench/load -url http://127.0.0.1:8080 -clients 200 -duration 60s -pid PID
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/runboxhq/runbox/client"
	"github.com/runboxhq/runbox/internal/loadgen"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:8080", "the server")
	clients := flag.Int("clients", 200, "concurrent clients")
	duration := flag.Duration("duration", time.Minute, "how long they send")
	pid := flag.Int("pid", 0, "the server's pid, to sample its memory (0: do not)")
	token := flag.String("token", "", "bearer token")
	flag.Parse()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *clients, MaxConnsPerHost: 0}}
	c, err := client.New(*url, client.WithToken(*token), client.WithHTTPClient(hc))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx := context.Background()
	if err := c.Ready(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "server not ready:", err)
		os.Exit(1)
	}
	var rss []int64
	done := make(chan struct{})
	if *pid > 0 {
		go func() {
			for {
				rss = append(rss, rssKiB(*pid))
				select {
				case <-done:
					return
				case <-time.After(time.Second):
				}
			}
		}()
	}
	rep := loadgen.Run(ctx, loadgen.Config{Client: c, Clients: *clients, Duration: *duration})
	close(done)
	fmt.Print(rep)
	if len(rss) > 2 {
		peak := int64(0)
		for _, v := range rss {
			peak = max(peak, v)
		}
		fmt.Printf("server RSS: %d MiB at the start, %d MiB peak, %d MiB at the end (%d samples)\n",
			rss[0]>>10, peak>>10, rss[len(rss)-1]>>10, len(rss))
	}
	if rep.ServerErrors > 0 || rep.LostBenign > 0 || rep.Unexpected > 0 {
		fmt.Println("FAILED: 5xx, lost benign requests or unexpected verdicts")
		os.Exit(1)
	}
	fmt.Println("passed: zero 5xx, zero lost benign requests, every verdict as expected")
}

// rssKiB reads a process's resident memory.
func rssKiB(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}
