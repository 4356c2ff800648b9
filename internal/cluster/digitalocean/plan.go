package digitalocean

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/digitalocean/godo"
	"go.yaml.in/yaml/v3"
)

// Action is what a change does.
type Action string

// The actions of a plan, as terraform names them.
const (
	Create  Action = "create"
	Update  Action = "update"
	Delete  Action = "delete"
	Replace Action = "needs replacement"
)

// Change is one difference between the declaration and the account.
type Change struct {
	// Object is "cluster" or "pool NAME".
	Object string `json:"object"`
	// Field is the field that changes; empty for a whole object.
	Field  string `json:"field,omitempty"`
	From   string `json:"from,omitempty"`
	To     string `json:"to,omitempty"`
	Action Action `json:"action"`
}

// String gives the change as one line of a plan: +, ~, - or -/+, the
// object, and the field's old and new values.
func (c Change) String() string {
	s := sign(c.Action) + " " + c.Object
	switch {
	case c.Field != "":
		s += fmt.Sprintf(" %s: %s → %s", c.Field, orDash(c.From), orDash(c.To))
	case c.To != "":
		s += " (" + c.To + ")"
	case c.From != "":
		s += " (" + c.From + ")"
	}
	if c.Action == Replace {
		s += " (needs replacement)"
	}
	return s
}

// Plan is what Apply would do to make the account match a declaration.
type Plan struct {
	// Cluster is the cluster's name in the account.
	Cluster string `json:"cluster"`
	// ID is the live cluster's id; empty when it does not exist.
	ID      string   `json:"id,omitempty"`
	Changes []Change `json:"changes"`

	spec *Spec
	live *godo.KubernetesCluster
}

// Empty reports whether there is nothing to do.
func (p *Plan) Empty() bool { return len(p.Changes) == 0 }

// Replacements are the changes the API cannot make in place.
func (p *Plan) Replacements() []Change {
	var out []Change
	for _, c := range p.Changes {
		if c.Action == Replace {
			out = append(out, c)
		}
	}
	return out
}

// replacesCluster reports whether the whole cluster must be recreated.
func (p *Plan) replacesCluster() bool {
	for _, c := range p.Replacements() {
		if c.Object == "cluster" {
			return true
		}
	}
	return false
}

// Check compares s with what the account offers (regions, versions, droplet
// sizes) and names the first value it does not know, as FILE:LINE.
func (c *Client) Check(ctx context.Context, file string, n *yaml.Node, s *Spec) error {
	opts, _, err := c.api.Kubernetes.GetOptions(ctx)
	if err != nil {
		return apiError("read DigitalOcean's Kubernetes options", err)
	}
	var regions, versions, sizes []string
	for _, r := range opts.Regions {
		regions = append(regions, r.Slug)
	}
	for _, v := range opts.Versions {
		versions = append(versions, v.Slug)
	}
	for _, z := range opts.Sizes {
		sizes = append(sizes, z.Slug)
	}
	v := &checker{file: file}
	if !slices.Contains(regions, s.Region) {
		v.add(at(n, "region"), "region %q is not offered for Kubernetes: use one of %s", s.Region, list(regions))
	}
	if !slices.Contains(versions, s.Version) {
		v.add(at(n, "version"), "version %q is not offered: use one of %s", s.Version, list(versions))
	}
	for i, p := range s.Pools {
		if !slices.Contains(sizes, p.Size) {
			v.add(at(n, "pools", strconv.Itoa(i), "size"), "pool %s: size %q is not offered: use one of %s", p.Name, p.Size, list(sizes))
		}
	}
	return v.err()
}

func list(s []string) string {
	if len(s) > 8 {
		return strings.Join(s[:8], ", ") + ", …"
	}
	return strings.Join(s, ", ")
}

// Find returns the cluster named name in the account, or nil.
func (c *Client) Find(ctx context.Context, name string) (*godo.KubernetesCluster, error) {
	opt := &godo.ListOptions{PerPage: 200}
	for {
		clusters, resp, err := c.api.Kubernetes.List(ctx, opt)
		if err != nil {
			return nil, apiError("list Kubernetes clusters", err)
		}
		for _, k := range clusters {
			if k.Name == name {
				return k, nil
			}
		}
		if resp == nil || resp.Links == nil || resp.Links.IsLastPage() {
			return nil, nil
		}
		page, err := resp.Links.CurrentPage()
		if err != nil {
			return nil, apiError("list Kubernetes clusters", err)
		}
		opt.Page = page + 1
	}
}

// Plan reads the account and says, field by field, what Apply would change
// for the cluster name to match s.
func (c *Client) Plan(ctx context.Context, name string, s *Spec) (*Plan, error) {
	live, err := c.Find(ctx, name)
	if err != nil {
		return nil, err
	}
	return diff(name, s, live), nil
}

// diff is the plan that takes live (nil: absent) to s.
func diff(name string, s *Spec, live *godo.KubernetesCluster) *Plan {
	p := &Plan{Cluster: name, spec: s, live: live, Changes: []Change{}}
	if live == nil {
		p.Changes = append(p.Changes, Change{Object: "cluster", Action: Create, To: fmt.Sprintf("%s %s, %d pools", s.Region, s.Version, len(s.Pools))})
		return p
	}
	p.ID = live.ID
	add := func(obj, field string, from, to string, a Action) {
		if from != to {
			p.Changes = append(p.Changes, Change{Object: obj, Field: field, From: from, To: to, Action: a})
		}
	}
	add("cluster", "region", live.RegionSlug, s.Region, Replace)
	if s.VPC != "" { // no VPC declared: whatever the cluster has is fine
		add("cluster", "vpc", live.VPCUUID, s.VPC, Replace)
	}
	switch cmp := compareVersions(live.VersionSlug, s.Version); {
	case cmp < 0:
		add("cluster", "version", live.VersionSlug, s.Version, Update)
	case cmp > 0:
		add("cluster", "version", live.VersionSlug, s.Version, Replace) // no downgrades
	}
	ha := Update
	if live.HA && !s.HA {
		ha = Replace // HA cannot be turned off
	}
	add("cluster", "ha", strconv.FormatBool(live.HA), strconv.FormatBool(s.HA), ha)
	add("cluster", "surgeUpgrade", strconv.FormatBool(live.SurgeUpgrade), strconv.FormatBool(s.SurgeUpgrade), Update)
	add("cluster", "autoUpgrade", strconv.FormatBool(live.AutoUpgrade), "false", Update)
	add("cluster", "maintenance", maintenanceOf(live.MaintenancePolicy), s.Maintenance.Day+" "+s.Maintenance.Start, Update)
	add("cluster", "tags", tagList(userTags(live.Tags)), tagList(s.Tags), Update)

	livePools := map[string]*godo.KubernetesNodePool{}
	for _, lp := range live.NodePools {
		livePools[lp.Name] = lp
	}
	for _, sp := range s.Pools {
		obj := "pool " + sp.Name
		lp := livePools[sp.Name]
		if lp == nil {
			p.Changes = append(p.Changes, Change{Object: obj, Action: Create, To: poolSummary(sp)})
			continue
		}
		delete(livePools, sp.Name)
		add(obj, "size", lp.Size, sp.Size, Replace)
		add(obj, "nodes", scaleOf(lp.AutoScale, lp.Count, lp.MinNodes, lp.MaxNodes), specScale(sp), Update)
		add(obj, "labels", labelList(lp.Labels), labelList(sp.Labels), Update)
		add(obj, "taints", taintList(lp.Taints), strings.Join(sortedCopy(sp.Taints), ","), Update)
		add(obj, "tags", tagList(userTags(lp.Tags)), tagList(sp.Tags), Update)
	}
	var gone []string
	for n := range livePools {
		gone = append(gone, n)
	}
	slices.Sort(gone)
	for _, n := range gone {
		p.Changes = append(p.Changes, Change{Object: "pool " + n, Action: Delete, From: poolSummary(poolOf(livePools[n]))})
	}
	return p
}

// compareVersions orders version slugs 1.36.3-do.0 numerically.
func compareVersions(a, b string) int {
	na, nb := versionNumbers(a), versionNumbers(b)
	return slices.Compare(na, nb)
}

func versionNumbers(v string) []int {
	var out []int
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r < '0' || r > '9' }) {
		n, _ := strconv.Atoi(f)
		out = append(out, n)
	}
	return out
}

// userTags drops the tags DigitalOcean adds itself (k8s, k8s:ID, …).
func userTags(tags []string) []string {
	var out []string
	for _, t := range tags {
		if t == "k8s" || strings.HasPrefix(t, "k8s:") {
			continue
		}
		out = append(out, t)
	}
	return out
}

func tagList(tags []string) string { return strings.Join(sortedCopy(tags), ",") }

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

func labelList(m map[string]string) string {
	var out []string
	for _, k := range sortedKeys(m) {
		out = append(out, k+"="+m[k])
	}
	return strings.Join(out, ",")
}

func taintList(ts []godo.Taint) string {
	var out []string
	for _, t := range ts {
		out = append(out, Taint{Key: t.Key, Value: t.Value, Effect: t.Effect}.String())
	}
	return strings.Join(sortedCopy(out), ",")
}

func maintenanceOf(m *godo.KubernetesMaintenancePolicy) string {
	if m == nil {
		return ""
	}
	return m.Day.String() + " " + m.StartTime
}

func scaleOf(auto bool, count, min, max int) string {
	if auto {
		return fmt.Sprintf("autoscale %d-%d", min, max)
	}
	return strconv.Itoa(count)
}

func specScale(p Pool) string {
	if p.Autoscale != nil {
		return scaleOf(true, 0, p.Autoscale.Min, p.Autoscale.Max)
	}
	return scaleOf(false, p.Count, 0, 0)
}

func poolSummary(p Pool) string { return p.Size + " × " + specScale(p) }

func poolOf(lp *godo.KubernetesNodePool) Pool {
	p := Pool{Name: lp.Name, Size: lp.Size, Count: lp.Count}
	if lp.AutoScale {
		p.Count, p.Autoscale = 0, &Autoscale{Min: lp.MinNodes, Max: lp.MaxNodes}
	}
	return p
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Text writes the plan as lines a person reads.
func (p *Plan) Text() string {
	if p.Empty() {
		return fmt.Sprintf("cluster %s: up to date\n", p.Cluster)
	}
	var b strings.Builder
	for _, c := range p.Changes {
		b.WriteString(c.String() + "\n")
	}
	n := map[Action]int{}
	for _, c := range p.Changes {
		n[c.Action]++
	}
	fmt.Fprintf(&b, "cluster %s: %d to create, %d to update, %d to delete, %d needing replacement\n", p.Cluster, n[Create], n[Update], n[Delete], n[Replace])
	return b.String()
}

func sign(a Action) string {
	switch a {
	case Create:
		return "+"
	case Delete:
		return "-"
	case Replace:
		return "-/+"
	}
	return "~"
}
