// Package release owns how a revision of the repository reaches an
// environment: which commit an environment deploys, the signature gate a
// protected environment passes, the connection to its cluster (from the
// environment's backend, internal/cluster) and its state repo (a served
// repository of `stack serve`, DATA/git/state/CLUSTER.git). It composes
// cluster, policy, gitserve and deploy so that none of them needs to know
// the others: `stack deploy`, `stack diff`, `stack up` and CI jobs all go
// through it.
package release

import (
	"context"
	"fmt"
	"io"

	"github.com/hashbang/stack/internal/cluster"
	"github.com/hashbang/stack/internal/deploy"
	"github.com/hashbang/stack/internal/gitserve"
	"github.com/hashbang/stack/internal/policy"
	"github.com/hashbang/stack/internal/workspace"
)

// Options say what to deploy and how to reach the cluster.
type Options struct {
	// Access overrides the backend's way to the cluster (--kubeconfig,
	// --context).
	Access cluster.Access
	// Rev is the revision to render (--commit); empty means the work tree
	// for an unprotected environment, the environment's ref (else HEAD)
	// for a protected one.
	Rev string
	// Root is the trust root given on the command line (--root,
	// --root-key); what is not given comes from the clone's git config.
	Root policy.TrustRoot
	// Log receives the verdicts of commits the gate refuses; nil
	// discards them.
	Log io.Writer
}

// Revision is the revision env deploys when rev is what was asked for: rev
// when given; for a protected environment, which never deploys a work
// tree, its ref when the repository has it, else HEAD; else "" (the work
// tree).
func Revision(ctx context.Context, ws *workspace.Workspace, env *cluster.Environment, rev string) string {
	if rev != "" || !env.Protected {
		return rev
	}
	if env.Ref != "" {
		if _, err := policy.ResolveCommit(ctx, ws.Root, env.Ref); err == nil {
			return env.Ref
		}
	}
	return "HEAD"
}

// Tree reads what a render reads: the work tree when rev is empty, else
// the tree of commit rev.
func Tree(ctx context.Context, ws *workspace.Workspace, rev string) (*deploy.Tree, error) {
	if rev != "" {
		return deploy.TreeFromCommit(ctx, ws.Root, rev)
	}
	return deploy.TreeFromDir(ctx, ws.Root)
}

// Render renders env at the revision it deploys (see Revision).
func Render(ctx context.Context, ws *workspace.Workspace, env *cluster.Environment, rev string) (*deploy.Rendered, error) {
	t, err := Tree(ctx, ws, Revision(ctx, ws, env, rev))
	if err != nil {
		return nil, err
	}
	return deploy.Render(t, env)
}

// Deploy renders env at the revision it deploys, opens its deployer and,
// for a protected environment, its signature gate, and deploys. The
// deployer is returned for what it tells (the state repo) also when the
// deploy fails.
func Deploy(ctx context.Context, ws *workspace.Workspace, env *cluster.Environment, o Options, opts deploy.Options) (*deploy.Result, *deploy.Deployer, error) {
	r, err := Render(ctx, ws, env, o.Rev)
	if err != nil {
		return nil, nil, err
	}
	d, err := Open(ctx, ws, env, o)
	if err != nil {
		return nil, nil, err
	}
	res, err := Apply(ctx, ws, env, d, r, o, opts)
	return res, d, err
}

// Apply deploys r with d: a protected environment through its signature
// gate; an unprotected one after recording drift (as `stack diff
// --record` does), taking back the fields of kubectl's everyday edits
// (deploy.KubectlManagers) unless opts says which managers to take back.
func Apply(ctx context.Context, ws *workspace.Workspace, env *cluster.Environment, d *deploy.Deployer, r *deploy.Rendered, o Options, opts deploy.Options) (*deploy.Result, error) {
	if env.Protected {
		gate, err := Gate(ctx, ws, env, o.Root, o.Log)
		if err != nil {
			return nil, err
		}
		d.Gate = gate
	} else {
		if opts.TakeBack == nil {
			opts.TakeBack = deploy.KubectlManagers
		}
		if !opts.DryRun {
			if err := recordDrift(ctx, d, o.Log); err != nil {
				return nil, err
			}
		}
	}
	return d.Deploy(ctx, r, opts)
}

// CheckDrift connects to env's cluster and commits what changed behind
// stack's back since the last deploy to its state repo, as `stack diff
// --record` does: what stack serve's drift timer runs.
func CheckDrift(ctx context.Context, ws *workspace.Workspace, env *cluster.Environment, o Options) error {
	d, err := Open(ctx, ws, env, o)
	if err != nil {
		return err
	}
	return recordDrift(ctx, d, o.Log)
}

// recordDrift commits what changed behind stack's back since the last
// deploy to the state repo, as `stack diff --record` does, saying so.
func recordDrift(ctx context.Context, d *deploy.Deployer, log io.Writer) error {
	drift, err := d.Diff(ctx, nil)
	if err != nil {
		return err
	}
	if drift.Drifted() == 0 {
		return nil
	}
	commit, err := d.RecordDrift(ctx, drift)
	if err != nil {
		return err
	}
	if log != nil && commit != "" {
		fmt.Fprintf(log, "recorded drift of %d objects in %s at %.12s before deploying\n", drift.Drifted(), d.State.Dir, commit)
	}
	return nil
}

// Open connects to env's cluster through its backend and opens the
// cluster's state repo under the data directory, creating it when
// missing: the deployer of env, without a gate (Deploy adds it).
func Open(ctx context.Context, ws *workspace.Workspace, env *cluster.Environment, o Options) (*deploy.Deployer, error) {
	p, err := cluster.Open(ws, env, o.Access)
	if err != nil {
		return nil, err
	}
	cfg, err := p.Config(ctx)
	if err != nil {
		return nil, err
	}
	c, err := deploy.Connect(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("environment %s: %w", env.Name, err)
	}
	data, err := ws.DataDir()
	if err != nil {
		return nil, err
	}
	state, err := StateRepo(data, env.Cluster)
	if err != nil {
		return nil, err
	}
	return &deploy.Deployer{Env: env, Cluster: c, State: state, By: deploy.Identity(ctx, ws.Root), Out: o.Log}, nil
}

// StateRepoName is the name stack serve serves a cluster's state repo
// under: state/CLUSTER.
func StateRepoName(cluster string) string { return "state/" + cluster }

// StateRepo opens the state repo of cluster under the data directory of
// stack serve, creating it (as a served repository) when missing.
func StateRepo(dataDir, cluster string) (*deploy.State, error) {
	name := StateRepoName(cluster)
	dir, err := gitserve.Resolve(dataDir, name)
	if err != nil {
		repo, cerr := gitserve.Create(dataDir, name)
		if cerr != nil {
			return nil, fmt.Errorf("state repo of cluster %s: %w", cluster, cerr)
		}
		dir = repo.Path
	}
	return deploy.OpenState(dir)
}

// Gate is the signature gate of protected environment env: every commit it
// deploys must pass the policy from the trust root (root's fields, else
// the clone's git config) and descend from the last deploy. Refused
// commits are listed on log.
func Gate(ctx context.Context, ws *workspace.Workspace, env *cluster.Environment, root policy.TrustRoot, log io.Writer) (deploy.Gate, error) {
	tr, err := policy.ResolveRoot(ctx, ws.Root, root)
	if err != nil {
		return nil, err
	}
	if tr.Commit == "" {
		return nil, fmt.Errorf("environment %s is protected: name the trust root with --root COMMIT or `git config stack.policy.root COMMIT`", env.Name)
	}
	v := &policy.Verifier{Dir: ws.Root, Root: tr}
	return func(ctx context.Context, commit, last string) error {
		rep, err := v.CheckDeploy(ctx, env.Name, commit, last)
		if err != nil && rep != nil && log != nil {
			for _, vd := range rep.Failed() {
				fmt.Fprintf(log, "refused %.12s %s: %s\n", vd.Commit, vd.Subject, vd.Reason)
			}
		}
		return err
	}, nil
}
