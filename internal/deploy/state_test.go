package deploy

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestStateRepo writes commits to a state repo and reads them back, and
// refuses a write whose parent is no longer the head.
func TestStateRepo(t *testing.T) {
	ctx := context.Background()
	s := newState(t)
	if snap, err := s.Head(ctx); snap != nil || err != nil {
		t.Fatalf("empty repo: %v %v", snap, err)
	}
	commit := strings.Repeat("a", 40)
	c := &Commit{
		Record:    &Record{Environment: "dev", Cluster: "dev", Commit: commit},
		Inventory: Inventory{{"v1", "ConfigMap", "x", "y"}},
		Files:     map[string][]byte{"x/configmap/y.yaml": []byte("kind: ConfigMap\n")},
		Subject:   "deploy dev", Status: StatusDeployed, By: Person{Name: "A <evil>\nname", Email: "a@example.org"},
	}
	first, err := s.Write(ctx, "", c)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := s.Head(ctx)
	if err != nil || snap.Commit != first || snap.Record.Commit != commit || string(snap.Files["x/configmap/y.yaml"]) != "kind: ConfigMap\n" || len(snap.Inventory) != 1 {
		t.Fatalf("head %+v %v", snap, err)
	}
	msg, _ := git(ctx, s.Dir, nil, "log", "-1", "--format=%an|%B", StateBranch)
	for _, want := range []string{"A  evil  name|deploy dev", "Stack-Source-Commit: " + commit, "Stack-Status: deployed", "Stack-Deployed-By: A  evil  name <a@example.org>"} {
		if !strings.Contains(string(msg), want) {
			t.Errorf("commit message lacks %q:\n%s", want, msg)
		}
	}
	delete(c.Files, "x/configmap/y.yaml")
	second, err := s.Write(ctx, first, c)
	if err != nil {
		t.Fatal(err)
	}
	if snap, _ := s.Head(ctx); snap.Commit != second || len(snap.Files) != 0 {
		t.Errorf("second commit: %+v", snap)
	}
	// A writer that read the first head must not overwrite the second.
	c.Subject = "a concurrent deploy"
	if _, err := s.Write(ctx, first, c); err == nil || !strings.Contains(err.Error(), "moved while this deploy ran") {
		t.Errorf("write from a stale parent: %v", err)
	}
	if _, err := s.Write(ctx, "", c); err == nil {
		t.Error("a second first commit succeeded")
	}
	if snap, _ := s.Head(ctx); snap.Commit != second {
		t.Error("head moved")
	}

	unlock, err := s.Lock()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lock(); err == nil || !strings.Contains(err.Error(), "another deploy") {
		t.Errorf("second lock: %v", err)
	}
	unlock()
	unlock2, err := s.Lock()
	if err != nil {
		t.Errorf("lock after unlock: %v", err)
	} else {
		unlock2()
	}
}

// TestStateLockWaits: a second holder waits for the lock (a drift check
// holds it a second), and gives up with one line after LockWait.
func TestStateLockWaits(t *testing.T) {
	s := newState(t)
	unlock, err := s.Lock()
	if err != nil {
		t.Fatal(err)
	}
	go func() { time.Sleep(300 * time.Millisecond); unlock() }()
	start := time.Now()
	unlock2, err := s.Lock()
	if err != nil || time.Since(start) < 250*time.Millisecond {
		t.Fatalf("second Lock: %v after %s, want it after the first's release", err, time.Since(start))
	}
	defer unlock2()
	old := LockWait
	LockWait = 200 * time.Millisecond
	defer func() { LockWait = old }()
	if _, err := s.Lock(); err == nil || !strings.Contains(err.Error(), "holds the state repo") || !strings.Contains(err.Error(), "waited 200ms") {
		t.Errorf("Lock while held: %v", err)
	}
}
