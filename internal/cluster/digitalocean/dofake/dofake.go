// Package dofake is a FAKE of the DigitalOcean API, for tests: DigitalOcean
// cannot be reached from the machines the tests run on. It serves, on
// loopback, the Kubernetes endpoints the digitalocean backend uses, and
// keeps state as the real API does: a cluster is `provisioning` for Delay
// and then `running`, its pools' nodes come up after Delay too, pools
// scale, an upgrade passes through `upgrading`, credentials expire. Every
// cluster it creates is backed by a real etcd and kube-apiserver
// (internal/kubetest) whose address it returns as the endpoint, and the
// credentials it hands out are client certificates signed by that
// cluster's CA, valid until they expire: what is deployed with them is
// really applied. It is driven by the real godo client through
// DIGITALOCEAN_API_URL.
//
// Faults can be injected (Fail): answers such as 429 with Retry-After or
// 500, for the next N requests matching a method and path.
package dofake

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/digitalocean/godo"

	"github.com/hashbang/stack/internal/kubetest"
)

// Server is the fake API.
type Server struct {
	// URL is the API endpoint, for DIGITALOCEAN_API_URL.
	URL string
	// Token is the only API token it accepts.
	Token string
	// Delay is how long provisioning, scaling and upgrades take.
	Delay time.Duration
	// CredentialTTL caps the lifetime of the credentials it hands out.
	CredentialTTL time.Duration

	tb   testing.TB
	bin  *kubetest.Binaries
	srv  *httptest.Server
	mu   sync.Mutex
	seq  int
	now  func() time.Time
	cl   map[string]*cluster
	logs []string // METHOD PATH STATUS
	fail []*fault
}

type cluster struct {
	k       godo.KubernetesCluster
	cp      *kubetest.ControlPlane
	readyAt time.Time // when provisioning or an upgrade ends
	target  string    // the version an upgrade goes to
	deleted bool
}

type fault struct {
	method, prefix string
	status, left   int
	retryAfter     string
}

// Versions, Regions and Sizes are what the fake offers.
var (
	Versions = []string{"1.35.8-do.1", "1.36.3-do.0", "1.36.4-do.0"}
	Regions  = []string{"ams3", "fra1", "nyc1", "sfo3"}
	Sizes    = []string{"s-1vcpu-2gb", "s-2vcpu-4gb", "s-4vcpu-8gb"}
)

// Start starts the fake on loopback, stopped (with every cluster's
// control plane) when tb ends. bin are the control planes' binaries
// (kubetest.Build).
func Start(tb testing.TB, bin *kubetest.Binaries, token string) *Server {
	s := &Server{Token: token, Delay: 2 * time.Second, CredentialTTL: time.Hour, tb: tb, bin: bin, now: time.Now, cl: map[string]*cluster{}}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s.srv.Listener = l
	s.srv.Start()
	s.URL = s.srv.URL + "/"
	tb.Cleanup(func() {
		s.srv.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range s.cl {
			if c.cp != nil {
				c.cp.Stop()
			}
		}
	})
	return s
}

// Fail makes the next n requests whose method is method and whose path
// starts with prefix answer status (with Retry-After retryAfter, when
// given) without acting.
func (s *Server) Fail(method, prefix string, status, n int, retryAfter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = append(s.fail, &fault{method: method, prefix: prefix, status: status, left: n, retryAfter: retryAfter})
}

// Requests lists the requests served so far, "METHOD PATH STATUS".
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.logs)
}

// Cluster returns the control plane behind the cluster named name.
func (s *Server) Cluster(name string) *kubetest.ControlPlane {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.cl {
		if c.k.Name == name && !c.deleted {
			return c.cp
		}
	}
	return nil
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	rec := &statusWriter{ResponseWriter: w, status: 200}
	s.handle(rec, r)
	s.mu.Lock()
	s.logs = append(s.logs, fmt.Sprintf("%s %s %d", r.Method, r.URL.Path, rec.status))
	s.mu.Unlock()
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) { w.status = code; w.ResponseWriter.WriteHeader(code) }

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+s.Token {
		apiErr(w, http.StatusUnauthorized, "unauthorized", "Unable to authenticate you")
		return
	}
	s.mu.Lock()
	for _, f := range s.fail {
		if f.left > 0 && f.method == r.Method && strings.HasPrefix(r.URL.Path, f.prefix) {
			f.left--
			s.mu.Unlock()
			if f.retryAfter != "" {
				w.Header().Set("Retry-After", f.retryAfter)
			}
			apiErr(w, f.status, "fault", "injected fault")
			return
		}
	}
	s.mu.Unlock()
	parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/v2/kubernetes"), "/"), "/")
	switch {
	case len(parts) == 1 && parts[0] == "options" && r.Method == http.MethodGet:
		s.options(w)
	case len(parts) == 1 && parts[0] == "clusters" && r.Method == http.MethodGet:
		s.list(w)
	case len(parts) == 1 && parts[0] == "clusters" && r.Method == http.MethodPost:
		s.create(w, r)
	case len(parts) >= 2 && parts[0] == "clusters":
		s.clusterOp(w, r, parts[1], parts[2:])
	default:
		apiErr(w, http.StatusNotFound, "not_found", "The resource you requested could not be found.")
	}
}

func (s *Server) options(w http.ResponseWriter) {
	var o godo.KubernetesOptions
	for _, v := range Versions {
		o.Versions = append(o.Versions, &godo.KubernetesVersion{Slug: v, KubernetesVersion: strings.Split(v, "-")[0]})
	}
	for _, r := range Regions {
		o.Regions = append(o.Regions, &godo.KubernetesRegion{Slug: r, Name: r})
	}
	for _, z := range Sizes {
		o.Sizes = append(o.Sizes, &godo.KubernetesNodeSize{Slug: z, Name: z})
	}
	reply(w, http.StatusOK, map[string]any{"options": o})
}

func (s *Server) list(w http.ResponseWriter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []godo.KubernetesCluster{}
	ids := make([]string, 0, len(s.cl))
	for id := range s.cl {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if c := s.cl[id]; !c.deleted {
			out = append(out, s.view(c))
		}
	}
	reply(w, http.StatusOK, map[string]any{"kubernetes_clusters": out, "meta": map[string]int{"total": len(out)}})
}

func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	var req godo.KubernetesClusterCreateRequest
	if !decode(w, r, &req) {
		return
	}
	switch {
	case req.Name == "":
		apiErr(w, http.StatusUnprocessableEntity, "unprocessable_entity", "name is required")
		return
	case !slices.Contains(Regions, req.RegionSlug):
		apiErr(w, http.StatusUnprocessableEntity, "unprocessable_entity", "invalid region")
		return
	case !slices.Contains(Versions, req.VersionSlug):
		apiErr(w, http.StatusUnprocessableEntity, "unprocessable_entity", "invalid version")
		return
	case len(req.NodePools) == 0:
		apiErr(w, http.StatusUnprocessableEntity, "unprocessable_entity", "at least one node pool is required")
		return
	}
	s.mu.Lock()
	for _, c := range s.cl {
		if c.k.Name == req.Name && !c.deleted {
			s.mu.Unlock()
			apiErr(w, http.StatusConflict, "conflict", "a cluster with this name already exists")
			return
		}
	}
	s.seq++
	id := fmt.Sprintf("c0ffee00-0000-4000-8000-%012d", s.seq)
	s.mu.Unlock()
	var cp *kubetest.ControlPlane
	var err error
	for range 3 { // a loopback port chosen free may be taken meanwhile
		if cp, err = kubetest.StartWith(s.bin, filepath.Join(s.tb.TempDir(), "cluster")); err == nil {
			break
		}
	}
	if err != nil {
		apiErr(w, http.StatusInternalServerError, "server_error", "control plane: "+err.Error())
		return
	}
	now := s.now()
	ha := false
	if req.HA != nil {
		ha = *req.HA
	}
	c := &cluster{cp: cp, readyAt: now.Add(s.Delay), target: req.VersionSlug}
	c.k = godo.KubernetesCluster{
		ID: id, Name: req.Name, RegionSlug: req.RegionSlug, VersionSlug: req.VersionSlug,
		Tags: append([]string{"k8s", "k8s:" + id}, req.Tags...), VPCUUID: req.VPCUUID,
		HA: ha, MaintenancePolicy: req.MaintenancePolicy, AutoUpgrade: req.AutoUpgrade, SurgeUpgrade: req.SurgeUpgrade,
		Endpoint: cp.Server, IPv4: "127.0.0.1", CreatedAt: now, UpdatedAt: now,
	}
	if c.k.VPCUUID == "" { // the region's default VPC
		c.k.VPCUUID = "d0d0d0d0-0000-4000-8000-000000000001"
	}
	s.mu.Lock()
	for _, p := range req.NodePools {
		c.k.NodePools = append(c.k.NodePools, s.newPool(c, p, now))
	}
	s.cl[id] = c
	view := s.view(c)
	s.mu.Unlock()
	reply(w, http.StatusCreated, map[string]any{"kubernetes_cluster": view})
}

func (s *Server) newPool(c *cluster, p *godo.KubernetesNodePoolCreateRequest, now time.Time) *godo.KubernetesNodePool {
	s.seq++
	np := &godo.KubernetesNodePool{
		ID: fmt.Sprintf("900100e0-0000-4000-8000-%012d", s.seq), Name: p.Name, Size: p.Size, Count: p.Count,
		Tags: p.Tags, Labels: p.Labels, Taints: p.Taints, AutoScale: p.AutoScale, MinNodes: p.MinNodes, MaxNodes: p.MaxNodes,
	}
	s.scale(np, now)
	return np
}

// scale gives np Count nodes, new ones provisioning for Delay.
func (s *Server) scale(np *godo.KubernetesNodePool, now time.Time) {
	if len(np.Nodes) > np.Count {
		np.Nodes = np.Nodes[:np.Count]
	}
	for len(np.Nodes) < np.Count {
		s.seq++
		np.Nodes = append(np.Nodes, &godo.KubernetesNode{
			ID: fmt.Sprintf("0de00000-0000-4000-8000-%012d", s.seq), Name: fmt.Sprintf("%s-%d", np.Name, s.seq),
			// UpdatedAt is when the node will be running (view).
			Status: &godo.KubernetesNodeStatus{State: "provisioning"}, CreatedAt: now, UpdatedAt: now.Add(s.Delay),
		})
	}
}

// view is the cluster as the API shows it at this moment (s.mu held).
func (s *Server) view(c *cluster) godo.KubernetesCluster {
	now := s.now()
	k := c.k
	state := godo.KubernetesClusterStatusRunning
	if now.Before(c.readyAt) {
		state = godo.KubernetesClusterStatusProvisioning
		if c.k.VersionSlug != c.target {
			state = godo.KubernetesClusterStatusUpgrading
		}
	} else if c.k.VersionSlug != c.target {
		c.k.VersionSlug = c.target
		k.VersionSlug = c.target
	}
	k.Status = &godo.KubernetesClusterStatus{State: state}
	k.NodePools = nil
	for _, p := range c.k.NodePools {
		cp := *p
		cp.Nodes = nil
		for _, n := range p.Nodes {
			nn := *n
			st := "provisioning"
			if !now.Before(n.UpdatedAt) {
				st = "running"
			}
			nn.Status = &godo.KubernetesNodeStatus{State: st}
			cp.Nodes = append(cp.Nodes, &nn)
		}
		k.NodePools = append(k.NodePools, &cp)
	}
	return k
}

func (s *Server) clusterOp(w http.ResponseWriter, r *http.Request, id string, rest []string) {
	s.mu.Lock()
	c := s.cl[id]
	if c == nil || c.deleted {
		s.mu.Unlock()
		apiErr(w, http.StatusNotFound, "not_found", "The resource you requested could not be found.")
		return
	}
	s.mu.Unlock()
	op := strings.Join(rest, "/")
	switch {
	case op == "" && r.Method == http.MethodGet:
		s.mu.Lock()
		v := s.view(c)
		s.mu.Unlock()
		reply(w, http.StatusOK, map[string]any{"kubernetes_cluster": v})
	case op == "" && r.Method == http.MethodPut:
		s.update(w, r, c)
	case op == "" && r.Method == http.MethodDelete:
		s.mu.Lock()
		c.deleted = true
		cp := c.cp
		c.cp = nil
		s.mu.Unlock()
		if cp != nil {
			cp.Stop()
		}
		w.WriteHeader(http.StatusNoContent)
	case op == "upgrade" && r.Method == http.MethodPost:
		var req godo.KubernetesClusterUpgradeRequest
		if !decode(w, r, &req) {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if !slices.Contains(Versions, req.VersionSlug) || compare(req.VersionSlug, c.k.VersionSlug) <= 0 {
			apiErr(w, http.StatusUnprocessableEntity, "unprocessable_entity", "invalid upgrade version")
			return
		}
		c.target, c.readyAt = req.VersionSlug, s.now().Add(s.Delay)
		w.WriteHeader(http.StatusAccepted)
	case op == "credentials" && r.Method == http.MethodGet:
		s.credentials(w, r, c)
	case op == "node_pools" && r.Method == http.MethodPost:
		var req godo.KubernetesNodePoolCreateRequest
		if !decode(w, r, &req) {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, p := range c.k.NodePools {
			if p.Name == req.Name {
				apiErr(w, http.StatusConflict, "conflict", "a node pool with this name already exists")
				return
			}
		}
		if !slices.Contains(Sizes, req.Size) {
			apiErr(w, http.StatusUnprocessableEntity, "unprocessable_entity", "invalid size")
			return
		}
		np := s.newPool(c, &req, s.now())
		c.k.NodePools = append(c.k.NodePools, np)
		reply(w, http.StatusCreated, map[string]any{"node_pool": np})
	case len(rest) == 2 && rest[0] == "node_pools":
		s.poolOp(w, r, c, rest[1])
	default:
		apiErr(w, http.StatusNotFound, "not_found", "The resource you requested could not be found.")
	}
}

func (s *Server) update(w http.ResponseWriter, r *http.Request, c *cluster) {
	var req godo.KubernetesClusterUpdateRequest
	if !decode(w, r, &req) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.HA != nil {
		if c.k.HA && !*req.HA {
			apiErr(w, http.StatusUnprocessableEntity, "unprocessable_entity", "high availability cannot be disabled")
			return
		}
		c.k.HA = *req.HA
	}
	if req.Tags != nil {
		c.k.Tags = append([]string{"k8s", "k8s:" + c.k.ID}, req.Tags...)
	}
	if req.MaintenancePolicy != nil {
		c.k.MaintenancePolicy = req.MaintenancePolicy
	}
	if req.AutoUpgrade != nil {
		c.k.AutoUpgrade = *req.AutoUpgrade
	}
	c.k.SurgeUpgrade = req.SurgeUpgrade
	c.k.UpdatedAt = s.now()
	reply(w, http.StatusAccepted, map[string]any{"kubernetes_cluster": s.view(c)})
}

func (s *Server) poolOp(w http.ResponseWriter, r *http.Request, c *cluster, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(c.k.NodePools, func(p *godo.KubernetesNodePool) bool { return p.ID == id })
	if i < 0 {
		apiErr(w, http.StatusNotFound, "not_found", "The resource you requested could not be found.")
		return
	}
	np := c.k.NodePools[i]
	switch r.Method {
	case http.MethodDelete:
		c.k.NodePools = slices.Delete(c.k.NodePools, i, i+1)
		w.WriteHeader(http.StatusNoContent)
	case http.MethodPut:
		var req godo.KubernetesNodePoolUpdateRequest
		s.mu.Unlock()
		ok := decode(w, r, &req)
		s.mu.Lock()
		if !ok {
			return
		}
		if req.AutoScale != nil {
			np.AutoScale = *req.AutoScale
		}
		if req.MinNodes != nil {
			np.MinNodes = *req.MinNodes
		}
		if req.MaxNodes != nil {
			np.MaxNodes = *req.MaxNodes
		}
		if req.Count != nil {
			np.Count = *req.Count
		}
		if np.AutoScale {
			np.Count = max(np.MinNodes, min(np.Count, np.MaxNodes))
		}
		if req.Labels != nil {
			np.Labels = req.Labels
		}
		if req.Taints != nil {
			np.Taints = *req.Taints
		}
		if req.Tags != nil {
			np.Tags = req.Tags
		}
		s.scale(np, s.now())
		reply(w, http.StatusAccepted, map[string]any{"node_pool": np})
	default:
		apiErr(w, http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed")
	}
}

func (s *Server) credentials(w http.ResponseWriter, r *http.Request, c *cluster) {
	ttl := s.CredentialTTL
	if v := r.URL.Query().Get("expiry_seconds"); v != "" {
		secs, err := strconv.Atoi(v)
		if err != nil || secs <= 0 {
			apiErr(w, http.StatusUnprocessableEntity, "unprocessable_entity", "invalid expiry_seconds")
			return
		}
		ttl = min(ttl, time.Duration(secs)*time.Second)
	}
	s.mu.Lock()
	cp, running := c.cp, !s.now().Before(c.readyAt)
	s.mu.Unlock()
	if !running {
		apiErr(w, http.StatusNotFound, "not_found", "cluster is not running yet")
		return
	}
	expires := s.now().Add(ttl).Truncate(time.Second)
	cert, key, err := cp.IssueClient("do-fake-admin", []string{"system:masters"}, expires)
	if err != nil {
		apiErr(w, http.StatusInternalServerError, "server_error", err.Error())
		return
	}
	ca, err := cp.CA()
	if err != nil {
		apiErr(w, http.StatusInternalServerError, "server_error", err.Error())
		return
	}
	reply(w, http.StatusOK, godo.KubernetesClusterCredentials{
		Server: cp.Server, CertificateAuthorityData: ca, ClientCertificateData: cert, ClientKeyData: key, ExpiresAt: expires,
	})
}

func compare(a, b string) int {
	num := func(v string) []int {
		var out []int
		for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r < '0' || r > '9' }) {
			n, _ := strconv.Atoi(f)
			out = append(out, n)
		}
		return out
	}
	return slices.Compare(num(a), num(b))
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	if err := dec.Decode(v); err != nil {
		apiErr(w, http.StatusBadRequest, "bad_request", "invalid JSON: "+err.Error())
		return false
	}
	return true
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func apiErr(w http.ResponseWriter, status int, id, msg string) {
	reply(w, status, map[string]string{"id": id, "message": msg})
}
