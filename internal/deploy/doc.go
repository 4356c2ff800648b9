// Package deploy owns taking the stack's manifests to a cluster and keeping
// a record of what is there.
//
//   - Render: kustomize (as a library) builds infra/ENV/, an overlay over
//     pods/, on an in-memory copy of pods/, infra/ and config/ (nothing else of the
//     machine is readable), and every container image that names an image
//     of images/images.lock is pinned to REGISTRY/NAME@DIGEST. A render
//     cannot reach the network: every path of every kustomization must be
//     a file of the tree (kustomization.go), and kustomize runs in a child
//     process with no HTTP transport and no programs (offline.go). Objects
//     come out in a fixed order (namespaces and CRDs first, then by kind,
//     namespace and name), so the same tree always renders the same bytes.
//   - Deploy: every object is validated by a server-side dry-run before the
//     first write, then applied server-side (field manager "stack") in
//     stages, unchanged objects untouched; objects deployed before but no
//     longer rendered are pruned; readiness is awaited with a timeout.
//   - Generated secrets (generate.go, capture.go): a Secret declares in
//     annotations the keys the deploy generates (on the first deploy, kept
//     ever after), a capture step that fills one from a command's output in
//     a ready pod, and a line to show once; their values are redacted
//     wherever stack shows or records a Secret.
//   - The state repo: a bare git repository per cluster, under the data
//     directory of `stack serve` (DATA/git/state/CLUSTER.git), whose HEAD
//     always holds what is live: one file per object, the inventory, the
//     image digests and the source commit, one commit per deploy.
//   - Diff: live objects against the state repo and against what the
//     checkout renders, field by field, ignoring what the cluster owns.
package deploy
