package deploy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// plan reads the state, gates protected environments and validates every
// object with a server-side dry run. Nothing is written.
func (d *Deployer) plan(ctx context.Context, r *Rendered, opts Options) (*plan, error) {
	p := &plan{live: map[string]*unstructured.Unstructured{}, final: map[string]*unstructured.Unstructured{}, results: map[string]*ObjectResult{}}
	var err error
	if p.last, err = d.State.Head(ctx); err != nil {
		return nil, err
	}
	if p.last != nil && p.last.Environment() != d.Env.Name {
		return nil, fmt.Errorf("cluster %s runs environment %s (state repo %s): one environment per cluster", d.Env.Cluster, p.last.Environment(), d.State.Dir)
	}
	if d.Env.Protected {
		if r.Commit == "" || r.Dirty {
			return nil, fmt.Errorf("environment %s is protected: deploy a signed commit (--commit REV), not a work tree with changes", d.Env.Name)
		}
		if d.Gate == nil {
			return nil, fmt.Errorf("environment %s is protected and no signature policy gate is configured", d.Env.Name)
		}
		last := ""
		if p.last != nil && p.last.Record != nil {
			last = p.last.Record.Commit
		}
		if err := d.Gate(ctx, r.Commit, last); err != nil {
			return nil, err
		}
	}

	// Copies with namespaces settled: a namespaced object without one goes
	// to "default", as kubectl does.
	var crds []*unstructured.Unstructured
	for _, u := range r.Objects {
		if u.GetKind() == "CustomResourceDefinition" {
			crds = append(crds, u)
		}
	}
	rendered := map[string]bool{}
	newKind := map[string]bool{} // objects of kinds this deploy's CRDs define
	for _, u := range r.Objects {
		u = u.DeepCopy()
		nsd, known, err := d.Cluster.namespaced(u, crds)
		if err != nil {
			return nil, err
		}
		switch {
		case nsd && u.GetNamespace() == "":
			u.SetNamespace("default")
		case !nsd:
			u.SetNamespace("")
		}
		p.objs = append(p.objs, u)
		rendered[KeyOf(u).ID()] = true
		newKind[KeyOf(u).ID()] = !known
	}
	Sort(p.objs)
	p.newInv = InventoryOf(p.objs)
	if p.oldInv, err = d.Cluster.readInventory(ctx, d.Env.Name); err != nil {
		return nil, err
	}
	if p.last != nil {
		p.oldInv = p.last.Inventory.Union(p.oldInv)
	}

	if p.live, err = d.Cluster.getAll(ctx, p.newInv); err != nil {
		return nil, err
	}
	// Generated secrets: the cluster's values, or new ones (generate.go).
	if err := generateSecrets(p.objs, p.live); err != nil {
		return nil, err
	}
	newNamespaces := map[string]bool{}
	for _, u := range p.objs {
		if u.GetKind() == "Namespace" && u.GetAPIVersion() == "v1" && p.live[KeyOf(u).ID()] == nil {
			newNamespaces[u.GetName()] = true
		}
	}
	var now []*unstructured.Unstructured
	for _, u := range p.objs {
		k := KeyOf(u)
		res := &ObjectResult{Object: k.String(), Action: "unchanged"}
		p.results[k.ID()] = res
		switch {
		case newKind[k.ID()]:
			p.deferred = append(p.deferred, u)
			res.Action = "created"
			res.Message = "validated once its CustomResourceDefinition is established"
			continue
		case u.GetNamespace() != "" && newNamespaces[u.GetNamespace()]:
			p.deferred = append(p.deferred, u)
			res.Action = "created"
			res.Message = "validated once namespace " + u.GetNamespace() + " exists"
			continue
		}
		now = append(now, u)
	}
	if errs := d.checkAll(ctx, p, now, opts); len(errs) > 0 {
		return nil, fmt.Errorf("nothing applied: %d of %d objects refused:\n%w", len(errs), len(p.objs), errors.Join(errs...))
	}

	// Prune: objects deployed before, no longer rendered, still applied by
	// stack (an object someone else took over is left alone).
	gone := p.oldInv.Minus(p.newInv)
	goneLive, err := d.Cluster.getAll(ctx, gone)
	if err != nil {
		return nil, err
	}
	for _, k := range gone {
		live := goneLive[k.ID()]
		if live == nil || !appliedBy(live, FieldManager) {
			continue
		}
		p.prune = append(p.prune, live)
		p.results[k.ID()] = &ObjectResult{Object: k.String(), Action: "pruned"}
	}
	return p, nil
}

// checkAll checks objs concurrently and returns the refusals in objs'
// order.
func (d *Deployer) checkAll(ctx context.Context, p *plan, objs []*unstructured.Unstructured, opts Options) []error {
	errs := make([]error, len(objs))
	var mu sync.Mutex // guards p's maps
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrency)
	for i, u := range objs {
		g.Go(func() error {
			errs[i] = d.check(gctx, &mu, p, u, opts)
			return nil
		})
	}
	g.Wait()
	var out []error
	for _, err := range errs {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}

// check validates u by a server-side dry-run apply without taking fields
// from other managers, and notes what applying it would do.
func (d *Deployer) check(ctx context.Context, mu *sync.Mutex, p *plan, u *unstructured.Unstructured, opts Options) error {
	k := KeyOf(u)
	mu.Lock()
	res := p.results[k.ID()]
	live := p.live[k.ID()]
	mu.Unlock()
	dry := u.DeepCopy()
	err := d.Cluster.Client.Patch(ctx, dry, client.Apply, client.FieldOwner(FieldManager), client.DryRunAll)
	if conflicts := conflictsOf(err); len(conflicts) > 0 {
		var foreign []conflict
		for _, c := range conflicts {
			if !slices.Contains(opts.TakeBack, c.manager) {
				foreign = append(foreign, c)
			}
		}
		if len(foreign) > 0 && !opts.ForceConflicts {
			return fmt.Errorf("%s: %s: take them over with `stack deploy %s --force-conflicts`, or stop setting them in the overlay", k, joinConflicts(foreign), d.Env.Name)
		}
		for _, c := range conflicts {
			res.TakenOver = append(res.TakenOver, c.String())
		}
		dry = u.DeepCopy()
		err = d.Cluster.Client.Patch(ctx, dry, client.Apply, client.FieldOwner(FieldManager), client.DryRunAll, client.ForceOwnership)
	}
	if err != nil {
		if live != nil && isImmutable(err) {
			if opts.Force || u.GetAnnotations()[RecreateAnnotation] == "true" {
				res.Action = "recreated"
				return nil
			}
			return fmt.Errorf("%s: %s: the object must be recreated: rerun with --force, or annotate it %s: \"true\"", k, apiMessage(err), RecreateAnnotation)
		}
		return fmt.Errorf("%s: %s", k, apiMessage(err))
	}
	if live == nil {
		res.Action = "created"
		return nil
	}
	if ch := Diff(Clean(live).Object, Clean(dry).Object); len(ch) > 0 {
		res.Action = "configured"
		res.Changes = ch
	}
	return nil
}
