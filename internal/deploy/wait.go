package deploy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// wait polls every rendered object's status (kstatus) until all are
// Current, one fails, or the timeout passes; it prints each object's final
// status.
// ErrNotReady marks a deploy whose objects were applied but did not all
// become ready: what to look at is the cluster's (pods, the kubelet), not
// the manifests.
var ErrNotReady = errors.New("not ready")

func (d *Deployer) wait(ctx context.Context, p *plan, opts Options) error {
	deadline := time.Now().Add(opts.Timeout)
	done := map[string]bool{}
	first := true
	var err error
	for {
		var pending, failed []string
		var todo Inventory
		for _, u := range p.objs {
			if k := KeyOf(u); !done[k.ID()] {
				todo = append(todo, k)
			}
		}
		var live map[string]*unstructured.Unstructured
		if first {
			// Unchanged objects were read a moment ago, while planning.
			var changed Inventory
			for _, k := range todo {
				if p.results[k.ID()].Action != "unchanged" {
					changed = append(changed, k)
				}
			}
			if live, err = d.Cluster.getAll(ctx, changed); err != nil {
				return err
			}
			for _, k := range todo {
				if _, ok := live[k.ID()]; !ok {
					live[k.ID()] = p.live[k.ID()]
				}
			}
			first = false
		} else if live, err = d.Cluster.getAll(ctx, todo); err != nil {
			return err
		}
		for id, u := range live {
			p.final[id] = u
		}
		for _, k := range todo {
			st, err := statusOf(k, live[k.ID()])
			if err != nil {
				return err
			}
			res := p.results[k.ID()]
			res.Status, res.Message = string(st.Status), st.Message
			switch st.Status {
			case status.CurrentStatus:
				done[k.ID()] = true
				d.printf("%-10s %s", "ready", res.Object)
			case status.FailedStatus:
				failed = append(failed, res.Object+": "+st.Message)
			default:
				pending = append(pending, res.Object+": "+string(st.Status)+": "+st.Message)
			}
		}
		if len(failed) > 0 {
			return fmt.Errorf("%w: failed: %s", ErrNotReady, strings.Join(failed, "; "))
		}
		if len(pending) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			for _, s := range pending {
				d.printf("%-10s %s", "not ready", s)
			}
			return fmt.Errorf("%w: %d objects not ready after %s: %s", ErrNotReady, len(pending), opts.Timeout, strings.Join(pending, "; "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(opts.Interval):
		}
	}
}

// status computes k's readiness with kstatus; a missing object is
// NotFound.
func (c *Cluster) status(ctx context.Context, k Key) (*status.Result, error) {
	live, err := c.get(ctx, k)
	if err != nil {
		return nil, err
	}
	return statusOf(k, live)
}

// statusOf computes the readiness of live, the object k or nil.
func statusOf(k Key, live *unstructured.Unstructured) (*status.Result, error) {
	if live == nil {
		return &status.Result{Status: status.NotFoundStatus, Message: "not found"}, nil
	}
	st, err := status.Compute(live)
	if err != nil {
		return nil, fmt.Errorf("status of %s: %w", k, err)
	}
	return st, nil
}
