package digitalocean

import "github.com/digitalocean/godo"

// Record is what exists of a cluster after an apply, as the state repo
// keeps it: no credentials, nothing secret.
type Record struct {
	Backend  string       `yaml:"backend" json:"backend"`
	Name     string       `yaml:"name" json:"name"`
	ID       string       `yaml:"id" json:"id"`
	Region   string       `yaml:"region" json:"region"`
	Version  string       `yaml:"version" json:"version"`
	HA       bool         `yaml:"ha" json:"ha"`
	VPC      string       `yaml:"vpc,omitempty" json:"vpc,omitempty"`
	Endpoint string       `yaml:"endpoint" json:"endpoint"`
	Pools    []PoolRecord `yaml:"pools" json:"pools"`
}

// PoolRecord is one pool of a Record.
type PoolRecord struct {
	Name      string     `yaml:"name" json:"name"`
	ID        string     `yaml:"id" json:"id"`
	Size      string     `yaml:"size" json:"size"`
	Nodes     int        `yaml:"nodes" json:"nodes"`
	Autoscale *Autoscale `yaml:"autoscale,omitempty" json:"autoscale,omitempty"`
}

// RecordOf describes the live cluster k.
func RecordOf(k *godo.KubernetesCluster) *Record {
	r := &Record{Backend: "digitalocean", Name: k.Name, ID: k.ID, Region: k.RegionSlug, Version: k.VersionSlug, HA: k.HA, VPC: k.VPCUUID, Endpoint: k.Endpoint, Pools: []PoolRecord{}}
	for _, p := range k.NodePools {
		pr := PoolRecord{Name: p.Name, ID: p.ID, Size: p.Size, Nodes: len(p.Nodes)}
		if p.AutoScale {
			pr.Autoscale = &Autoscale{Min: p.MinNodes, Max: p.MaxNodes}
		}
		r.Pools = append(r.Pools, pr)
	}
	return r
}
