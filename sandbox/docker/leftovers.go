package docker

import (
	"context"
	"fmt"

	"github.com/moby/moby/client"
)

// Leftovers lists the containers of this backend value that still exist, but for the
// warm ones the pool holds (waiting for a run, or being made): after every run has returned, there should be none.
// The conformance suite's host invariants call it.
func (b *Backend) Leftovers(ctx context.Context) ([]string, error) {
	list, err := b.cli.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", labelInstance+"="+b.instance)})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, c := range list.Items {
		if c.Labels[labelRun] == "warm" && b.warm.held(c.ID) {
			continue
		}
		out = append(out, fmt.Sprintf("container %.12s (run %s, %s)", c.ID, c.Labels[labelRun], c.State))
	}
	return out, nil
}
