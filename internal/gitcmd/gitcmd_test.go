package gitcmd

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := Run(ctx, dir, "init", "-q"); err != nil {
		t.Fatal(err)
	}
	out, err := Cmd{Dir: dir, Stdin: strings.NewReader("hello\n")}.Run(ctx, "hash-object", "--stdin")
	if err != nil || strings.TrimSpace(string(out)) != "ce013625030ba8dba906f756967f9e9ca394464a" {
		t.Fatalf("hash-object: %q %v", out, err)
	}
	_, err = Run(ctx, dir, "rev-parse", "--verify", "no-such-ref")
	var ge *Error
	if !errors.As(err, &ge) || ge.ExitCode() != 128 || !strings.HasPrefix(err.Error(), "git rev-parse: fatal:") {
		t.Fatalf("failing command: %v", err)
	}
}
