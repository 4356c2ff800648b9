package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hashbang/stack/internal/ci"
	"github.com/hashbang/stack/internal/cluster"
	"github.com/hashbang/stack/internal/gitserve"
	"github.com/hashbang/stack/internal/policy"
	"github.com/hashbang/stack/internal/registry"
	"github.com/hashbang/stack/internal/release"
	"github.com/hashbang/stack/internal/serve"
	"github.com/hashbang/stack/internal/ui"
)

// maxJobs is the most CI jobs --jobs lets run at once: each is a checkout
// and whatever its pipeline builds, so more is a typo, not a machine.
const maxJobs = 64

// The bounds of --job-memory and --job-pids.
const (
	minJobMemory = 16 << 20
	minJobPids   = 16
	maxJobPids   = 1 << 20
)

func newServeCmd(g *globals) *cobra.Command {
	var (
		cfg        serve.Config
		drift      []string
		accessFrom string
	)
	var jobMemory, operatorKey string
	var jobPids int
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the self-hosted registry, git server and CI in the foreground",
		Long: `serve runs, in one process and until SIGINT or SIGTERM:

  - an OCI distribution registry (--registry-addr, default 127.0.0.1:5000);
    anonymous pushes on loopback only, elsewhere --htpasswd is required;
  - an SSH git server with git-shell semantics (--ssh-addr, default
    127.0.0.1:2222) for the keys in the repository's config/admins and
    config/developers, as config/git.yaml allows; pushes to refs the
    signature policy protects must be signed as config/policy.yaml says,
    trusting the root set with ` + "`stack repo trust`" + `;
  - the CI runner: pushes and timers queue the pipelines of ci/pipelines.yaml;
    each job runs sandboxed (as root: a user of its own, its own PID and mount
    namespaces seeing the system directories read-only and its work tree,
    --job-memory and --job-pids limits).

Everything lives under --data (default CACHE/serve): registry/, ssh/, git/, ci/.
It prints where each part listens and the SSH host key's fingerprint.`,
		Example: `  stack serve
  stack serve --data /var/lib/stack --ssh-addr 127.0.0.1:22
  stack serve --registry-addr 0.0.0.0:5000 --htpasswd /etc/stack/htpasswd`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if n := cfg.CI.Concurrency; n < 1 || n > maxJobs {
				return fmt.Errorf("--jobs %d: the number of CI jobs run at once must be from 1 to %d", n, maxJobs)
			}
			mem, err := ci.ParseSize(jobMemory)
			if err != nil {
				return fmt.Errorf("--job-memory: %w", err)
			}
			if mem < minJobMemory {
				return fmt.Errorf("--job-memory %s: a job needs at least 16MiB", jobMemory)
			}
			if n := jobPids; n < minJobPids || n > maxJobPids {
				return fmt.Errorf("--job-pids %d: the number of processes a job may have must be from %d to %d", n, minJobPids, maxJobPids)
			}
			cfg.CI.MemoryLimit, cfg.CI.PidsLimit = mem, jobPids
			if operatorKey != "" {
				if cfg.OperatorKey, err = gitserve.ReadPublicKey(operatorKey); err != nil {
					return fmt.Errorf("--operator-key: %w", err)
				}
			}
			if serve.NeedInit() {
				code, err := serve.Init()
				return exitCode(code, err)
			}
			ws, err := g.workspace()
			if err != nil {
				return err
			}
			if cfg.DataDir, err = ws.DataDir(); err != nil {
				return err
			}
			cfg.ConfigDir = filepath.Join(ws.Root, "config")
			if accessFrom != "off" {
				repo, ref, ok := strings.Cut(accessFrom, ":")
				if !ok || gitserve.ValidName(repo) != nil || !strings.HasPrefix(ref, "refs/") {
					return fmt.Errorf("--access-from %q: give REPO:REF, like stack:refs/heads/production, or off", accessFrom)
				}
				cfg.AccessFrom = &gitserve.ConfigRef{Repo: repo, Ref: ref}
			}
			cfg.Commands = map[string]gitserve.CommandFunc{"status": release.StatusCommand(ws, cfg.DataDir)}
			cfg.Environments = func(ctx context.Context) ([]*release.Status, error) { return release.Statuses(ctx, ws, cfg.DataDir) }
			if len(drift) > 0 {
				envs := make([]*cluster.Environment, 0, len(drift))
				for _, name := range drift {
					env, err := cluster.Load(ws, name)
					if err != nil {
						return fmt.Errorf("--drift: %w", err)
					}
					envs = append(envs, env)
				}
				log := cmd.ErrOrStderr()
				cfg.Drift = func(ctx context.Context) error {
					var errs []error
					for _, env := range envs {
						errs = append(errs, release.CheckDrift(ctx, ws, env, release.Options{Log: log}))
					}
					return errors.Join(errs...)
				}
			}
			cfg.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			cfg.Out = stdout(cmd)
			srv, err := serve.New(cfg)
			if err != nil {
				return err
			}
			return srv.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&cfg.RegistryAddr, "registry-addr", registry.DefaultAddr, "address the registry listens on")
	cmd.Flags().StringVar(&cfg.Htpasswd, "htpasswd", "", "bcrypt htpasswd file: the registry asks for credentials (required off loopback)")
	cmd.Flags().StringVar(&cfg.PushPasswordFile, "push-password-file", "", "file holding the password of the registry's one user, "+registry.User+" (instead of --htpasswd)")
	cmd.Flags().StringVar(&cfg.SSHAddr, "ssh-addr", gitserve.DefaultAddr, "address the SSH git server listens on")
	cmd.Flags().StringVar(&cfg.HostKeyFile, "host-key", "", "the SSH host key (OpenSSH private key file), instead of the one kept in --data")
	cmd.Flags().StringVar(&operatorKey, "operator-key", "", "a public key (authorized_keys line) that logs in as an admin besides config/admins' keys: SSH access only, signatures are still judged by config/admins")
	cmd.Flags().StringVar(&accessFrom, "access-from", "stack:refs/heads/production", "read admins, developers and git.yaml from config/ at this ref of a served repository once it exists (only signed pushes move it), not from --repo's work tree; off: always the work tree")
	cmd.Flags().StringSliceVar(&drift, "drift", nil, "environments whose drift the daemon records in their state repos, every --drift-every")
	cmd.Flags().DurationVar(&cfg.DriftEvery, "drift-every", 15*time.Minute, "how often to record drift (--drift)")
	cmd.Flags().StringVar(&cfg.WebAddr, "web-addr", serve.DefaultWebAddr, `address of the read-only web page (environments, CI jobs, push verdicts), or "off"`)
	cmd.Flags().IntVar(&cfg.CI.Concurrency, "jobs", 1, fmt.Sprintf("CI jobs run at once (1 to %d)", maxJobs))
	cmd.Flags().StringVar(&jobMemory, "job-memory", "2GiB", "memory each CI job may use (KiB, MiB, GiB); enforced when serve runs as root")
	cmd.Flags().BoolVar(&cfg.CI.RequireSandbox, "require-sandbox", false, "fail every CI job, saying why, where the kernel refuses the jobs' sandbox, rather than run it unsandboxed")
	cmd.Flags().IntVar(&jobPids, "job-pids", ci.DefaultPidsLimit, fmt.Sprintf("processes and threads each CI job may have at once (%d to %d); enforced when serve runs as root", minJobPids, maxJobPids))
	return cmd
}

// newRepoTrustCmd is `stack repo trust`, registered by newRepoCmd.
func newRepoTrustCmd(g *globals, dataDir func() (string, error)) *cobra.Command {
	var key string
	var allowUnsigned bool
	cmd := &cobra.Command{
		Use:               "trust NAME [COMMIT]",
		ValidArgsFunction: completeRepos(dataDir),
		Short:             "Set (or show) the trust root that pushes to protected refs must grow from",
		Long: `A push to a ref the signature policy protects (refs/heads/production at
least, see config/policy.yaml) is accepted only if every new commit descends
from the repository's trust root and is signed as the policy demands, judged
by the config/admins of its parents; the root's own config/admins is trusted.

The trust root is kept in the served bare repository's git config
(stack.policy.root, stack.policy.rootKey), outside anything a push can change.
COMMIT is a full commit id or a revision already in the repository. --key
pins the SHA256 fingerprint of the admin key that must have signed it.
Without COMMIT, the current trust root is shown. Until one is set, every push
to a protected ref is rejected.

COMMIT is checked as every push will check it: it must be signed by a key its
own config/admins lists (and by --key's). It is looked for in the served
repository and, for a full id not pushed yet, in the clone stack runs in
(-C DIR). A commit that fails, or that neither holds, is refused: sign it
(git commit -S --amend, with a key in config/admins) and trust the new id.
--allow-unsigned sets it anyway, with a warning: every push to a protected
ref is then rejected until a signed root replaces it.`,
		Example: `  stack repo trust stack 5f1c9e2d4b7a8c0e1f2a3b4c5d6e7f8091a2b3c4
  stack repo trust stack 5f1c9e2d... --key SHA256:n3Q6a...
  stack repo trust stack -o json`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := g.format()
			if err != nil {
				return err
			}
			dir, err := dataDir()
			if err != nil {
				return err
			}
			var root policy.TrustRoot
			if len(args) == 2 {
				o := serve.TrustOptions{Key: key, AllowUnsigned: allowUnsigned}
				if clone, err := g.gitDir(); err == nil {
					o.Clone = clone
				}
				var warning string
				root, warning, err = serve.SetTrustRoot(cmd.Context(), dir, args[0], args[1], o)
				if warning != "" {
					fmt.Fprintln(cmd.ErrOrStderr(), warning)
				}
			} else if allowUnsigned {
				return fmt.Errorf("--allow-unsigned needs a COMMIT: stack repo trust %s COMMIT --allow-unsigned", args[0])
			} else if key != "" {
				return fmt.Errorf("--key needs a COMMIT: stack repo trust %s COMMIT --key %s", args[0], key)
			} else {
				root, err = serve.TrustRoot(cmd.Context(), dir, args[0])
			}
			if err != nil {
				return err
			}
			if format.Data() {
				return ui.Write(stdout(cmd), format, root)
			}
			switch {
			case root.Commit == "":
				_, err = fmt.Fprintf(stdout(cmd), "%s has no trust root: pushes to protected refs are rejected until `stack repo trust %s COMMIT`\n", args[0], args[0])
			case root.Key == "":
				_, err = fmt.Fprintf(stdout(cmd), "%s trusts %s\n", args[0], root.Commit)
			default:
				_, err = fmt.Fprintf(stdout(cmd), "%s trusts %s signed by %s\n", args[0], root.Commit, root.Key)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "SHA256:... fingerprint of the admin key that signed COMMIT")
	cmd.Flags().BoolVar(&allowUnsigned, "allow-unsigned", false, "set COMMIT even if it is not signed by a key of its own config/admins (every push to a protected ref is then rejected)")
	return cmd
}
