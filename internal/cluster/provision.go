package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/rest"

	"github.com/hashbang/stack/internal/cluster/digitalocean"
	"github.com/hashbang/stack/internal/workspace"
)

// A Provisioner is a Provider that also makes its cluster, as code: it
// plans the difference between the environment's declaration and what
// exists, applies it and destroys the cluster. The backends stack
// provisions itself have one (digitalocean).
type Provisioner interface {
	Provider
	// Plan reads what exists and says what Apply would change.
	Plan(ctx context.Context) (Plan, error)
	// Apply makes what exists match the plan, waits until the cluster
	// runs and keeps its credentials under the data directory.
	Apply(ctx context.Context, p Plan, o ApplyOptions) (*Provisioned, error)
	// Destroy deletes the cluster; false when there was none.
	Destroy(ctx context.Context, o ApplyOptions) (bool, error)
}

// Plan is a backend's plan; it marshals to JSON as the plan's data.
type Plan interface {
	// Empty reports whether there is nothing to do.
	Empty() bool
	// Text is the plan as lines a person reads.
	Text() string
}

// ApplyOptions say how Apply and Destroy go about it.
type ApplyOptions struct {
	// Replace allows changes that delete and recreate the cluster or
	// parts of it.
	Replace bool
	// Out receives progress lines.
	Out io.Writer
	// Poll is how often provisioning is checked (0: the backend's default).
	Poll time.Duration
	// Timeout bounds the wait (0: the backend's default).
	Timeout time.Duration
}

// Provisioned is what exists after an apply.
type Provisioned struct {
	// Record describes the cluster (marshals to YAML and JSON); it holds
	// nothing secret.
	Record any
	// Summary is one line saying what exists.
	Summary string
}

// CredentialsFile is where the credentials of a provisioned cluster are
// kept: DATA/clusters/CLUSTER/credentials.json, mode 0600.
func CredentialsFile(dataDir, cluster string) string {
	return filepath.Join(dataDir, "clusters", cluster, "credentials.json")
}

// Provision returns the provisioner of env's cluster, or an error saying
// why its backend has none.
func Provision(ws *workspace.Workspace, env *Environment) (Provisioner, error) {
	switch env.Backend {
	case DigitalOcean:
		return newDigitalOcean(ws, env)
	case Local:
		return nil, fmt.Errorf("environment %s runs on this machine: `stack up %s` makes its cluster, not `stack infra`", env.Name, env.Name)
	case Kubeconfig:
		return nil, fmt.Errorf("environment %s names a cluster made elsewhere (backend kubeconfig): there is nothing for `stack infra` to provision", env.Name)
	}
	return nil, fmt.Errorf("environment %s: `stack infra` does not provision the %s backend yet", env.Name, env.Backend)
}

// doCluster is the digitalocean backend: the cluster named after the
// environment's cluster in the account of the API token.
type doCluster struct {
	env   *Environment
	creds string
	now   func() time.Time
}

func newDigitalOcean(ws *workspace.Workspace, env *Environment) (*doCluster, error) {
	data, err := ws.DataDir()
	if err != nil {
		return nil, err
	}
	return &doCluster{env: env, creds: CredentialsFile(data, env.Cluster), now: time.Now}, nil
}

func (d *doCluster) Backend() Backend { return DigitalOcean }

func (d *doCluster) client() (*digitalocean.Client, error) {
	c, err := digitalocean.NewClient()
	if err != nil {
		return nil, fmt.Errorf("environment %s: %w", d.env.Name, err)
	}
	return c, nil
}

// Config returns the stored credentials' connection, renewing them first
// when they expire soon.
func (d *doCluster) Config(ctx context.Context) (*rest.Config, error) {
	cr, err := digitalocean.LoadCredentials(d.creds)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("environment %s: no credentials of cluster %s (%s): run `stack infra apply %s` first, or pass --kubeconfig", d.env.Name, d.env.Cluster, d.creds, d.env.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("environment %s: %w", d.env.Name, err)
	}
	if !cr.Fresh(d.now()) {
		c, err := d.client()
		if err != nil {
			return nil, fmt.Errorf("%w (the credentials of cluster %s expire at %s and need renewing)", err, d.env.Cluster, cr.ExpiresAt.Format(time.RFC3339))
		}
		if cr, err = c.Credentials(ctx, cr.ClusterID); err != nil {
			return nil, fmt.Errorf("environment %s: renew credentials: %w", d.env.Name, err)
		}
		if err := cr.Save(d.creds); err != nil {
			return nil, fmt.Errorf("environment %s: keep renewed credentials: %w", d.env.Name, err)
		}
	}
	return cr.RESTConfig(), nil
}

func (d *doCluster) Plan(ctx context.Context) (Plan, error) {
	c, err := d.client()
	if err != nil {
		return nil, err
	}
	if err := c.Check(ctx, d.env.file, d.env.node, d.env.DigitalOcean); err != nil {
		return nil, err
	}
	return c.Plan(ctx, d.env.Cluster, d.env.DigitalOcean)
}

func (d *doCluster) Apply(ctx context.Context, p Plan, o ApplyOptions) (*Provisioned, error) {
	plan, ok := p.(*digitalocean.Plan)
	if !ok {
		return nil, fmt.Errorf("environment %s: not a digitalocean plan", d.env.Name)
	}
	c, err := d.client()
	if err != nil {
		return nil, err
	}
	k, err := c.Apply(ctx, plan, digitalocean.ApplyOptions(o))
	if err != nil {
		return nil, err
	}
	cr, err := c.Credentials(ctx, k.ID)
	if err != nil {
		return nil, err
	}
	if err := cr.Save(d.creds); err != nil {
		return nil, fmt.Errorf("environment %s: keep credentials: %w", d.env.Name, err)
	}
	rec := digitalocean.RecordOf(k)
	return &Provisioned{Record: rec, Summary: fmt.Sprintf("cluster %s (%s): %s, %s, %d pools, endpoint %s", rec.Name, rec.ID, rec.Region, rec.Version, len(rec.Pools), rec.Endpoint)}, nil
}

func (d *doCluster) Destroy(ctx context.Context, o ApplyOptions) (bool, error) {
	c, err := d.client()
	if err != nil {
		return false, err
	}
	gone, err := c.Destroy(ctx, d.env.Cluster, digitalocean.ApplyOptions(o))
	if err != nil {
		return gone, err
	}
	if err := os.Remove(d.creds); err != nil && !errors.Is(err, os.ErrNotExist) {
		return gone, err
	}
	return gone, nil
}
