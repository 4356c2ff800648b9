package digitalocean

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/digitalocean/godo"
)

// ApplyOptions say how Apply goes about it.
type ApplyOptions struct {
	// Replace allows the changes that need replacement: deleting and
	// recreating the cluster or a pool, with their workloads.
	Replace bool
	// Out receives progress lines; nil discards them.
	Out io.Writer
	// Poll is how often provisioning is checked (default 10s).
	Poll time.Duration
	// Timeout bounds the wait for the cluster and pools to run (default
	// 30 minutes).
	Timeout time.Duration
}

func (o *ApplyOptions) defaults() {
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Poll <= 0 {
		o.Poll = 10 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Minute
	}
}

// Apply makes the account match p's declaration and waits until the
// cluster and its pools run. It refuses a plan with replacements unless
// o.Replace, before changing anything. Every step reads the account
// afresh, so an apply that failed part way converges when run again.
func (c *Client) Apply(ctx context.Context, p *Plan, o ApplyOptions) (*godo.KubernetesCluster, error) {
	o.defaults()
	if r := p.Replacements(); len(r) > 0 && !o.Replace {
		var what []string
		for _, ch := range r {
			what = append(what, strings.TrimSpace(ch.Object+" "+ch.Field))
		}
		return nil, fmt.Errorf("cluster %s: %s cannot change in place: the %s must be deleted and recreated, losing what runs on it; pass --replace to do that", p.Cluster, strings.Join(what, ", "), replaced(p))
	}
	s, live := p.spec, p.live
	if live != nil && p.replacesCluster() {
		fmt.Fprintf(o.Out, "deleting cluster %s (%s) to replace it\n", p.Cluster, live.ID)
		if err := c.destroy(ctx, live.ID, o); err != nil {
			return nil, err
		}
		live = nil
	}
	if live == nil {
		fmt.Fprintf(o.Out, "creating cluster %s: %s, %s, %d pools\n", p.Cluster, s.Region, s.Version, len(s.Pools))
		created, _, err := c.api.Kubernetes.Create(ctx, createRequest(p.Cluster, s))
		if err != nil {
			return nil, apiError("create cluster "+p.Cluster, err)
		}
		return c.wait(ctx, created.ID, s, o)
	}
	if err := c.update(ctx, live, p, o); err != nil {
		return nil, err
	}
	return c.wait(ctx, live.ID, s, o)
}

// replaced names what a replacement deletes: the cluster, or pools.
func replaced(p *Plan) string {
	if p.replacesCluster() {
		return "cluster"
	}
	return "pool"
}

func createRequest(name string, s *Spec) *godo.KubernetesClusterCreateRequest {
	ha := s.HA
	req := &godo.KubernetesClusterCreateRequest{
		Name: name, RegionSlug: s.Region, VersionSlug: s.Version, VPCUUID: s.VPC,
		Tags: s.Tags, HA: &ha, SurgeUpgrade: s.SurgeUpgrade, AutoUpgrade: false,
		MaintenancePolicy: maintenance(s.Maintenance),
	}
	for _, sp := range s.Pools {
		req.NodePools = append(req.NodePools, poolCreate(sp))
	}
	return req
}

func maintenance(m Maintenance) *godo.KubernetesMaintenancePolicy {
	day, _ := godo.KubernetesMaintenanceToDay(m.Day)
	return &godo.KubernetesMaintenancePolicy{Day: day, StartTime: m.Start}
}

func poolCreate(p Pool) *godo.KubernetesNodePoolCreateRequest {
	r := &godo.KubernetesNodePoolCreateRequest{Name: p.Name, Size: p.Size, Count: p.Count, Tags: p.Tags, Labels: p.Labels, Taints: taints(p.Taints)}
	if a := p.Autoscale; a != nil {
		r.AutoScale, r.MinNodes, r.MaxNodes, r.Count = true, a.Min, a.Max, a.Min
	}
	return r
}

func taints(list []string) []godo.Taint {
	out := []godo.Taint{}
	for _, s := range list {
		t, _ := ParseTaint(s) // validated with the declaration
		out = append(out, godo.Taint{Key: t.Key, Value: t.Value, Effect: t.Effect})
	}
	return out
}

// update makes the changes of p to the live cluster, in an order that
// never leaves fewer pools than needed: new pools first, then updates,
// then upgrades and deletions.
func (c *Client) update(ctx context.Context, live *godo.KubernetesCluster, p *Plan, o ApplyOptions) error {
	s := p.spec
	changed := map[string]bool{}
	for _, ch := range p.Changes {
		changed[ch.Object+"."+ch.Field] = true
		changed[ch.Object] = true
	}
	livePools := map[string]*godo.KubernetesNodePool{}
	for _, lp := range live.NodePools {
		livePools[lp.Name] = lp
	}
	for _, sp := range s.Pools {
		obj := "pool " + sp.Name
		lp := livePools[sp.Name]
		switch {
		case !changed[obj]:
		case lp != nil && changed[obj+".size"]:
			fmt.Fprintf(o.Out, "replacing pool %s: %s → %s\n", sp.Name, lp.Size, sp.Size)
			if _, err := c.api.Kubernetes.DeleteNodePool(ctx, live.ID, lp.ID); err != nil && !notFound(err) {
				return apiError("delete pool "+sp.Name, err)
			}
			fallthrough
		case lp == nil:
			fmt.Fprintf(o.Out, "creating pool %s: %s\n", sp.Name, poolSummary(sp))
			if _, _, err := c.api.Kubernetes.CreateNodePool(ctx, live.ID, poolCreate(sp)); err != nil {
				return apiError("create pool "+sp.Name, err)
			}
		default:
			fmt.Fprintf(o.Out, "updating pool %s\n", sp.Name)
			if _, _, err := c.api.Kubernetes.UpdateNodePool(ctx, live.ID, lp.ID, poolUpdate(sp)); err != nil {
				return apiError("update pool "+sp.Name, err)
			}
		}
	}
	if changed["cluster.tags"] || changed["cluster.maintenance"] || changed["cluster.surgeUpgrade"] || changed["cluster.autoUpgrade"] || changed["cluster.ha"] {
		fmt.Fprintf(o.Out, "updating cluster %s\n", p.Cluster)
		no, ha := false, s.HA
		req := &godo.KubernetesClusterUpdateRequest{
			Name: p.Cluster, Tags: s.Tags, MaintenancePolicy: maintenance(s.Maintenance),
			AutoUpgrade: &no, SurgeUpgrade: s.SurgeUpgrade, HA: &ha,
		}
		if _, _, err := c.api.Kubernetes.Update(ctx, live.ID, req); err != nil {
			return apiError("update cluster "+p.Cluster, err)
		}
	}
	if changed["cluster.version"] {
		fmt.Fprintf(o.Out, "upgrading cluster %s: %s → %s\n", p.Cluster, live.VersionSlug, s.Version)
		if _, err := c.api.Kubernetes.Upgrade(ctx, live.ID, &godo.KubernetesClusterUpgradeRequest{VersionSlug: s.Version}); err != nil {
			return apiError("upgrade cluster "+p.Cluster, err)
		}
	}
	declared := map[string]bool{}
	for _, sp := range s.Pools {
		declared[sp.Name] = true
	}
	for _, lp := range live.NodePools {
		if !declared[lp.Name] {
			fmt.Fprintf(o.Out, "deleting pool %s\n", lp.Name)
			if _, err := c.api.Kubernetes.DeleteNodePool(ctx, live.ID, lp.ID); err != nil && !notFound(err) {
				return apiError("delete pool "+lp.Name, err)
			}
		}
	}
	return nil
}

func poolUpdate(p Pool) *godo.KubernetesNodePoolUpdateRequest {
	ts := taints(p.Taints)
	r := &godo.KubernetesNodePoolUpdateRequest{Name: p.Name, Tags: p.Tags, Labels: p.Labels, Taints: &ts}
	auto, count := false, p.Count
	r.AutoScale, r.Count = &auto, &count
	if a := p.Autoscale; a != nil {
		auto, min, max := true, a.Min, a.Max
		r.AutoScale, r.Count, r.MinNodes, r.MaxNodes = &auto, nil, &min, &max
	}
	return r
}

// wait polls the cluster until it and every declared pool run with their
// nodes, printing each change of state.
func (c *Client) wait(ctx context.Context, id string, s *Spec, o ApplyOptions) (*godo.KubernetesCluster, error) {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	start, last, lastSaid := time.Now(), "", time.Now()
	for {
		k, _, err := c.api.Kubernetes.Get(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("cluster %s not running after %s: run `stack infra apply` again to go on waiting", id, o.Timeout)
			}
			return nil, apiError("read cluster "+id, err)
		}
		state := progress(k, s)
		if state == "" {
			fmt.Fprintf(o.Out, "cluster %s running (%s)\n", k.Name, time.Since(start).Round(time.Second))
			return k, nil
		}
		if state != last || time.Since(lastSaid) > 30*time.Second {
			fmt.Fprintf(o.Out, "waiting for cluster %s: %s (%s)\n", k.Name, state, time.Since(start).Round(time.Second))
			last, lastSaid = state, time.Now()
		}
		if err := sleepCtx(ctx, o.Poll); err != nil {
			return nil, fmt.Errorf("cluster %s (%s) not running after %s (%s): run `stack infra apply` again to go on waiting", k.Name, id, o.Timeout, state)
		}
	}
}

// progress says what k still waits for to match s ("" when it runs).
func progress(k *godo.KubernetesCluster, s *Spec) string {
	if k.Status == nil || k.Status.State != godo.KubernetesClusterStatusRunning {
		st := "unknown"
		if k.Status != nil {
			st = string(k.Status.State)
			if k.Status.Message != "" {
				st += ": " + k.Status.Message
			}
		}
		return st
	}
	if k.VersionSlug != s.Version {
		return "upgrading to " + s.Version
	}
	for _, sp := range s.Pools {
		i := slices.IndexFunc(k.NodePools, func(lp *godo.KubernetesNodePool) bool { return lp.Name == sp.Name })
		if i < 0 {
			return "pool " + sp.Name + " not there yet"
		}
		lp := k.NodePools[i]
		want := sp.Count
		if sp.Autoscale != nil {
			want = max(sp.Autoscale.Min, min(lp.Count, sp.Autoscale.Max))
		}
		running := 0
		for _, n := range lp.Nodes {
			if n.Status != nil && n.Status.State == "running" {
				running++
			}
		}
		if lp.Size != sp.Size || running != want || len(lp.Nodes) != want {
			return fmt.Sprintf("pool %s: %d of %d nodes running", sp.Name, running, want)
		}
	}
	return ""
}

// Destroy deletes the cluster named name and waits until it is gone; it
// is not an error when there is none.
func (c *Client) Destroy(ctx context.Context, name string, o ApplyOptions) (bool, error) {
	o.defaults()
	live, err := c.Find(ctx, name)
	if err != nil || live == nil {
		return false, err
	}
	fmt.Fprintf(o.Out, "deleting cluster %s (%s)\n", name, live.ID)
	return true, c.destroy(ctx, live.ID, o)
}

func (c *Client) destroy(ctx context.Context, id string, o ApplyOptions) error {
	if _, err := c.api.Kubernetes.Delete(ctx, id); err != nil && !notFound(err) {
		return apiError("delete cluster "+id, err)
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	for {
		_, _, err := c.api.Kubernetes.Get(ctx, id)
		if notFound(err) {
			return nil
		}
		if err != nil && ctx.Err() == nil {
			return apiError("read cluster "+id, err)
		}
		if err := sleepCtx(ctx, o.Poll); err != nil {
			return fmt.Errorf("cluster %s still there %s after deleting it: run again", id, o.Timeout)
		}
	}
}

func notFound(err error) bool {
	var er *godo.ErrorResponse
	return errors.As(err, &er) && er.Response != nil && er.Response.StatusCode == http.StatusNotFound
}
