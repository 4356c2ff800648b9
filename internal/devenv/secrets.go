package devenv

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/hashbang/stack/internal/deploy"
)

// volumeOwner is the user `stack` of images/base, whom every image runs as.
const volumeOwner = 65532

// prepareVolumes creates the node directories of the environment's
// PersistentVolumes that do not exist yet, owned by the images' user (the
// kubelet would create a hostPath root-owned, unwritable to the pod).
// Existing ones are left as they are: they hold data.
func (e *Env) prepareVolumes(r *deploy.Rendered) error {
	for _, dir := range deploy.NodeVolumes(r, e.Env) {
		if _, err := os.Stat(dir); err == nil {
			continue
		}
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return fmt.Errorf("create the volume %s: %w", dir, err)
		}
		if err := os.Chown(dir, volumeOwner, volumeOwner); err != nil {
			return fmt.Errorf("give the volume %s to %d: %w", dir, volumeOwner, err)
		}
	}
	return nil
}

// Secrets the manifests declare (internal/deploy, generate.go): the deploy
// generates the keys of stack.hashbang.sh/generate; Up then runs the
// capture steps (stack.hashbang.sh/capture) through `kubectl exec` once the
// workloads answer, and prints the show-once lines
// (stack.hashbang.sh/show-once) of the Secrets whose values this run made.

// shown are the keys each show-once Secret has, by Secret, before the
// deploy: a line is shown when one of its keys appears.
type shown map[deploy.Key]map[string]bool

// showOnceBefore reads which keys the show-once Secrets of decls have now.
func showOnceBefore(ctx context.Context, c *deploy.Cluster, decls []*deploy.SecretDecl) (shown, error) {
	before := shown{}
	for _, d := range decls {
		if d.ShowOnce == nil {
			continue
		}
		data, err := c.SecretData(ctx, d.Secret)
		if err != nil {
			return nil, err
		}
		before[d.Secret] = map[string]bool{}
		for k := range data {
			before[d.Secret][k] = true
		}
	}
	return before, nil
}

// capture runs the capture steps of decls whose Secret lacks the key.
func (e *Env) capture(ctx context.Context, c *deploy.Cluster, decls []*deploy.SecretDecl) error {
	for _, d := range decls {
		if d.Capture == nil {
			continue
		}
		step := e.Progress.Start("capture %s of %s", d.Capture.Key, d.Secret)
		if _, err := c.Capture(ctx, d, e.exec); err != nil {
			return step.Done(err)
		}
		step.Done(nil)
	}
	return nil
}

// exec runs command in a pod's container with `kubectl exec`; its error
// holds kubectl's standard error, never the command's output.
func (e *Env) exec(ctx context.Context, ns, pod, container string, command []string) ([]byte, error) {
	out, err := e.Node.Kubectl(ctx, nil, append([]string{"-n", ns, "exec", pod, "-c", container, "--"}, command...)...)
	if err != nil {
		return nil, err
	}
	return []byte(out), nil
}

// showOnce returns the show-once lines of the Secrets that gained one of
// the line's keys since before, with how to read the new values again.
func (e *Env) showOnce(ctx context.Context, c *deploy.Cluster, decls []*deploy.SecretDecl, before shown) ([]string, error) {
	var notes []string
	for _, d := range decls {
		if d.ShowOnce == nil {
			continue
		}
		data, err := c.SecretData(ctx, d.Secret)
		if err != nil {
			return nil, err
		}
		var again []string
		for _, k := range d.ShowOnce.Keys() {
			if _, ok := data[k]; ok && !before[d.Secret][k] {
				again = append(again, fmt.Sprintf("kubectl --kubeconfig %s -n %s get secret %s -o jsonpath='{.data.%s}' | base64 -d",
					e.Node.Kubeconfig(), d.Secret.Namespace, d.Secret.Name, strings.ReplaceAll(k, ".", `\.`)))
			}
		}
		if len(again) > 0 {
			notes = append(notes, fmt.Sprintf("%s (shown once; %s)", d.ShowOnce.Format(data), strings.Join(again, "; ")))
		}
	}
	return notes, nil
}
