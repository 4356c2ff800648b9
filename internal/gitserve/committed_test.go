package gitserve

import (
	"os"
	"testing"
)

// TestCommittedAccess: the repository's own config/git.yaml parses, and
// nobody may push to a cluster's state repo, which only stack deploy writes.
func TestCommittedAccess(t *testing.T) {
	data, err := os.ReadFile("../../config/git.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a, err := ParseAccess(data)
	if err != nil {
		t.Fatal(err)
	}
	rule, ok := a.Repos["state/*"]
	if !ok || len(rule.Write) != 0 || len(rule.Read) == 0 {
		t.Errorf("state/* rule %+v: want readable, written by nobody", rule)
	}
}
