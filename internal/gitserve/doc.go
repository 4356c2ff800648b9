// Package gitserve owns the git server of `stack serve`: an SSH server with
// git-shell semantics that authenticates the keys listed in the stack
// repository's config/admins and config/developers (git's allowed_signers
// format), authorizes each repository by config/git.yaml, and runs only the
// real git-upload-pack, git-receive-pack and git-upload-archive programs on
// bare repositories under DATA/git/, and git-lfs's pure-SSH transfer
// protocol in process (lfs.go), its objects kept in each repository.
//
// The signer files are read by the signature policy's parser
// (policy.ParseSigners), and a key logs in only while the policy would let
// it sign a commit: valid-after, valid-before and namespaces bound logins
// as they bound signatures, and a file the policy refuses (a cert-authority
// line, say) lets nobody in. See logins.
//
// It also owns those repositories: creating and listing them, and the
// pre-receive and post-receive hooks that run the stack executable itself
// (`stack hook NAME`), which hands the pushed ref updates to Go callbacks
// (RunHook). A pre-receive error rejects the whole push; its lines reach the
// client as "remote: ..." and no ref moves.
package gitserve
