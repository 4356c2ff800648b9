package deploy

import (
	"context"
	"fmt"
	"sort"

	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	sigsyaml "sigs.k8s.io/yaml"
)

// Drift is how the live objects of an environment differ from its state
// repo and from what the checkout renders.
type Drift struct {
	Env         string        `json:"env"`
	Cluster     string        `json:"cluster"`
	StateCommit string        `json:"state_commit,omitempty"`
	Objects     []ObjectDrift `json:"objects"`
	// Recorded is the state repo commit recording the drift (diff --record).
	Recorded string `json:"recorded,omitempty"`
}

// ObjectDrift is one object that differs somewhere.
type ObjectDrift struct {
	Object string `json:"object"`
	// Live, State and Rendered tell where the object exists.
	Live     bool `json:"live"`
	State    bool `json:"state"`
	Rendered bool `json:"rendered"`
	// StateToLive are the fields changed since the state repo recorded the
	// object (From: recorded, To: live): drift behind stack's back.
	StateToLive []Change `json:"state_to_live,omitempty"`
	// LiveToRender are the fields a deploy of the checkout would change
	// (From: live, To: rendered, as the API server would default it).
	LiveToRender []Change `json:"live_to_render,omitempty"`
}

// Drifted counts the objects whose live state differs from the state repo.
func (d *Drift) Drifted() int {
	n := 0
	for _, o := range d.Objects {
		if len(o.StateToLive) > 0 || o.Live != o.State {
			n++
		}
	}
	return n
}

// Diff compares the live objects with the state repo's head and with r
// (nil: only with the state repo). Fields the cluster owns (status,
// resourceVersion, managedFields, ...) are ignored; defaults are ignored
// against r because r is compared as a server-side dry run would apply it.
func (d *Deployer) Diff(ctx context.Context, r *Rendered) (*Drift, error) {
	out := &Drift{Env: d.Env.Name, Cluster: d.Env.Cluster, Objects: []ObjectDrift{}}
	last, err := d.State.Head(ctx)
	if err != nil {
		return nil, err
	}
	var inv Inventory
	state := map[string]map[string]any{}
	if last != nil {
		if last.Environment() != d.Env.Name {
			return nil, fmt.Errorf("cluster %s runs environment %s (state repo %s), not %s", d.Env.Cluster, last.Environment(), d.State.Dir, d.Env.Name)
		}
		out.StateCommit = last.Commit
		inv = last.Inventory
		for _, k := range inv {
			if data, ok := last.Files[k.Path()]; ok {
				var m map[string]any
				if err := sigsyaml.Unmarshal(data, &m); err != nil {
					return nil, fmt.Errorf("state repo %s: %s: %w", d.State.Dir, k.Path(), err)
				}
				state[k.ID()] = m
			}
		}
	}
	rendered := map[string]*unstructured.Unstructured{}
	keys := map[string]Key{}
	for _, k := range inv {
		keys[k.ID()] = k
	}
	if r != nil {
		var crds []*unstructured.Unstructured
		for _, u := range r.Objects {
			if u.GetKind() == "CustomResourceDefinition" {
				crds = append(crds, u)
			}
		}
		for _, u := range r.Objects {
			u = u.DeepCopy()
			nsd, _, err := d.Cluster.namespaced(u, crds)
			if err != nil {
				return nil, err
			}
			if nsd && u.GetNamespace() == "" {
				u.SetNamespace("default")
			} else if !nsd {
				u.SetNamespace("")
			}
			k := KeyOf(u)
			rendered[k.ID()] = u
			if _, ok := keys[k.ID()]; !ok {
				keys[k.ID()] = k
			}
		}
	}
	ids := make([]string, 0, len(keys))
	for id := range keys {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	list := make(Inventory, len(ids))
	for i, id := range ids {
		list[i] = keys[id]
	}
	lives, err := d.Cluster.getAll(ctx, list)
	if err != nil {
		return nil, err
	}
	objs := make([]ObjectDrift, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrency)
	for i, id := range ids {
		g.Go(func() error {
			k, live := keys[id], lives[id]
			o := ObjectDrift{Object: k.String(), Live: live != nil, State: state[id] != nil, Rendered: rendered[id] != nil}
			var liveClean map[string]any
			if live != nil {
				liveClean = Clean(live).Object
			}
			if o.Live && o.State {
				o.StateToLive = Diff(state[id], liveClean)
			}
			if u := rendered[id]; u != nil && live != nil {
				dry := u.DeepCopy()
				if err := generateSecret(dry, live); err != nil { // generate.go
					return err
				}
				if err := d.Cluster.Client.Patch(gctx, dry, client.Apply, client.FieldOwner(FieldManager), client.DryRunAll, client.ForceOwnership); err != nil {
					return fmt.Errorf("%s: %s", k, apiMessage(err))
				}
				o.LiveToRender = Diff(liveClean, Clean(dry).Object)
			}
			if r == nil {
				o.Rendered = o.Live || o.State // not compared
			}
			objs[i] = o
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for _, o := range objs {
		if len(o.StateToLive) > 0 || len(o.LiveToRender) > 0 || o.Live != o.State || o.Live != o.Rendered {
			out.Objects = append(out.Objects, o)
		}
	}
	return out, nil
}

// RecordDrift commits the live objects to the state repo when they differ
// from its head, as their own commit (Stack-Status: drift); the deploy
// record and inventory stay. It returns the commit, or "" when there was
// nothing to record.
func (d *Deployer) RecordDrift(ctx context.Context, drift *Drift) (string, error) {
	if drift.Drifted() == 0 {
		return "", nil
	}
	unlock, err := d.State.Lock()
	if err != nil {
		return "", err
	}
	defer unlock()
	last, err := d.State.Head(ctx)
	if err != nil {
		return "", err
	}
	if last == nil || last.Commit != drift.StateCommit {
		return "", fmt.Errorf("state repo %s moved while checking for drift: run again", d.State.Dir)
	}
	if last.Record == nil {
		return "", nil // provisioned, nothing deployed: nothing to drift
	}
	var body string
	for _, o := range drift.Objects {
		switch {
		case o.State && !o.Live:
			body += o.Object + ": deleted\n"
		case !o.State && o.Live && o.Rendered:
			body += o.Object + ": appeared\n"
		}
		for _, c := range o.StateToLive {
			body += o.Object + " " + c.String() + "\n"
		}
	}
	subject := fmt.Sprintf("drift in %s: %d objects changed behind stack's back", d.Env.Name, drift.Drifted())
	return d.record(ctx, last, last.Record, last.Inventory, nil, subject, body, StatusDrift)
}
