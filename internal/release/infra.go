package release

import (
	"bytes"
	"context"
	"fmt"
	"path"

	"go.yaml.in/yaml/v3"

	"github.com/hashbang/stack/internal/cluster"
	"github.com/hashbang/stack/internal/deploy"
	"github.com/hashbang/stack/internal/workspace"
)

// Infra is the provisioning of an environment's cluster from its
// declaration at the revision the environment deploys: the work tree of an
// unprotected environment, a commit of a protected one (which must pass
// the same signature gate as a deploy).
type Infra struct {
	// Env is the environment as declared at the revision.
	Env  *cluster.Environment
	Tree *deploy.Tree
	P    cluster.Provisioner

	ws *workspace.Workspace
	o  Options
}

// InfraResult is what an apply or destroy did.
type InfraResult struct {
	Provisioned *cluster.Provisioned `json:"provisioned,omitempty"`
	// StateCommit is the state repo's commit recording it; empty when
	// nothing changed.
	StateCommit string `json:"stateCommit,omitempty"`
	State       string `json:"state"`
}

// OpenInfra reads env's declaration at the revision it deploys (see
// Revision) and opens its backend's provisioner.
func OpenInfra(ctx context.Context, ws *workspace.Workspace, env *cluster.Environment, o Options) (*Infra, error) {
	t, err := Tree(ctx, ws, Revision(ctx, ws, env, o.Rev))
	if err != nil {
		return nil, err
	}
	declared := env
	if o.Rev != "" || env.Protected {
		file := path.Join("infra", env.Name, cluster.EnvironmentFile)
		data, err := t.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("environment %s at %.12s: no %s: %w", env.Name, t.Commit, file, err)
		}
		if declared, err = cluster.Parse(file+"@"+shortCommit(t.Commit), data); err != nil {
			return nil, err
		}
		declared.Name, declared.Dir, declared.NodeDir = env.Name, env.Dir, env.NodeDir
	}
	p, err := cluster.Provision(ws, declared)
	if err != nil {
		return nil, err
	}
	return &Infra{Env: declared, Tree: t, P: p, ws: ws, o: o}, nil
}

func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

// Plan says what Apply would change.
func (in *Infra) Plan(ctx context.Context) (cluster.Plan, error) { return in.P.Plan(ctx) }

// Apply provisions the cluster and records what exists in its state repo
// as its own commit (none when nothing changed), holding the state repo's
// lock throughout: one apply or deploy per cluster at a time.
func (in *Infra) Apply(ctx context.Context, ao cluster.ApplyOptions) (*InfraResult, error) {
	return in.change(ctx, func(last *deploy.Snapshot) (*cluster.Provisioned, string, error) {
		plan, err := in.P.Plan(ctx)
		if err != nil {
			return nil, "", err
		}
		prov, err := in.P.Apply(ctx, plan, ao)
		if err != nil {
			return nil, "", err
		}
		subject := fmt.Sprintf("infra: %s", prov.Summary)
		return prov, subject, nil
	})
}

// Destroy deletes the cluster and records that in the state repo.
func (in *Infra) Destroy(ctx context.Context, ao cluster.ApplyOptions) (*InfraResult, error) {
	return in.change(ctx, func(last *deploy.Snapshot) (*cluster.Provisioned, string, error) {
		gone, err := in.P.Destroy(ctx, ao)
		if err != nil || !gone {
			return nil, "", err
		}
		return &cluster.Provisioned{Summary: "destroyed"}, fmt.Sprintf("infra: destroyed cluster %s", in.Env.Cluster), nil
	})
}

// change runs do under the state repo's lock, after the gate of a
// protected environment, and records what it provisioned.
func (in *Infra) change(ctx context.Context, do func(*deploy.Snapshot) (*cluster.Provisioned, string, error)) (*InfraResult, error) {
	data, err := in.ws.DataDir()
	if err != nil {
		return nil, err
	}
	state, err := StateRepo(data, in.Env.Cluster)
	if err != nil {
		return nil, err
	}
	unlock, err := state.Lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	last, err := state.Head(ctx)
	if err != nil {
		return nil, err
	}
	if last != nil && last.Environment() != in.Env.Name {
		return nil, fmt.Errorf("cluster %s runs environment %s (state repo %s): one environment per cluster", in.Env.Cluster, last.Environment(), state.Dir)
	}
	if in.Env.Protected {
		if err := in.gate(ctx, last); err != nil {
			return nil, err
		}
	}
	prov, subject, err := do(last)
	res := &InfraResult{Provisioned: prov, State: state.Dir}
	if err != nil || prov == nil {
		return res, err
	}
	rec := &deploy.InfraRecord{Environment: in.Env.Name, Cluster: in.Env.Cluster, Commit: in.Tree.Commit, Dirty: in.Tree.Dirty, Provisioned: prov.Record}
	if last != nil && last.Infra != nil && sameYAML(last.Infra, rec) {
		return res, nil
	}
	res.StateCommit, err = state.WriteInfra(ctx, last, rec, subject, "", deploy.Identity(ctx, in.ws.Root))
	return res, err
}

// gate passes a protected environment's change through the signature
// policy: a commit (not a work tree) that descends from the last one
// applied to the cluster.
func (in *Infra) gate(ctx context.Context, last *deploy.Snapshot) error {
	if in.Tree.Commit == "" || in.Tree.Dirty {
		return fmt.Errorf("environment %s is protected: provision from a signed commit (--commit REV), not a work tree with changes", in.Env.Name)
	}
	g, err := Gate(ctx, in.ws, in.Env, in.o.Root, in.o.Log)
	if err != nil {
		return err
	}
	prev := ""
	switch {
	case last != nil && last.Infra != nil:
		prev = last.Infra.Commit
	case last != nil && last.Record != nil:
		prev = last.Record.Commit
	}
	return g(ctx, in.Tree.Commit, prev)
}

// sameYAML reports whether a and b marshal alike, but for the source
// commit: an apply that changed nothing records nothing.
func sameYAML(a, b *deploy.InfraRecord) bool {
	ya, err1 := normalYAML(*a)
	yb, err2 := normalYAML(*b)
	return err1 == nil && err2 == nil && bytes.Equal(ya, yb)
}

// normalYAML marshals r without its source, keys sorted at every level
// (as a record read back from the state repo has them).
func normalYAML(r deploy.InfraRecord) ([]byte, error) {
	r.Commit, r.Dirty = "", false
	data, err := yaml.Marshal(&r)
	if err != nil {
		return nil, err
	}
	var generic any
	if err := yaml.Unmarshal(data, &generic); err != nil {
		return nil, err
	}
	return yaml.Marshal(generic)
}
