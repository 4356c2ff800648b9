package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := WriteFile(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("two"), 0o640); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	fi, _ := os.Stat(p)
	if err != nil || string(b) != "two" || fi.Mode().Perm() != 0o640 {
		t.Fatalf("content %q, mode %v, %v", b, fi.Mode(), err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("left %d entries, want only the file", len(ents))
	}
	if err := WriteFile(filepath.Join(dir, "new", "f"), []byte("x"), 0o644); err != nil {
		t.Errorf("into a new directory: %v", err)
	}
	if err := WriteFile(filepath.Join(p, "f"), nil, 0o644); err == nil {
		t.Error("wrote below a file")
	}
}
