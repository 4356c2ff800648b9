// Package policy owns the signature policy: which commits may reach a
// protected environment. It parses git's allowed_signers format
// (config/admins, config/developers), the per-environment rules
// (config/policy.yaml), SSHSIG signatures and raw commit objects, and
// judges commits read through the real git binary.
//
// The model is the one of guix git authenticate. Trust starts at a root
// commit named from outside the repository (a flag, the server's config, a
// clone's git config), which must be signed by a key its own config/admins
// lists. Every later commit must descend from the root and is judged by the
// trust files of its parent(s), never by its own: a change to who may sign
// has to be signed by someone who already could. A merge must pass under
// every parent's files. A commit that changes the trust files must be
// signed by an admin (developers never may), must leave them parseable and
// must keep config/admins.
//
// Under an environment's rule a commit needs an SSH signature (namespace
// git) whose key is listed, allowed for the namespace at the commit's
// committer time (as git verify-commit judges valid-after/valid-before),
// and, where the rule asks for hardware (always for production), a FIDO key
// (sk-ssh-ed25519@openssh.com or sk-ecdsa-sha2-nistp256@openssh.com). FIDO
// signatures must carry the user-presence flag everywhere (stricter than
// ssh-keygen, which ignores it), and the user-verification flag where the
// rule says user-verification or the signer's line says verify-required.
//
// A quorum of N means N distinct signers: the commit's own signature plus
// approvals, which are git notes under refs/notes/approvals holding signed
// statements "approve COMMIT for ENV" (namespace stack-approve). Two
// signatures sharing a key or a principal count once. Approvals are judged
// by the same trust files as the commit's signature. Anyone may write the
// notes; only valid signatures count.
//
// A protected environment only moves forward: a deploy (and a push to a
// protected ref) must descend from what is there, unless a quorum of
// signers under the trust files of the current commit signed
// "rollback COMMIT from CURRENT for ENV", which names both ends and so
// cannot be replayed for another move.
package policy
