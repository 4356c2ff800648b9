package deploy

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hashbang/stack/internal/ci"
)

// TestDriftPipeline checks that the repository's CI runs the drift check on
// a timer.
func TestDriftPipeline(t *testing.T) {
	file := filepath.Join("..", "..", "ci", "pipelines.yaml")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ci.Parse(file, data)
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Pipeline("drift")
	if p == nil || p.Run != "ci/drift" || p.Timer == "" {
		t.Fatalf("drift pipeline: %+v", p)
	}
	if st, err := os.Stat(filepath.Join("..", "..", "ci", "drift")); err != nil || st.Mode()&0o111 == 0 {
		t.Errorf("ci/drift is not an executable: %v", err)
	}
}
