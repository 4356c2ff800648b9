package digitalocean

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/api/validate/content"

	"github.com/hashbang/stack/internal/yamlfile"
)

// Spec is the declaration of a DigitalOcean Kubernetes cluster: the
// `digitalocean:` block of an environment.yaml. Fields the API cannot
// change on a running cluster (region, VPC, turning HA off, a version
// older than the live one, a pool's droplet size) need replacement.
type Spec struct {
	// Region is a DigitalOcean region slug, like ams3.
	Region string `yaml:"region" json:"region"`
	// Version is an exact Kubernetes version slug, like 1.36.3-do.0
	// (never "latest": what runs is pinned, and changes only by commit).
	Version string `yaml:"version" json:"version"`
	// HA runs a highly available control plane.
	HA bool `yaml:"ha" json:"ha"`
	// VPC is the UUID of the VPC the cluster joins; empty for the
	// region's default VPC.
	VPC string `yaml:"vpc,omitempty" json:"vpc,omitempty"`
	// SurgeUpgrade adds nodes during upgrades instead of draining first.
	SurgeUpgrade bool `yaml:"surgeUpgrade,omitempty" json:"surgeUpgrade,omitempty"`
	// Maintenance is the weekly window DigitalOcean may use.
	Maintenance Maintenance `yaml:"maintenance" json:"maintenance"`
	// Tags are DigitalOcean tags of the cluster.
	Tags []string `yaml:"tags,omitempty" json:"tags,omitempty"`
	// Pools are the node pools, by name.
	Pools []Pool `yaml:"pools" json:"pools"`
}

// Maintenance is a weekly maintenance window.
type Maintenance struct {
	// Day is a weekday (monday … sunday) or "any".
	Day string `yaml:"day" json:"day"`
	// Start is the window's start, HH:MM in UTC.
	Start string `yaml:"start" json:"start"`
}

// Pool is one node pool.
type Pool struct {
	Name string `yaml:"name" json:"name"`
	// Size is the droplet size slug, like s-2vcpu-4gb.
	Size string `yaml:"size" json:"size"`
	// Count is the number of nodes of a pool without autoscaling.
	Count int `yaml:"count,omitempty" json:"count,omitempty"`
	// Autoscale, when set, lets the pool scale between Min and Max nodes.
	Autoscale *Autoscale `yaml:"autoscale,omitempty" json:"autoscale,omitempty"`
	// Labels are Kubernetes labels of the pool's nodes.
	Labels map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
	// Taints of the pool's nodes, as kubectl writes them: key=value:Effect.
	Taints []string `yaml:"taints,omitempty" json:"taints,omitempty"`
	// Tags are DigitalOcean tags of the pool's droplets.
	Tags []string `yaml:"tags,omitempty" json:"tags,omitempty"`
}

// Autoscale bounds an autoscaled pool.
type Autoscale struct {
	Min int `yaml:"min" json:"min"`
	Max int `yaml:"max" json:"max"`
}

// MaxNodes bounds a pool's node count, as DigitalOcean does.
const MaxNodes = 512

var (
	regionRE  = regexp.MustCompile(`^[a-z]{3}[0-9]$`)
	versionRE = regexp.MustCompile(`^1\.[0-9]+\.[0-9]+-do\.[0-9]+$`)
	sizeRE    = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	uuidRE    = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	tagRE     = regexp.MustCompile(`^[a-zA-Z0-9_:-]{1,255}$`)
	startRE   = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)
	poolRE    = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	days      = []string{"any", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}
	effects   = []string{"NoSchedule", "PreferNoSchedule", "NoExecute"}
)

// Validate checks s, decoded from node n (the `digitalocean:` mapping) of
// file, and returns its problems, each FILE:LINE: what is wrong: the fix.
func (s *Spec) Validate(file string, n *yaml.Node) error {
	v := &checker{file: file}
	switch {
	case s.Region == "":
		v.add(n, "digitalocean: needs `region:`, a region slug like ams3")
	case !regionRE.MatchString(s.Region):
		v.add(at(n, "region"), "region %q is not a region slug: use one like ams3, nyc1 or fra1", s.Region)
	}
	switch {
	case s.Version == "":
		v.add(n, "digitalocean: needs `version:`, an exact Kubernetes version slug like 1.36.3-do.0")
	case s.Version == "latest":
		v.add(at(n, "version"), "version \"latest\" is not pinned: name an exact slug like 1.36.3-do.0 (`stack infra plan` lists the available ones)")
	case !versionRE.MatchString(s.Version):
		v.add(at(n, "version"), "version %q is not an exact version slug: use one like 1.36.3-do.0", s.Version)
	}
	if s.VPC != "" && !uuidRE.MatchString(s.VPC) {
		v.add(at(n, "vpc"), "vpc %q is not a VPC UUID: give the UUID DigitalOcean shows for the VPC, or leave it out for the region's default", s.VPC)
	}
	switch {
	case s.Maintenance.Day == "" || s.Maintenance.Start == "":
		v.add(orNode(at(n, "maintenance"), n), "digitalocean: needs `maintenance: {day: DAY, start: \"HH:MM\"}`, a weekly window in UTC")
	default:
		if !slices.Contains(days, s.Maintenance.Day) {
			v.add(at(n, "maintenance", "day"), "maintenance day %q is not one of %s", s.Maintenance.Day, strings.Join(days, ", "))
		}
		if !startRE.MatchString(s.Maintenance.Start) {
			v.add(at(n, "maintenance", "start"), "maintenance start %q is not a time HH:MM (UTC), like \"03:00\"", s.Maintenance.Start)
		}
	}
	v.tags(at(n, "tags"), "tag", s.Tags)
	if len(s.Pools) == 0 {
		v.add(orNode(at(n, "pools"), n), "digitalocean: needs `pools:`, at least one node pool with a name, a size and a count")
	}
	seen := map[string]bool{}
	for i := range s.Pools {
		v.pool(at(n, "pools", strconv.Itoa(i)), &s.Pools[i], seen)
	}
	return v.err()
}

func (v *checker) pool(n *yaml.Node, p *Pool, seen map[string]bool) {
	switch {
	case !poolRE.MatchString(p.Name):
		v.add(orNode(at(n, "name"), n), "pool name %q is not a name: use 1 to 63 lower-case letters, digits and dashes", p.Name)
	case seen[p.Name]:
		v.add(at(n, "name"), "pool %q is declared twice: give each pool its own name", p.Name)
	}
	seen[p.Name] = true
	if !sizeRE.MatchString(p.Size) {
		v.add(orNode(at(n, "size"), n), "pool %s: size %q is not a droplet size slug: use one like s-2vcpu-4gb", p.Name, p.Size)
	}
	switch a := p.Autoscale; {
	case a == nil && (p.Count < 1 || p.Count > MaxNodes):
		v.add(orNode(at(n, "count"), n), "pool %s: count %d is out of range: give 1 to %d nodes, or `autoscale: {min: N, max: M}`", p.Name, p.Count, MaxNodes)
	case a != nil && p.Count != 0:
		v.add(at(n, "count"), "pool %s: count and autoscale are both given: keep one (an autoscaled pool starts at min)", p.Name)
	case a != nil && (a.Min < 1 || a.Max > MaxNodes || a.Min > a.Max):
		v.add(at(n, "autoscale"), "pool %s: autoscale min %d, max %d: give 1 <= min <= max <= %d", p.Name, a.Min, a.Max, MaxNodes)
	}
	for _, k := range sortedKeys(p.Labels) {
		if errs := content.IsLabelKey(k); len(errs) > 0 {
			v.add(at(n, "labels", k), "pool %s: label key %q: %s", p.Name, k, errs[0])
		} else if errs := content.IsLabelValue(p.Labels[k]); len(errs) > 0 {
			v.add(at(n, "labels", k), "pool %s: label %s value %q: %s", p.Name, k, p.Labels[k], errs[0])
		}
	}
	for i, t := range p.Taints {
		if _, err := ParseTaint(t); err != nil {
			v.add(at(n, "taints", strconv.Itoa(i)), "pool %s: %v", p.Name, err)
		}
	}
	v.tags(at(n, "tags"), "pool "+p.Name+": tag", p.Tags)
}

func (v *checker) tags(n *yaml.Node, what string, tags []string) {
	for i, t := range tags {
		if !tagRE.MatchString(t) {
			v.add(at(n, strconv.Itoa(i)), "%s %q is not a tag: use letters, digits, _, - and :", what, t)
		}
	}
}

// Taint is one node taint.
type Taint struct{ Key, Value, Effect string }

// String gives the taint as kubectl writes it.
func (t Taint) String() string {
	if t.Value == "" {
		return t.Key + ":" + t.Effect
	}
	return t.Key + "=" + t.Value + ":" + t.Effect
}

// ParseTaint parses key[=value]:Effect.
func ParseTaint(s string) (Taint, error) {
	i := strings.LastIndex(s, ":")
	if i < 0 {
		i = len(s)
	}
	key, value, _ := strings.Cut(s[:i], "=")
	effect := strings.TrimPrefix(s[i:], ":")
	switch {
	case !slices.Contains(effects, effect):
		return Taint{}, fmt.Errorf("taint %q: write key=value:Effect with Effect one of %s", s, strings.Join(effects, ", "))
	case len(content.IsLabelKey(key)) > 0:
		return Taint{}, fmt.Errorf("taint %q: key %q is not a label key", s, key)
	case value != "" && len(content.IsLabelValue(value)) > 0:
		return Taint{}, fmt.Errorf("taint %q: value %q is not a label value", s, value)
	}
	return Taint{Key: key, Value: value, Effect: effect}, nil
}

// checker collects problems of one file.
type checker struct {
	file string
	errs []error
}

func (v *checker) add(n *yaml.Node, format string, args ...any) {
	v.errs = append(v.errs, yamlfile.Errorf(v.file, n, format, args...))
}

func (v *checker) err() error {
	if len(v.errs) == 0 {
		return nil
	}
	return v.errs[0]
}

// at follows keys (and list indexes, as decimal strings) from n; nil when
// the path is not there.
func at(n *yaml.Node, path ...string) *yaml.Node {
	for _, k := range path {
		if n == nil {
			return nil
		}
		switch n.Kind {
		case yaml.MappingNode:
			var next *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == k {
					next = n.Content[i+1]
				}
			}
			n = next
		case yaml.SequenceNode:
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(n.Content) {
				return nil
			}
			n = n.Content[i]
		default:
			return nil
		}
	}
	return n
}

func orNode(n, fallback *yaml.Node) *yaml.Node {
	if n != nil {
		return n
	}
	return fallback
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
