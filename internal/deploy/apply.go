package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/fluxcd/pkg/ssa"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

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
	// TakeBack are the field managers whose fields a deploy takes back
	// without ForceConflicts (KubectlManagers, in unprotected
	// environments); conflicts with any other manager still stop it.
	TakeBack []string
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
	// TakenOver are fields taken from other managers (--force-conflicts,
	// or taken back from kubectl's in an unprotected environment).
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

// record commits what is live of inv to the state repo.
func (d *Deployer) record(ctx context.Context, last *Snapshot, rec *Record, inv Inventory, known map[string]*unstructured.Unstructured, subject, body, st string) (string, error) {
	files, err := d.Cluster.liveFiles(ctx, inv, known)
	if err != nil {
		return "", fmt.Errorf("record the state: %w", err)
	}
	c := &Commit{Record: rec, Inventory: inv, Files: files, Subject: subject, Body: body, Status: st, By: d.By}
	parent := ""
	if last != nil {
		parent, c.Infra = last.Commit, last.Infra
	}
	return d.State.Write(ctx, parent, c)
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
