package devenv

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/hashbang/stack/internal/deploy"
)

// Gitea's generated secrets. No password or key is in the repository: on the
// first `stack up` of an environment that deploys gitea, stack creates
//
//   - the Secret gitea/gitea-secrets (key secret-key: gitea's SECRET_KEY,
//     which app.ini reads through SECRET_KEY_URI), before the deploy, since
//     the pod mounts it;
//   - the admin account stack-admin, once gitea serves, with a password
//     gitea generates (`gitea admin user create --random-password`, run in
//     the pod: no password on a command line), kept in the Secret
//     gitea/gitea-admin (keys username, password) and printed once.
//
// gitea itself generates and saves INTERNAL_TOKEN and its JWT secrets into
// app.ini on its volume at first start.
const (
	giteaNamespace     = "gitea"
	giteaDeployment    = "gitea"
	giteaSecrets       = "gitea-secrets"
	giteaAdminSecret   = "gitea-admin"
	GiteaAdmin         = "stack-admin"
	giteaConfig        = "/var/lib/gitea/app.ini"
	volumeOwner        = 65532 // the user `stack` of images/base, whom every image runs as
	giteaPasswordBytes = 32
)

// deploysGitea says whether the rendered environment has gitea's Deployment.
func deploysGitea(r *deploy.Rendered) bool {
	for _, o := range r.Objects {
		if o.GetKind() == "Deployment" && o.GetNamespace() == giteaNamespace && o.GetName() == giteaDeployment {
			return true
		}
	}
	return false
}

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

// exists says whether kubectl finds the object (kind/name in ns).
func (e *Env) exists(ctx context.Context, ns, obj string) (bool, error) {
	out, err := e.Node.Kubectl(ctx, nil, "-n", ns, "get", obj, "--ignore-not-found", "-o", "name")
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(out) != "", nil
}

// giteaSecretKey creates gitea's namespace and the Secret holding its
// SECRET_KEY when they are missing; an existing one is kept (gitea encrypts
// with it).
func (e *Env) giteaSecretKey(ctx context.Context) error {
	ok, err := e.exists(ctx, "default", "namespace/"+giteaNamespace)
	if err != nil {
		return err
	}
	if !ok {
		if _, err := e.Node.Kubectl(ctx, nil, "create", "namespace", giteaNamespace); err != nil {
			return err
		}
	}
	if ok, err = e.exists(ctx, giteaNamespace, "secret/"+giteaSecrets); err != nil || ok {
		return err
	}
	key, err := randomString(giteaPasswordBytes)
	if err != nil {
		return err
	}
	// The value goes through stdin, never on a command line.
	_, err = e.Node.Kubectl(ctx, strings.NewReader(key), "-n", giteaNamespace, "create", "secret", "generic", giteaSecrets, "--from-file=secret-key=/dev/stdin")
	return err
}

var generatedPassword = regexp.MustCompile(`generated random password is '([^'\n]+)'`)

// giteaAdmin makes sure gitea has its admin account. It returns the
// password when it created the account now (to be printed once), "" when the
// account existed.
func (e *Env) giteaAdmin(ctx context.Context) (string, error) {
	gitea := func(args ...string) (string, error) {
		return e.Node.Kubectl(ctx, nil, append([]string{"-n", giteaNamespace, "exec", "deploy/" + giteaDeployment, "-c", "gitea", "--",
			"/bin/gitea", "--config", giteaConfig}, args...)...)
	}
	list, err := gitea("admin", "user", "list", "--admin")
	if err != nil {
		return "", fmt.Errorf("list gitea's admins: %w", err)
	}
	for _, l := range strings.Split(list, "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[1] == GiteaAdmin {
			if ok, err := e.exists(ctx, giteaNamespace, "secret/"+giteaAdminSecret); err != nil || ok {
				return "", err
			}
			return "", fmt.Errorf("gitea's admin %s exists but the Secret %s/%s with its password does not: set a new one with `kubectl --kubeconfig %s -n %s exec deploy/%s -- /bin/gitea --config %s admin user change-password --username %s --password NEW` and store it with `kubectl -n %s create secret generic %s --from-literal=username=%s --from-file=password=FILE`",
				GiteaAdmin, giteaNamespace, giteaAdminSecret, e.Node.Kubeconfig(), giteaNamespace, giteaDeployment, giteaConfig, GiteaAdmin, giteaNamespace, giteaAdminSecret, GiteaAdmin)
		}
	}
	out, err := gitea("admin", "user", "create", "--admin", "--username", GiteaAdmin, "--email", GiteaAdmin+"@localhost",
		"--random-password", "--random-password-length", "24", "--must-change-password=false")
	m := generatedPassword.FindStringSubmatch(out)
	if err != nil {
		// kubectl's error holds the command's stderr, never its stdout
		// with the password.
		return "", fmt.Errorf("create gitea's admin %s: %w", GiteaAdmin, err)
	}
	if m == nil {
		return "", errors.New("create gitea's admin: gitea printed no generated password (`gitea admin user create --random-password` changed its output?)")
	}
	if _, err := e.Node.Kubectl(ctx, strings.NewReader(m[1]), "-n", giteaNamespace, "create", "secret", "generic", giteaAdminSecret,
		"--from-literal=username="+GiteaAdmin, "--from-file=password=/dev/stdin"); err != nil {
		return "", fmt.Errorf("store gitea's admin password: %w", err)
	}
	return m[1], nil
}

// randomString is n random bytes, base64url without padding.
func randomString(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
