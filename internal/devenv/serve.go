package devenv

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"
)

// ensureRegistry uses the registry answering at RegistryAddr, or starts
// `stack serve` detached (its own session, outliving stack up), records its
// PID and waits for the registry to answer. It reports whether it started
// stack serve.
func (e *Env) ensureRegistry(ctx context.Context) (bool, error) {
	if registryUp(ctx, e.RegistryAddr) {
		return false, nil
	}
	err := e.startServe(ctx)
	return err == nil, err
}

// serveService is the name under which the node keeps the `stack serve`
// that Up started (node.StartService): supervised, stopped by Down.
const serveService = "serve"

func (e *Env) startServe(ctx context.Context) error {
	step := e.Progress.Start("start stack serve (registry at %s)", e.RegistryAddr)
	data, err := e.WS.DataDir()
	if err != nil {
		return step.Done(err)
	}
	args := []string{e.Exe, "--repo", e.WS.Root, "--cache", e.WS.Cache, "--data", data, "serve", "--registry-addr", e.RegistryAddr, "--drift", e.Env.Name}
	proc, err := e.Node.StartService(serveService, args, serveEnv())
	if err != nil {
		return step.Done(fmt.Errorf("start stack serve: %w", err))
	}
	deadline := time.Now().Add(60 * time.Second)
	for !registryUp(ctx, e.RegistryAddr) {
		if !proc.Alive() {
			e.stopServe()
			return step.Done(fmt.Errorf("stack serve exited before its registry answered at %s: see %s", e.RegistryAddr, proc.Log))
		}
		if time.Now().After(deadline) {
			e.stopServe()
			return step.Done(fmt.Errorf("the registry of stack serve did not answer at %s within a minute: see %s", e.RegistryAddr, proc.Log))
		}
		select {
		case <-ctx.Done():
			e.stopServe()
			return step.Done(ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
	return step.Done(nil)
}

// serveEnv is what stack serve keeps of this process's environment, so
// that its CI jobs find the same tools: PATH, HOME and the STACK_
// variables (nothing else: state.json records it).
func serveEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PATH=") || strings.HasPrefix(kv, "HOME=") || strings.HasPrefix(kv, "STACK_") {
			env = append(env, kv)
		}
	}
	return env
}

// stopServe stops the `stack serve` that Up started, if any.
func (e *Env) stopServe() error { return e.Node.StopService(serveService) }
