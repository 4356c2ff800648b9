package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/fluxcd/pkg/ssa"
	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/hashbang/stack/internal/cluster"
)

// RecreateAnnotation, set to "true" on an object, lets a deploy delete and
// recreate it when a change touches an immutable field (a Deployment's
// selector, a Service's clusterIP), as --force does for every object.
const RecreateAnnotation = "stack.hashbang.sh/recreate"

// Gate decides whether commit may be deployed to a protected environment
// whose last deployed commit is last (empty for a first deploy).
type Gate func(ctx context.Context, commit, last string) error

// Deployer deploys rendered environments to one cluster and records them
// in its state repo.
type Deployer struct {
	Env     *cluster.Environment
	Cluster *Cluster
	State   *State
	// Gate must be set for a protected environment: every deploy passes it
	// before anything is applied.
	Gate Gate
	// By is who deploys, recorded in the state repo.
	By Person
	// Out receives one line per object and step; nil discards them.
	Out io.Writer
}

// Options tune a deploy.
type Options struct {
	// DryRun validates and shows the changes without making them.
	DryRun bool
	// Force recreates objects whose change touches an immutable field.
	Force bool
	// ForceConflicts takes over fields that other field managers own.
	ForceConflicts bool
	// Timeout bounds the wait for readiness (default 5 minutes).
	Timeout time.Duration
	// Interval is how often readiness is polled (default 1 second).
	Interval time.Duration
}

// Result is what a deploy did, object by object.
type Result struct {
	Env         string         `json:"env"`
	Cluster     string         `json:"cluster"`
	Commit      string         `json:"commit"`
	StateCommit string         `json:"state_commit,omitempty"`
	Status      string         `json:"status"`
	Objects     []ObjectResult `json:"objects"`
}

// ObjectResult is one object's part in a deploy.
type ObjectResult struct {
	Object string `json:"object"`
	// Action is created, configured, unchanged, recreated or pruned (with
	// --dry-run: what would happen).
	Action string `json:"action"`
	// Status is the object's readiness: Current, InProgress, Failed, ...
	Status  string   `json:"status,omitempty"`
	Message string   `json:"message,omitempty"`
	Changes []Change `json:"changes,omitempty"`
	// TakenOver are fields taken from other managers (--force-conflicts).
	TakenOver []string `json:"taken_over,omitempty"`
}

// Counts summarizes the actions: "2 created, 1 unchanged".
func (r *Result) Counts() string {
	n := map[string]int{}
	for _, o := range r.Objects {
		n[o.Action]++
	}
	var parts []string
	for _, a := range []string{"created", "configured", "recreated", "unchanged", "pruned"} {
		if n[a] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n[a], a))
		}
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

func (d *Deployer) printf(format string, args ...any) {
	if d.Out != nil {
		fmt.Fprintf(d.Out, format+"\n", args...)
	}
}

// plan is what validation found.
type plan struct {
	objs     []*unstructured.Unstructured
	live     map[string]*unstructured.Unstructured // by Key.ID, nil when absent
	final    map[string]*unstructured.Unstructured // as last read while waiting
	deferred []*unstructured.Unstructured          // in namespaces created by this deploy
	prune    []*unstructured.Unstructured          // live objects to delete
	last     *Snapshot
	oldInv   Inventory
	newInv   Inventory
	results  map[string]*ObjectResult
}

// Deploy applies r to the cluster: validate everything (server-side dry
// run) before the first write, apply in stages (namespaces and CRDs first),
// prune, wait for readiness, and commit what is live to the state repo. It
// returns an error on any failure; the result tells each object's fate.
func (d *Deployer) Deploy(ctx context.Context, r *Rendered, opts Options) (*Result, error) {
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Minute
	}
	if opts.Interval == 0 {
		opts.Interval = time.Second
	}
	res := &Result{Env: d.Env.Name, Cluster: d.Env.Cluster, Commit: r.Commit}
	unlock, err := d.State.Lock()
	if err != nil {
		return res, err
	}
	defer unlock()
	p, err := d.plan(ctx, r, opts)
	if err != nil {
		return res, err
	}
	res.Objects = p.resultList()
	if opts.DryRun {
		res.Status = "dry-run"
		return res, nil
	}

	// From here on the cluster changes. The inventory grows first, so that
	// whatever gets created is known to later deploys even if this one dies.
	if err := d.Cluster.writeInventory(ctx, d.Env.Name, p.oldInv.Union(p.newInv)); err != nil {
		return res, err
	}
	applied, err := d.apply(ctx, p, opts)
	res.Objects = p.resultList()
	if err != nil && !applied {
		// Rolled back: the cluster is as it was.
		if werr := d.Cluster.writeInventory(ctx, d.Env.Name, p.oldInv); werr != nil {
			err = errors.Join(err, werr)
		}
		return res, err
	}
	if err == nil {
		err = d.prune(ctx, p)
	}
	if err == nil {
		err = d.wait(ctx, p, opts)
	}
	res.Objects = p.resultList()
	inv := p.oldInv.Union(p.newInv)
	if err == nil {
		inv = p.newInv
		if werr := d.Cluster.writeInventory(ctx, d.Env.Name, inv); werr != nil {
			err = werr
			inv = p.oldInv.Union(p.newInv)
		}
	}
	res.Status = StatusDeployed
	if err != nil {
		res.Status = StatusFailed
	}
	subject := fmt.Sprintf("deploy %s at %s: %s", d.Env.Name, short(r.Commit), res.Counts())
	body := ""
	if err != nil {
		subject = fmt.Sprintf("FAILED deploy %s at %s: %s", d.Env.Name, short(r.Commit), res.Counts())
		body = "The deploy failed after changing the cluster; this commit records what is live.\n\n" + err.Error()
	}
	rec := &Record{Environment: d.Env.Name, Cluster: d.Env.Cluster, Commit: r.Commit, Dirty: r.Dirty, Images: r.Images}
	if len(rec.Images) == 0 {
		rec.Images = nil
	}
	known := p.final
	if err != nil {
		known = nil // what failed may still be changing: read it all again
	}
	// The cluster changed: record it even when the deploy was interrupted.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	id, serr := d.record(rctx, p.last, rec, inv, known, subject, body, res.Status)
	res.StateCommit = id
	if serr != nil {
		err = errors.Join(err, serr)
	}
	return res, err
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	if commit == "" {
		return "(no commit)"
	}
	return commit
}

// plan reads the state, gates protected environments and validates every
// object with a server-side dry run. Nothing is written.
func (d *Deployer) plan(ctx context.Context, r *Rendered, opts Options) (*plan, error) {
	p := &plan{live: map[string]*unstructured.Unstructured{}, final: map[string]*unstructured.Unstructured{}, results: map[string]*ObjectResult{}}
	var err error
	if p.last, err = d.State.Head(ctx); err != nil {
		return nil, err
	}
	if p.last != nil && p.last.Record.Environment != d.Env.Name {
		return nil, fmt.Errorf("cluster %s runs environment %s (state repo %s): one environment per cluster", d.Env.Cluster, p.last.Record.Environment, d.State.Dir)
	}
	if d.Env.Protected {
		if r.Commit == "" || r.Dirty {
			return nil, fmt.Errorf("environment %s is protected: deploy a signed commit (--commit REV), not a work tree with changes", d.Env.Name)
		}
		if d.Gate == nil {
			return nil, fmt.Errorf("environment %s is protected and no signature policy gate is configured", d.Env.Name)
		}
		last := ""
		if p.last != nil {
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
		if !opts.ForceConflicts {
			return fmt.Errorf("%s: %s: take them over with --force-conflicts, or stop setting them in the overlay", k, strings.Join(conflicts, "; "))
		}
		res.TakenOver = conflicts
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

// apply writes the plan: definitions (namespaces, CRDs, cluster roles)
// first, then the objects in namespaces this deploy creates are validated,
// then everything else. applied is false when the cluster was left (or put
// back) as it was.
func (d *Deployer) apply(ctx context.Context, p *plan, opts Options) (applied bool, err error) {
	mgr := ssa.NewResourceManager(d.Cluster.Client, nil, ssa.Owner{Field: FieldManager, Group: "stack.hashbang.sh"})
	mgr.SetConcurrency(concurrency)
	aopts := ssa.DefaultApplyOptions()
	aopts.Force = opts.Force
	aopts.ForceSelector = map[string]string{RecreateAnnotation: "true"}
	aopts.WaitTimeout = opts.Timeout
	aopts.WaitInterval = opts.Interval

	var defs []*unstructured.Unstructured
	for _, u := range p.objs {
		if isDefinition(u) {
			defs = append(defs, u)
		}
	}
	var created []*unstructured.Unstructured
	if len(defs) > 0 {
		cs, err := mgr.ApplyAll(ctx, copies(defs), aopts)
		if err != nil {
			return false, d.rollback(ctx, mgr, created, fmt.Errorf("apply: %s", err))
		}
		for _, e := range cs.Entries {
			if u := entryObject(e, defs); u != nil {
				d.note(p, u, string(e.Action))
				if e.Action == ssa.CreatedAction {
					created = append(created, u)
				}
			}
		}
		if err := d.waitDefinitions(ctx, defs, opts); err != nil {
			return false, d.rollback(ctx, mgr, created, err)
		}
	}
	// Objects in namespaces this deploy created could not be validated
	// before; they are now, before any of them is written.
	if errs := d.checkAll(ctx, p, p.deferred, opts); len(errs) > 0 {
		return false, d.rollback(ctx, mgr, created, fmt.Errorf("nothing applied: %d of %d objects refused:\n%w", len(errs), len(p.objs), errors.Join(errs...)))
	}
	// Validation told what changes: only those objects are applied, the
	// unchanged ones are not even sent.
	var rest []*unstructured.Unstructured
	for _, u := range p.objs {
		if !isDefinition(u) && p.results[KeyOf(u).ID()].Action != "unchanged" {
			rest = append(rest, u)
		}
	}
	if len(rest) > 0 {
		cs, err := mgr.ApplyAll(ctx, copies(rest), aopts)
		if err != nil {
			return true, fmt.Errorf("apply: %s", err)
		}
		for _, e := range cs.Entries {
			if u := entryObject(e, rest); u != nil {
				d.note(p, u, string(e.Action))
			}
		}
	}
	return true, nil
}

// entryObject finds the object of objs that a change set entry is about.
func entryObject(e ssa.ChangeSetEntry, objs []*unstructured.Unstructured) *unstructured.Unstructured {
	for _, u := range objs {
		if e.ObjMetadata.Name == u.GetName() && e.ObjMetadata.Namespace == u.GetNamespace() && e.ObjMetadata.GroupKind == u.GroupVersionKind().GroupKind() {
			return u
		}
	}
	return nil
}

// note records the action ssa reports for u, keeping "recreated".
func (d *Deployer) note(p *plan, u *unstructured.Unstructured, action string) {
	res := p.results[KeyOf(u).ID()]
	if res.Action != "recreated" {
		res.Action = action
	}
	d.printf("%-10s %s", res.Action, res.Object)
}

// rollback deletes the definitions this deploy created, so that a deploy
// refused after its first stage leaves the cluster as it found it.
func (d *Deployer) rollback(ctx context.Context, mgr *ssa.ResourceManager, created []*unstructured.Unstructured, cause error) error {
	if len(created) == 0 {
		return cause
	}
	if _, err := mgr.DeleteAll(ctx, copies(created), ssa.DefaultDeleteOptions()); err != nil {
		return errors.Join(cause, fmt.Errorf("roll back: %w", err))
	}
	var names []string
	for _, u := range created {
		names = append(names, KeyOf(u).String())
	}
	return fmt.Errorf("%w\n(rolled back: deleted %s, created by this deploy)", cause, strings.Join(names, ", "))
}

// waitDefinitions waits until the CRDs are established and the namespaces
// active, so that the next stage can use them.
func (d *Deployer) waitDefinitions(ctx context.Context, defs []*unstructured.Unstructured, opts Options) error {
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	for {
		pending := ""
		for _, u := range defs {
			st, err := d.Cluster.status(ctx, KeyOf(u))
			if err != nil {
				return err
			}
			if st.Status != status.CurrentStatus {
				pending = KeyOf(u).String() + ": " + st.Message
				break
			}
		}
		if pending == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready after %s: %s", opts.Timeout, pending)
		case <-time.After(opts.Interval):
		}
	}
}

// prune deletes what stack deployed before and no longer renders.
func (d *Deployer) prune(ctx context.Context, p *plan) error {
	if len(p.prune) == 0 {
		return nil
	}
	mgr := ssa.NewResourceManager(d.Cluster.Client, nil, ssa.Owner{Field: FieldManager, Group: "stack.hashbang.sh"})
	_, err := mgr.DeleteAll(ctx, copies(p.prune), ssa.DefaultDeleteOptions())
	for _, u := range p.prune {
		d.printf("%-10s %s", "pruned", KeyOf(u).String())
	}
	if err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	return nil
}

// wait polls every rendered object's status (kstatus) until all are
// Current, one fails, or the timeout passes; it prints each object's final
// status.
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
			return fmt.Errorf("failed: %s", strings.Join(failed, "; "))
		}
		if len(pending) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			for _, s := range pending {
				d.printf("%-10s %s", "not ready", s)
			}
			return fmt.Errorf("%d objects not ready after %s: %s", len(pending), opts.Timeout, strings.Join(pending, "; "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(opts.Interval):
		}
	}
}

// record commits what is live of inv to the state repo.
func (d *Deployer) record(ctx context.Context, last *Snapshot, rec *Record, inv Inventory, known map[string]*unstructured.Unstructured, subject, body, st string) (string, error) {
	files, err := d.Cluster.liveFiles(ctx, inv, known)
	if err != nil {
		return "", fmt.Errorf("record the state: %w", err)
	}
	parent := ""
	if last != nil {
		parent = last.Commit
	}
	return d.State.Write(ctx, parent, &Commit{Record: rec, Inventory: inv, Files: files, Subject: subject, Body: body, Status: st, By: d.By})
}

// liveFiles reads the live objects of inv, cleaned, as state repo files;
// those in known (by Key.ID) were just read and are taken from there.
// Objects that do not exist are left out.
func (c *Cluster) liveFiles(ctx context.Context, inv Inventory, known map[string]*unstructured.Unstructured) (map[string][]byte, error) {
	files := map[string][]byte{}
	var unknown Inventory
	for _, k := range inv {
		if _, ok := known[k.ID()]; !ok {
			unknown = append(unknown, k)
		}
	}
	all, err := c.getAll(ctx, unknown)
	if err != nil {
		return nil, err
	}
	for id, u := range known {
		all[id] = u
	}
	for _, k := range inv {
		live := all[k.ID()]
		if live == nil {
			continue
		}
		data, err := sigsyaml.Marshal(Clean(live).Object)
		if err != nil {
			return nil, err
		}
		files[k.Path()] = data
	}
	return files, nil
}

// concurrency is how many requests a deploy has in flight at once.
const concurrency = 8

// getAll reads the live objects of keys concurrently, by Key.ID; absent
// objects map to nil.
func (c *Cluster) getAll(ctx context.Context, keys []Key) (map[string]*unstructured.Unstructured, error) {
	objs := make([]*unstructured.Unstructured, len(keys))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrency)
	for i, k := range keys {
		g.Go(func() error {
			u, err := c.get(gctx, k)
			objs[i] = u
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := make(map[string]*unstructured.Unstructured, len(keys))
	for i, k := range keys {
		out[k.ID()] = objs[i]
	}
	return out, nil
}

// get reads the live object k; nil when it does not exist.
func (c *Cluster) get(ctx context.Context, k Key) (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(k.APIVersion)
	u.SetKind(k.Kind)
	err := c.Client.Get(ctx, client.ObjectKey{Namespace: k.Namespace, Name: k.Name}, u)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil && strings.Contains(err.Error(), "no matches for kind"):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", k, err)
	}
	return u, nil
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

func (p *plan) resultList() []ObjectResult {
	out := make([]ObjectResult, 0, len(p.results))
	for _, u := range p.objs {
		out = append(out, *p.results[KeyOf(u).ID()])
	}
	var pruned []ObjectResult
	for _, u := range p.prune {
		pruned = append(pruned, *p.results[KeyOf(u).ID()])
	}
	sort.Slice(pruned, func(i, j int) bool { return pruned[i].Object < pruned[j].Object })
	return append(out, pruned...)
}

func copies(objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	out := make([]*unstructured.Unstructured, len(objs))
	for i, u := range objs {
		out[i] = u.DeepCopy()
	}
	return out
}

// isDefinition tells objects applied in the first stage: what other
// objects need to exist.
func isDefinition(u *unstructured.Unstructured) bool {
	switch {
	case u.GetKind() == "Namespace" && u.GetAPIVersion() == "v1":
		return true
	case u.GetKind() == "CustomResourceDefinition" && strings.HasPrefix(u.GetAPIVersion(), "apiextensions.k8s.io/"):
		return true
	}
	return false
}

// appliedBy tells whether manager has applied (server-side) fields of u.
func appliedBy(u *unstructured.Unstructured, manager string) bool {
	for _, mf := range u.GetManagedFields() {
		if mf.Manager == manager && mf.Operation == metav1.ManagedFieldsOperationApply {
			return true
		}
	}
	return false
}

// conflictsOf lists the fields of a server-side apply conflict with the
// managers that own them: ".spec.replicas (owned by kubectl-edit)".
func conflictsOf(err error) []string {
	if err == nil || !apierrors.IsConflict(err) {
		return nil
	}
	var st apierrors.APIStatus
	if !errors.As(err, &st) || st.Status().Details == nil {
		return nil
	}
	var out []string
	for _, c := range st.Status().Details.Causes {
		if c.Type != metav1.CauseTypeFieldManagerConflict {
			continue
		}
		who := c.Message
		if i := strings.Index(who, `"`); i >= 0 {
			if j := strings.Index(who[i+1:], `"`); j >= 0 {
				who = who[i+1 : i+1+j]
			}
		}
		out = append(out, fmt.Sprintf("%s is owned by %s", c.Field, who))
	}
	return out
}

// isImmutable tells an API error refusing a change to an immutable field.
func isImmutable(err error) bool {
	return apierrors.IsInvalid(err) && strings.Contains(err.Error(), "immutable")
}

// apiMessage is an API error's message on one line.
func apiMessage(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
