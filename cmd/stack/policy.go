package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hashbang/stack/internal/policy"
	"github.com/hashbang/stack/internal/ui"
)

func newPolicyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Check and approve commits under the signature policy",
		Long: `Who may sign is listed in the repository, in git's allowed_signers format:
config/admins and config/developers. What each environment demands (protected refs,
hardware keys, a quorum of distinct admins) is in config/policy.yaml; without it,
production requires one admin's FIDO (hardware) key signature.

A commit is judged by the trust files of its parent(s), never by its own, so a
change to who may sign must be signed by someone who already could. Trust starts
at a root commit given from outside the repository: --root, or git config
stack.policy.root (and optionally stack.policy.rootKey) in the local clone.

Approvals beyond the commit's own signature are git notes under
refs/notes/approvals, made with "stack policy approve" and pushed with
"git push REMOTE refs/notes/approvals".`,
	}
	cmd.AddCommand(newPolicyVerifyCmd(g), newPolicyApproveCmd(g))
	return cmd
}

func newPolicyVerifyCmd(g *globals) *cobra.Command {
	var env, root, rootKey string
	cmd := &cobra.Command{
		Use:   "verify [REV-RANGE]",
		Short: "Check, offline, every commit of a range under an environment's rules",
		Long: `verify judges every commit from the trust root (or from A, given A..B) up to
the tip (default HEAD) under ENV's rules, and prints one verdict per commit: the
signer's principals, key type and why it passes or fails. It exits 2 if any
commit fails, 1 if it cannot check.

It needs only git: it reads every commit, its config/admins, config/developers
and config/policy.yaml from the repository's history, so it works in any clone
(--repo, default the current directory), stack repository or not.`,
		Example: `  stack policy verify --root 1a2b3c4d
  stack policy verify --env staging origin/staging
  stack policy verify -o json production~10..production`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := g.format()
			if err != nil {
				return err
			}
			dir, err := g.gitDir()
			if err != nil {
				return err
			}
			rng := "HEAD"
			if len(args) == 1 {
				rng = args[0]
			}
			from, to, err := parseRange(rng)
			if err != nil {
				return err
			}
			tr, err := policy.ConfiguredRoot(cmd.Context(), dir)
			if err != nil {
				return err
			}
			if root != "" {
				tr = policy.TrustRoot{Commit: root, Key: rootKey}
			} else if rootKey != "" {
				tr.Key = rootKey
			}
			v := &policy.Verifier{Dir: dir, Root: tr}
			step := progress(cmd).Start("verify %s under %s rules", rng, env)
			rep, err := v.VerifyRange(cmd.Context(), env, from, to)
			if step.Done(err) != nil {
				return err
			}
			if format.Data() {
				if err := ui.Write(stdout(cmd), format, rep); err != nil {
					return err
				}
			} else {
				var rows [][]string
				for _, v := range rep.Verdicts {
					verdict, reason := "ok", v.Reason
					if !v.OK {
						verdict = "FAIL"
					}
					if v.OK && len(v.Approvers) > 0 {
						reason = "approved by " + strings.Join(v.Approvers, ", ")
					}
					rows = append(rows, []string{v.Commit[:12], dash(v.Signer), dash(strings.TrimSuffix(v.KeyType, "@openssh.com")), verdict, reason})
				}
				if err := ui.Table(stdout(cmd), []string{"COMMIT", "SIGNER", "KEY", "VERDICT", "REASON"}, rows); err != nil {
					return err
				}
			}
			if bad := rep.Failed(); len(bad) > 0 {
				return differences(fmt.Errorf("%d of %d commits fail the %s policy", len(bad), len(rep.Verdicts), env))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&env, "env", policy.Production, "environment whose rules apply")
	cmd.Flags().StringVar(&root, "root", "", "trust root: the commit whose config/admins is trusted (default: git config stack.policy.root)")
	cmd.Flags().StringVar(&rootKey, "root-key", "", "SHA256:... fingerprint of the admin key that must have signed the root")
	return cmd
}

func newPolicyApproveCmd(g *globals) *cobra.Command {
	var env, key, rollbackFrom string
	cmd := &cobra.Command{
		Use:   "approve COMMIT --env ENV --key FILE",
		Short: "Sign an approval of a commit for an environment (a git note)",
		Long: `approve signs the statement "approve COMMIT for ENV" with your SSH key (ssh-keygen
-Y sign, namespace stack-approve; a FIDO key asks for a touch) and adds it to the
commit's note under refs/notes/approvals. With --rollback-from CURRENT it signs
"rollback COMMIT from CURRENT for ENV" instead, which lets ENV move back from
CURRENT to COMMIT. Publish with: git push REMOTE refs/notes/approvals.`,
		Example: `  stack policy approve 1a2b3c4d --env production --key ~/.ssh/id_ed25519_sk
  stack policy approve v1.2 --env production --key ~/.ssh/id_ed25519_sk --rollback-from production`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := g.format()
			if err != nil {
				return err
			}
			if key == "" {
				return fmt.Errorf("no signing key: pass --key FILE (your SSH private key, or its .pub with the key in ssh-agent)")
			}
			dir, err := g.gitDir()
			if err != nil {
				return err
			}
			commit, err := policy.ResolveCommit(cmd.Context(), dir, args[0])
			if err != nil {
				return err
			}
			st := policy.Statement{Kind: policy.Approve, Commit: commit, Env: env}
			if rollbackFrom != "" {
				from, err := policy.ResolveCommit(cmd.Context(), dir, rollbackFrom)
				if err != nil {
					return err
				}
				st = policy.Statement{Kind: policy.Rollback, Commit: commit, From: from, Env: env}
			}
			if _, err := policy.ParseStatement(strings.TrimSuffix(st.String(), "\n"), len(commit)); err != nil {
				return err
			}
			block, sig, err := policy.Sign(cmd.Context(), st, key)
			if err != nil {
				return err
			}
			if err := policy.AddApproval(cmd.Context(), dir, commit, block); err != nil {
				return err
			}
			res := struct {
				Statement   string `json:"statement"`
				Fingerprint string `json:"fingerprint"`
				KeyType     string `json:"key_type"`
				Notes       string `json:"notes"`
			}{strings.TrimSpace(st.String()), sig.Fingerprint(), sig.PublicKey.Type(), policy.ApprovalsRef}
			if format.Data() {
				return ui.Write(stdout(cmd), format, res)
			}
			fmt.Fprintf(stdout(cmd), "signed %q with %s %s\nadded to %s; publish with: git push REMOTE %s\n",
				res.Statement, res.KeyType, res.Fingerprint, res.Notes, res.Notes)
			return nil
		},
	}
	cmd.Flags().StringVar(&env, "env", policy.Production, "environment the approval is for")
	cmd.Flags().StringVar(&key, "key", "", "SSH key to sign with (as for ssh-keygen -Y sign -f)")
	cmd.Flags().StringVar(&rollbackFrom, "rollback-from", "", "sign a rollback from this commit (what ENV runs now) instead of an approval")
	return cmd
}

// parseRange splits A..B into from and to; a single revision is the tip.
func parseRange(s string) (from, to string, err error) {
	if strings.Contains(s, "...") {
		return "", "", fmt.Errorf("range %q: use A..B (commits after A up to B) or a single revision, not A...B", s)
	}
	from, to, ok := strings.Cut(s, "..")
	if !ok {
		return "", s, nil
	}
	if from == "" || to == "" {
		return "", "", fmt.Errorf("range %q: give both ends, as A..B", s)
	}
	return from, to, nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
