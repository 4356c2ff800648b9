package kubetest

import (
	"strings"
	"testing"
)

// TestStart starts a control plane and lists its namespaces with the built
// kubectl.
func TestStart(t *testing.T) {
	cp := Start(t)
	out, err := cp.Kubectl("get", "namespaces", "-o", "name").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "namespace/default") {
		t.Errorf("namespaces: %s", out)
	}
	out, err = cp.Kubectl("version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "v1.36") {
		t.Errorf("kubectl version: %v\n%s", err, out)
	}
}
