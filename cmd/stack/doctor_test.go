package main

import (
	"encoding/json"
	"io"
	"testing"
)

// TestDoctorExitStatus: whatever this machine has, stack doctor -o json
// prints the report alone on stdout and exits 1 exactly when a check failed.
func TestDoctorExitStatus(t *testing.T) {
	out, _, err := run(t, "-C", repoRoot(t), "--cache", t.TempDir(), "doctor", "-o", "json")
	var r struct {
		OK     bool `json:"ok"`
		Failed int  `json:"failed"`
		Checks []struct {
			Status string `json:"status"`
		} `json:"checks"`
	}
	if jerr := json.Unmarshal([]byte(out), &r); jerr != nil {
		t.Fatalf("%v\n%s", jerr, out)
	}
	failed := 0
	for _, c := range r.Checks {
		if c.Status == "fail" {
			failed++
		}
	}
	if failed != r.Failed || r.OK != (failed == 0) || len(r.Checks) < 10 {
		t.Errorf("report says ok=%v failed=%d, its %d checks %d failed", r.OK, r.Failed, len(r.Checks), failed)
	}
	if code := exit(io.Discard, err); code != map[bool]int{true: 0, false: 1}[r.OK] {
		t.Errorf("exit status %d with ok=%v (%v)", code, r.OK, err)
	}
}
