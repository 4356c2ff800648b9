package registry

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// conformanceModule is the OCI distribution-spec conformance suite, pinned.
const conformanceModule = "github.com/opencontainers/distribution-spec/conformance"
const conformanceVersion = "v0.0.0-20260831232431-97274622c111"

// conformanceEnv configures the suite: every workflow on (pull, push,
// content discovery, content management), plain http, and off only the
// optional features the distribution registry lacks:
//
//   - OCI_DATA_SHA512: distribution digests uploads with sha256 only (it
//     answers a sha512 upload with a sha256 Docker-Content-Digest).
//   - OCI_API_REFERRER: distribution v3.1 has no referrers API (GET
//     /v2/NAME/referrers/DIGEST is a plain-text 404). Manifests with a
//     subject are stored and served fine: those data tests stay on.
//   - OCI_DATA_NONDISTRIBUTABLE: manifests referencing foreign layers by URL
//     are refused with 400 MANIFEST_INVALID (distribution's validation
//     allows no layer URLs; check.go answers them before distribution's
//     500), as they should be for a stack that builds every layer itself;
//     the data type is deprecated in image-spec 1.1.
var conformanceEnv = []string{
	"OCI_TLS=disabled",
	"OCI_VERSION=1.1",
	"OCI_LOG=warn",
	"OCI_REPO1=conformance/repo1",
	"OCI_REPO2=conformance/repo2",
	"OCI_API_PING=true",
	"OCI_API_PULL=true",
	"OCI_API_PUSH=true",
	"OCI_API_TAGS_LIST=true",
	"OCI_API_BLOBS_DELETE=true",
	"OCI_API_MANIFESTS_DELETE=true",
	"OCI_API_TAGS_DELETE=true",
	"OCI_DATA_SHA512=false",
	"OCI_API_REFERRER=false",
	"OCI_DATA_NONDISTRIBUTABLE=false",
}

// TestConformance runs the OCI distribution-spec conformance suite against
// the registry. It builds the suite with the go command (the module and
// build caches make reruns fast: about 40 s warm on 2 cores).
func TestConformance(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH; it is needed to build the conformance suite")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	// Build the suite in a throwaway module.
	mod := t.TempDir()
	gomod := fmt.Sprintf("module stackconformance\n\ngo 1.26\n\nrequire %s %s\n", conformanceModule, conformanceVersion)
	if err := os.WriteFile(filepath.Join(mod, "go.mod"), []byte(gomod), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(mod, "conformance")
	build := exec.CommandContext(ctx, goCmd, "build", "-o", bin, conformanceModule)
	build.Dir = mod
	build.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off", "GOTOOLCHAIN=local", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the conformance suite %s@%s: %v\n%s", conformanceModule, conformanceVersion, err, out)
	}

	r, logs := startRegistry(t, Config{})

	// Run it from an empty directory so no oci-conformance.yaml is read,
	// with no OCI_ settings but ours.
	work := t.TempDir()
	results := filepath.Join(work, "results")
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OCI_") {
			env = append(env, kv)
		}
	}
	env = append(env, conformanceEnv...)
	env = append(env, "OCI_REGISTRY="+r.Addr(), "OCI_RESULTS_DIR="+results)
	run := exec.CommandContext(ctx, bin)
	run.Dir = work
	run.Env = env
	var stdout, stderr bytes.Buffer
	run.Stdout, run.Stderr = &stdout, &stderr
	err = run.Run()
	report := stdout.String()
	if err != nil || !strings.Contains(report, "OCI Conformance Result: Pass") {
		t.Errorf("conformance suite failed: %v\n%s\n%s\nregistry logs:\n%s", err, report, stderr.String(), tail(logs.String(), 4000))
	}
	counts := map[string]int{}
	for _, m := range regexp.MustCompile(`(?m)^  (Disabled|Skip|Pass|FAIL|Error)\.*:\s+(\d+)$`).FindAllStringSubmatch(report, -1) {
		counts[m[1]], _ = strconv.Atoi(m[2])
	}
	if counts["FAIL"] != 0 || counts["Error"] != 0 || counts["Pass"] < 100 {
		t.Errorf("conformance counts %v: want no failures or errors and at least 100 passes", counts)
	}
	if _, err := os.Stat(filepath.Join(results, "results.yaml")); err != nil {
		t.Errorf("no results written: %v", err)
	}
	t.Logf("conformance: %d passed, %d skipped, %d disabled", counts["Pass"], counts["Skip"], counts["Disabled"])
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
