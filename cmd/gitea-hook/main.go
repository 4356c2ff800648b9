// Command gitea-hook runs gitea's git hooks in an image without a shell.
//
// Gitea writes its repositories' hooks as bash scripts, and the gitea image
// has no shell. Instead, gitea's git configuration points core.hooksPath at a
// directory where this one static program stands under each hook's name
// (pre-receive, update, post-receive, proc-receive); it runs what gitea's
// scripts would: `gitea hook --config=CONFIG NAME ARGS...`, with the hook's
// standard input, output and environment.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Where gitea and its configuration are in the image; GITEA_HOOK_GITEA and
// GITEA_HOOK_CONFIG override them.
const (
	defaultGitea  = "/bin/gitea"
	defaultConfig = "/var/lib/gitea/app.ini"
)

var hooks = map[string]bool{"pre-receive": true, "update": true, "post-receive": true, "proc-receive": true}

func main() {
	args, err := command(os.Args, os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gitea-hook:", err)
		os.Exit(1)
	}
	err = syscall.Exec(args[0], args, os.Environ())
	fmt.Fprintf(os.Stderr, "gitea-hook: run %s: %v\n", args[0], err)
	os.Exit(1)
}

// command returns the gitea command line for the hook named by argv[0].
func command(argv []string, getenv func(string) string) ([]string, error) {
	name := filepath.Base(argv[0])
	if !hooks[name] {
		return nil, fmt.Errorf("run as %q: install this program under a hook's name (pre-receive, update, post-receive, proc-receive)", name)
	}
	gitea, config := defaultGitea, defaultConfig
	if v := getenv("GITEA_HOOK_GITEA"); v != "" {
		gitea = v
	}
	if v := getenv("GITEA_HOOK_CONFIG"); v != "" {
		config = v
	}
	return append([]string{gitea, "hook", "--config=" + config, name}, argv[1:]...), nil
}
