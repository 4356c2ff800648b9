package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestServeJobsRange: --jobs outside 1..maxJobs is refused before
// anything starts.
func TestServeJobsRange(t *testing.T) {
	for _, tt := range []struct {
		jobs, want string
	}{
		{"0", "--jobs 0: the number of CI jobs run at once must be from 1 to 64"},
		{"-2", "--jobs -2: the number of CI jobs run at once must be from 1 to 64"},
		{"65", "--jobs 65: the number of CI jobs run at once must be from 1 to 64"},
		{"1", "no config/sources.yaml"}, // accepted: serve goes on to look for the repository
		{"64", "no config/sources.yaml"},
	} {
		t.Run(tt.jobs, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cmd := newRootCmd()
			cmd.SetArgs([]string{"-C", t.TempDir(), "serve", "--data", t.TempDir(), "--jobs", tt.jobs,
				"--registry-addr", "127.0.0.1:0", "--ssh-addr", "127.0.0.1:0"})
			cmd.SetOut(new(strings.Builder))
			cmd.SetErr(new(strings.Builder))
			err := cmd.ExecuteContext(ctx)
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("stack serve --jobs %s: %v, want one line with %q", tt.jobs, err, tt.want)
			}
		})
	}
}
