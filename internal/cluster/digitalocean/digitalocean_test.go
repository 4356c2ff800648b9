package digitalocean

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/digitalocean/godo"
)

// loopback starts h on 127.0.0.1, closed when t ends.
func loopback(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Listener = l
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// TestRetry checks the bounds of retrying: 429 honours Retry-After (capped
// at MaxWait) for every method, a 5xx is retried except for a create
// (POST), and the attempts end at MaxAttempts.
func TestRetry(t *testing.T) {
	for _, tt := range []struct {
		name       string
		method     string
		statuses   []int
		retryAfter string
		wantCalls  int
		wantStatus int
		wantSleeps []time.Duration
	}{
		{"429 then ok", "GET", []int{429, 200}, "2", 2, 200, []time.Duration{2 * time.Second}},
		{"429 on a create", "POST", []int{429, 201}, "1", 2, 201, []time.Duration{time.Second}},
		{"Retry-After capped", "GET", []int{429, 200}, "3600", 2, 200, []time.Duration{MaxWait}},
		{"500s back off", "PUT", []int{500, 502, 503, 200}, "", 4, 200, []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second}},
		{"500 on a create is not repeated", "POST", []int{500, 201}, "", 1, 500, nil},
		{"4xx is an answer", "GET", []int{404}, "", 1, 404, nil},
		{"bounded", "GET", []int{500, 500, 500, 500, 500, 500, 500, 500}, "", MaxAttempts, 500, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := loopback(t, func(w http.ResponseWriter, r *http.Request) {
				i := int(calls.Add(1)) - 1
				if r.Method == "POST" || r.Method == "PUT" {
					if b := make([]byte, 4); r.Body == nil {
						t.Error("no body")
					} else if n, _ := r.Body.Read(b); string(b[:n]) != "body" {
						t.Errorf("attempt %d got body %q", i, b[:n])
					}
				}
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				w.WriteHeader(tt.statuses[min(i, len(tt.statuses)-1)])
			})
			var sleeps []time.Duration
			rt := &retrying{base: http.DefaultTransport, sleep: func(_ context.Context, d time.Duration) error { sleeps = append(sleeps, d); return nil }}
			req, _ := http.NewRequest(tt.method, srv.URL, strings.NewReader("body"))
			resp, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus || int(calls.Load()) != tt.wantCalls {
				t.Errorf("status %d after %d calls, want %d after %d", resp.StatusCode, calls.Load(), tt.wantStatus, tt.wantCalls)
			}
			if tt.wantSleeps != nil && !equalDurations(sleeps, tt.wantSleeps) {
				t.Errorf("slept %v, want %v", sleeps, tt.wantSleeps)
			}
		})
	}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRetryStopsOnCancel: a cancelled context ends the waiting at once.
func TestRetryStopsOnCancel(t *testing.T) {
	srv := loopback(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "20")
		w.WriteHeader(429)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	start := time.Now()
	_, err := (&retrying{base: http.DefaultTransport, sleep: sleepCtx}).RoundTrip(req)
	if err == nil || time.Since(start) > 5*time.Second {
		t.Errorf("err %v after %s", err, time.Since(start))
	}
}

func spec() *Spec {
	return &Spec{Region: "ams3", Version: "1.36.3-do.0", Maintenance: Maintenance{Day: "sunday", Start: "03:00"}, Tags: []string{"a"},
		Pools: []Pool{{Name: "workers", Size: "s-2vcpu-4gb", Count: 2, Labels: map[string]string{"pool": "w"}}}}
}

func live(s *Spec) *godo.KubernetesCluster {
	day, _ := godo.KubernetesMaintenanceToDay(s.Maintenance.Day)
	k := &godo.KubernetesCluster{ID: "id", Name: "staging", RegionSlug: s.Region, VersionSlug: s.Version, HA: s.HA, VPCUUID: "vpc",
		Tags: append([]string{"k8s", "k8s:id"}, s.Tags...), MaintenancePolicy: &godo.KubernetesMaintenancePolicy{Day: day, StartTime: s.Maintenance.Start}}
	for _, p := range s.Pools {
		lp := &godo.KubernetesNodePool{ID: "p-" + p.Name, Name: p.Name, Size: p.Size, Count: p.Count, Labels: p.Labels, Tags: p.Tags}
		if p.Autoscale != nil {
			lp.AutoScale, lp.MinNodes, lp.MaxNodes, lp.Count = true, p.Autoscale.Min, p.Autoscale.Max, p.Autoscale.Min
		}
		k.NodePools = append(k.NodePools, lp)
	}
	return k
}

// TestDiff checks the plan of each kind of change: create, in place,
// replacement, deletion, and nothing for a cluster that matches.
func TestDiff(t *testing.T) {
	if p := diff("staging", spec(), nil); len(p.Changes) != 1 || p.Changes[0].Action != Create || p.Changes[0].String() != "+ cluster (ams3 1.36.3-do.0, 1 pools)" {
		t.Errorf("empty account: %+v", p.Changes)
	}
	if p := diff("staging", spec(), live(spec())); !p.Empty() {
		t.Errorf("matching cluster: %s", p.Text())
	}
	for _, tt := range []struct {
		name string
		edit func(*Spec)
		want []string
	}{
		{"scale", func(s *Spec) { s.Pools[0].Count = 3 }, []string{"~ pool workers nodes: 2 → 3"}},
		{"autoscale", func(s *Spec) { s.Pools[0].Count, s.Pools[0].Autoscale = 0, &Autoscale{Min: 2, Max: 4} }, []string{"~ pool workers nodes: 2 → autoscale 2-4"}},
		{"region", func(s *Spec) { s.Region = "fra1" }, []string{"-/+ cluster region: ams3 → fra1 (needs replacement)"}},
		{"size", func(s *Spec) { s.Pools[0].Size = "s-4vcpu-8gb" }, []string{"-/+ pool workers size: s-2vcpu-4gb → s-4vcpu-8gb (needs replacement)"}},
		{"upgrade", func(s *Spec) { s.Version = "1.36.10-do.0" }, []string{"~ cluster version: 1.36.3-do.0 → 1.36.10-do.0"}},
		{"downgrade", func(s *Spec) { s.Version = "1.35.8-do.1" }, []string{"-/+ cluster version: 1.36.3-do.0 → 1.35.8-do.1 (needs replacement)"}},
		{"ha on", func(s *Spec) { s.HA = true }, []string{"~ cluster ha: false → true"}},
		{"tags", func(s *Spec) { s.Tags = []string{"b", "a"} }, []string{"~ cluster tags: a → a,b"}},
		{"window", func(s *Spec) { s.Maintenance.Start = "04:00" }, []string{"~ cluster maintenance: sunday 03:00 → sunday 04:00"}},
		{"taint", func(s *Spec) { s.Pools[0].Taints = []string{"db=x:NoSchedule"} }, []string{"~ pool workers taints: - → db=x:NoSchedule"}},
		{"new pool", func(s *Spec) { s.Pools = append(s.Pools, Pool{Name: "db", Size: "s-1vcpu-2gb", Count: 1}) }, []string{"+ pool db (s-1vcpu-2gb × 1)"}},
		{"vpc", func(s *Spec) { s.VPC = "d0d0d0d0-0000-4000-8000-000000000002" }, []string{"-/+ cluster vpc: vpc → d0d0d0d0-0000-4000-8000-000000000002 (needs replacement)"}},
	} {
		s := spec()
		tt.edit(s)
		p := diff("staging", s, live(spec()))
		var got []string
		for _, c := range p.Changes {
			got = append(got, c.String())
		}
		if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
			t.Errorf("%s: plan\n%s\nwant\n%s", tt.name, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
		}
	}
	s := spec()
	s.Pools[0].Name = "general"
	p := diff("staging", s, live(spec()))
	if got := p.Text(); got != "+ pool general (s-2vcpu-4gb × 2)\n- pool workers (s-2vcpu-4gb × 2)\ncluster staging: 1 to create, 0 to update, 1 to delete, 0 needing replacement\n" {
		t.Errorf("renamed pool:\n%s", got)
	}
	// HA cannot be turned off.
	on := spec()
	on.HA = true
	if p := diff("staging", spec(), live(on)); len(p.Replacements()) != 1 || !p.replacesCluster() {
		t.Errorf("ha off: %s", p.Text())
	}
}

func TestParseTaint(t *testing.T) {
	for in, want := range map[string]string{
		"dedicated=db:NoSchedule": "dedicated=db:NoSchedule", "gpu:NoExecute": "gpu:NoExecute",
		"example.com/k=v:PreferNoSchedule": "example.com/k=v:PreferNoSchedule",
		"k=v":                              "", "k=v:Never": "", ":NoSchedule": "", "k=v v:NoSchedule": "",
	} {
		tt, err := ParseTaint(in)
		if got := tt.String(); (err == nil) != (want != "") || (err == nil && got != want) {
			t.Errorf("ParseTaint(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func FuzzParseTaint(f *testing.F) {
	for _, s := range []string{"a=b:NoSchedule", "a:NoExecute", "::", "a=:NoSchedule"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tt, err := ParseTaint(s)
		if err != nil {
			return
		}
		again, err := ParseTaint(tt.String())
		if err != nil || again != tt {
			t.Fatalf("%q parsed as %+v, which does not round-trip: %+v %v", s, tt, again, err)
		}
	})
}

// TestCredentialsFile: saved 0600 in a 0700 directory, refused when
// others may read them, and Fresh only with a quarter of the lifetime left.
func TestCredentialsFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "clusters", "staging", "credentials.json")
	now := time.Now()
	cr := &Credentials{ClusterID: "id", Server: "https://127.0.0.1:1", CA: []byte("ca"), Token: "secret", IssuedAt: now, ExpiresAt: now.Add(4 * time.Hour)}
	if err := cr.Save(file); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{file: 0o600, filepath.Dir(file): 0o700} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v %v, want %v", p, fi.Mode(), err, want)
		}
	}
	got, err := LoadCredentials(file)
	if err != nil || got.Token != "secret" || !got.ExpiresAt.Equal(cr.ExpiresAt) {
		t.Fatalf("load: %+v %v", got, err)
	}
	if !got.Fresh(now.Add(2*time.Hour)) || got.Fresh(now.Add(3*time.Hour+time.Minute)) || got.Fresh(now.Add(5*time.Hour)) {
		t.Error("Fresh: wrong at 2h, 3h01 or 5h of 4h")
	}
	os.Chmod(file, 0o644)
	if _, err := LoadCredentials(file); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable: %v", err)
	}
}

func FuzzParseCredentials(f *testing.F) {
	f.Add([]byte(`{"cluster_id":"x","server":"https://s","certificate_authority_data":"Y2E=","token":"t","expires_at":"2030-01-01T00:00:00Z"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cr, err := ParseCredentials("c.json", data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("two-line error %q", err)
			}
			return
		}
		if cr.Server == "" || cr.ClusterID == "" || cr.ExpiresAt.IsZero() || cr.Token == "" && len(cr.ClientKey) == 0 {
			t.Fatalf("accepted %+v", cr)
		}
	})
}

// TestNoToken: one line saying how to set the token.
func TestNoToken(t *testing.T) {
	t.Setenv(TokenEnv, "")
	t.Setenv(TokenFileEnv, "")
	if _, err := NewClient(); err == nil || err.Error() != ErrNoToken.Error() {
		t.Errorf("no token: %v", err)
	}
	f := filepath.Join(t.TempDir(), "token")
	os.WriteFile(f, []byte("tok-from-file\n"), 0o600)
	t.Setenv(TokenFileEnv, f)
	if c, err := NewClient(); err != nil || c == nil {
		t.Errorf("token file: %v", err)
	}
	os.WriteFile(f, []byte("two tokens\n"), 0o600)
	if _, err := NewClient(); err == nil || !strings.Contains(err.Error(), "does not hold one token") || strings.Contains(err.Error(), "two tokens") {
		t.Errorf("bad token file: %v", err)
	}
}
