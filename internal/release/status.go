package release

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"sort"
	"time"

	"github.com/hashbang/stack/internal/cluster"
	"github.com/hashbang/stack/internal/deploy"
	"github.com/hashbang/stack/internal/gitserve"
	"github.com/hashbang/stack/internal/workspace"
)

// Status is what the state repo says of an environment: the last deploy
// (source commit, who, when, images), the last infrastructure change, and
// the recent history, drift included.
type Status struct {
	Environment string              `json:"environment"`
	Cluster     string              `json:"cluster"`
	Deployed    *deploy.Record      `json:"deployed,omitempty"`
	Infra       *deploy.InfraRecord `json:"infra,omitempty"`
	History     []deploy.Entry      `json:"history"`
	State       string              `json:"state"`
}

// ReadStatus reads env's status from its cluster's state repo under dataDir.
func ReadStatus(ctx context.Context, dataDir string, env *cluster.Environment) (*Status, error) {
	st := &Status{Environment: env.Name, Cluster: env.Cluster, History: []deploy.Entry{}, State: filepath.Join(gitserve.RepoRoot(dataDir), StateRepoName(env.Cluster)+".git")}
	dir, err := gitserve.Resolve(dataDir, StateRepoName(env.Cluster))
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil // nothing deployed or provisioned yet
	}
	if err != nil {
		return nil, err
	}
	state, err := deploy.OpenState(dir)
	if err != nil {
		return nil, err
	}
	st.State = state.Dir
	snap, err := state.Head(ctx)
	if err != nil {
		return nil, err
	}
	if snap != nil {
		st.Deployed, st.Infra = snap.Record, snap.Infra
	}
	if st.History, err = state.Log(ctx, 5); err != nil {
		return nil, err
	}
	return st, nil
}

// LastDeploy is the newest deploy of the history (deployed or failed), or
// nil.
func (st *Status) LastDeploy() *deploy.Entry {
	for i, e := range st.History {
		if e.Status == deploy.StatusDeployed || e.Status == deploy.StatusFailed {
			return &st.History[i]
		}
	}
	return nil
}

// Statuses reads the status of every environment of ws.
func Statuses(ctx context.Context, ws *workspace.Workspace, dataDir string) ([]*Status, error) {
	names, err := cluster.Names(ws)
	if err != nil {
		return nil, err
	}
	var out []*Status
	for _, n := range names {
		env, err := cluster.Load(ws, n)
		if err != nil {
			return out, err
		}
		st, err := ReadStatus(ctx, dataDir, env)
		if err != nil {
			return out, err
		}
		out = append(out, st)
	}
	return out, nil
}

// Write prints the status as lines a person reads.
func (st *Status) Write(w io.Writer) {
	fmt.Fprintf(w, "environment %s (cluster %s)\n", st.Environment, st.Cluster)
	if st.Deployed == nil && st.Infra == nil {
		fmt.Fprintf(w, "  nothing deployed yet (state repo %s: %s)\n", StateRepoName(st.Cluster), orNone(st.State))
		return
	}
	if d := st.Deployed; d != nil {
		commit := d.Commit
		if commit == "" {
			commit = "(a work tree)"
		} else if d.Dirty {
			commit += " (with changes)"
		}
		fmt.Fprintf(w, "  deployed:  %s\n", commit)
		if e := st.LastDeploy(); e != nil {
			fmt.Fprintf(w, "  by:        %s, %s (%s)\n", e.By, e.Time.Format(time.RFC3339), e.Status)
		}
		names := make([]string, 0, len(d.Images))
		for n := range d.Images {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(w, "  image:     %s %s\n", n, d.Images[n])
		}
	}
	if in := st.Infra; in != nil {
		fmt.Fprintf(w, "  infra:     from %s\n", shortCommit(in.Commit))
	}
	fmt.Fprintln(w, "  history:")
	for _, e := range st.History {
		fmt.Fprintf(w, "    %.12s %-8s %s  %s\n", e.Commit, e.Status, e.Time.Format("2006-01-02 15:04"), e.Subject)
	}
}

// StatusCommand is the git server's `status ENV`: the environment's status
// from its state repo, for keys that may read that repository.
func StatusCommand(ws *workspace.Workspace, dataDir string) gitserve.CommandFunc {
	return func(ctx context.Context, sess *gitserve.Session) int {
		if len(sess.Args) != 1 {
			fmt.Fprintln(sess.Stderr, "stack: usage: status ENV")
			return 2
		}
		env, err := cluster.Load(ws, sess.Args[0])
		if err == nil && !sess.CanRead(StateRepoName(env.Cluster)) {
			err = fmt.Errorf("you may not read the state repo %s of environment %s", StateRepoName(env.Cluster), env.Name)
		}
		var st *Status
		if err == nil {
			st, err = ReadStatus(ctx, dataDir, env)
		}
		if err != nil {
			fmt.Fprintf(sess.Stderr, "stack: %v\n", err)
			return 1
		}
		st.Write(sess.Stdout)
		return 0
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
