// Package serve owns the `stack serve` daemon: one data directory, and in
// one process the embedded OCI registry (internal/registry), the SSH git
// server (internal/gitserve) and the CI runner (internal/ci), all on
// loopback unless told otherwise, stopped together on SIGINT or SIGTERM.
//
// It also owns what the served repositories' git hooks do (Hooks): the
// pre-receive hook checks pushes to protected refs against the signature
// policy (internal/policy), trusting the root configured in the bare
// repository's own git config (SetTrustRoot), and the post-receive hook
// queues the CI jobs of each pushed ref.
//
// The data directory (it and its directories 0700, made so at start):
//
//	DATA/serve.lock   flock held by the running daemon (its PID inside)
//	DATA/registry/    the registry's blobs and manifests
//	DATA/ssh/         the git server's host key
//	DATA/git/         the bare repositories: NAME.git, GROUP/NAME.git
//	DATA/ci/          CI jobs, logs, queue and timers; the jobs run
//	                  sandboxed, seeing none of this but their work directory
//	DATA/pushes.jsonl the verdicts of pushes the pre-receive hook judged
//	DATA/clusters/    credentials of provisioned clusters (internal/cluster)
//
// When the daemon is PID 1 (the stack image), Init runs it as a child and
// reaps every orphan the kernel hands to PID 1.
package serve
