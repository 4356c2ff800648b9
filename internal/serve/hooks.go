package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hashbang/stack/internal/ci"
	"github.com/hashbang/stack/internal/gitserve"
	"github.com/hashbang/stack/internal/policy"
)

// Hooks are what `stack hook pre-receive` and `stack hook post-receive` do
// in a repository served by the daemon.
//
// pre-receive judges every update of a ref the signature policy protects
// with policy.Verifier.CheckPush, trusting the root set in the bare
// repository's git config (SetTrustRoot). Any offending commit rejects the
// whole push, with one "remote:" line per commit, and no ref moves. A push
// to a protected ref of a repository without a trust root is rejected.
//
// post-receive queues the CI jobs of each update (ci.Enqueue) and tells the
// pusher their ids.
func Hooks() gitserve.Hooks {
	return gitserve.Hooks{PreReceive: PreReceive, PostReceive: PostReceive}
}

// PreReceive is the pre-receive callback: see Hooks.
func PreReceive(ctx context.Context, env gitserve.HookEnv, updates []gitserve.RefUpdate, stderr io.Writer) error {
	root, err := policy.ConfiguredRoot(ctx, env.Path)
	if err != nil {
		return fmt.Errorf("stack: cannot read the trust root of %s: %v", env.Repo, err)
	}
	v := &policy.Verifier{Dir: env.Path, Root: root}
	pu := make([]policy.RefUpdate, len(updates))
	for i, u := range updates {
		pu[i] = policy.RefUpdate{Old: u.Old, New: u.New, Ref: u.Ref}
	}
	rejections, err := v.CheckPush(ctx, pu)
	if err != nil {
		return fmt.Errorf("stack: cannot check the push against the signature policy: %v", err)
	}
	verdict := Push{Time: time.Now().UTC(), Repo: env.Repo, Pusher: env.Pusher, Updates: updates, Accepted: len(rejections) == 0}
	defer func() { recordPush(env.DataDir, verdict) }()
	if len(rejections) == 0 {
		return nil
	}
	lines := make([]string, 0, len(rejections)+1)
	for _, r := range rejections {
		lines = append(lines, r.String())
	}
	verdict.Reasons = lines
	if root.Commit == "" {
		lines = append(lines, fmt.Sprintf("stack: the server's operator sets the trust root with: stack repo trust %s COMMIT [--key SHA256:...]", env.Repo))
	}
	return errors.New(strings.Join(lines, "\n"))
}

// PostReceive is the post-receive callback: see Hooks.
func PostReceive(ctx context.Context, env gitserve.HookEnv, updates []gitserve.RefUpdate, stderr io.Writer) {
	queued := 0
	for _, u := range updates {
		jobs, err := ci.Enqueue(env.DataDir, ci.Event{
			Repo: env.Repo, RepoPath: env.Path,
			Ref: u.Ref, Old: u.Old, New: u.New,
			Trigger: ci.Push,
		})
		if err != nil {
			fmt.Fprintf(stderr, "ci: %s: %v\n", u.Ref, err)
			continue
		}
		for _, j := range jobs {
			fmt.Fprintf(stderr, "ci: queued job %s: %s at %s\n", j.ID, j.Pipeline, shortID(j.Commit))
			fmt.Fprintf(stderr, "ci: follow it: ssh -p PORT git@HOST ci logs -f %d (the host and port you push to)\n", j.Seq)
			queued++
		}
	}
	if queued > 0 && !ci.RunnerAlive(env.DataDir) {
		fmt.Fprintln(stderr, "ci: no runner is alive: the jobs start with `stack serve`")
	}
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
