package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestServeFlagRanges: --jobs, --job-memory and --job-pids out of range
// are refused in one line before anything starts.
func TestServeFlagRanges(t *testing.T) {
	for _, tt := range []struct {
		flag, value, want string
	}{
		{"--jobs", "0", "--jobs 0: the number of CI jobs run at once must be from 1 to 64"},
		{"--jobs", "-2", "--jobs -2: the number of CI jobs run at once must be from 1 to 64"},
		{"--jobs", "65", "--jobs 65: the number of CI jobs run at once must be from 1 to 64"},
		{"--jobs", "1", "no config/sources.yaml"}, // accepted: serve goes on to look for the repository
		{"--jobs", "64", "no config/sources.yaml"},
		{"--job-memory", "2G", `--job-memory: "2G" is not a size: write a whole number with KiB, MiB, GiB or TiB (2GiB), or bytes`},
		{"--job-memory", "1MiB", "--job-memory 1MiB: a job needs at least 16MiB"},
		{"--job-memory", "512MiB", "no config/sources.yaml"},
		{"--job-pids", "15", "--job-pids 15: the number of processes a job may have must be from 16 to 1048576"},
		{"--job-pids", "4096", "no config/sources.yaml"},
	} {
		t.Run(tt.flag+"="+tt.value, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cmd := newRootCmd()
			cmd.SetArgs([]string{"-C", t.TempDir(), "serve", "--data", t.TempDir(), tt.flag, tt.value,
				"--registry-addr", "127.0.0.1:0", "--ssh-addr", "127.0.0.1:0"})
			cmd.SetOut(new(strings.Builder))
			cmd.SetErr(new(strings.Builder))
			err := cmd.ExecuteContext(ctx)
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("stack serve %s %s: %v, want one line with %q", tt.flag, tt.value, err, tt.want)
			}
		})
	}
}
