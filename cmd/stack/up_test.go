package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUpCommandsWithoutCluster: what up, down, status and kubeconfig say
// when there is no cluster, and on an environment of another backend.
func TestUpCommandsWithoutCluster(t *testing.T) {
	cache := t.TempDir()
	base := []string{"-C", repoRoot(t), "--cache", cache}
	tests := []struct {
		name    string
		args    []string
		out     string
		wantErr string
	}{
		{"kubeconfig before up", []string{"kubeconfig"}, "", "development has no kubeconfig yet"},
		{"up of a remote environment", []string{"up", "production"}, "", "stack up brings up local environments only"},
		{"unknown environment", []string{"status", "nowhere"}, "", "nowhere"},
		{"down of nothing", []string{"down"}, "", ""},
		{"status of nothing", []string{"status"}, "kube-apiserver           stopped", ""},
		{"status of nothing, its state", []string{"status"}, "environment development (cluster development)\n  nothing deployed yet", ""},
		{"status of a remote environment", []string{"status", "staging"}, "environment staging (cluster staging)\n  nothing deployed yet", ""},
		{"too many arguments", []string{"up", "a", "b"}, "", "accepts at most 1 arg"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := run(t, append(base, tc.args...)...)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("error %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("got %v, want an error saying %q", err, tc.wantErr)
			}
			if !strings.Contains(out, tc.out) {
				t.Errorf("output %q lacks %q", out, tc.out)
			}
		})
	}

	// kubeconfig prints the path once up has written it.
	kc := filepath.Join(cache, "node", "development", "kubeconfig")
	os.MkdirAll(filepath.Dir(kc), 0o700)
	os.WriteFile(kc, []byte("apiVersion: v1\n"), 0o600)
	out, _, err := run(t, append(base, "kubeconfig")...)
	if err != nil || strings.TrimSpace(out) != kc {
		t.Errorf("kubeconfig: %q %v, want %s", out, err, kc)
	}

	out, _, err = run(t, append(base, "status", "-o", "json")...)
	var st struct {
		Environment string
		Node        []map[string]any
	}
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || len(st.Node) != 7 || st.Environment != "development" {
		t.Errorf("status -o json: %v %s", err, out)
	}
}
