package node

import (
	"errors"
	"os"
	"slices"
	"time"
)

// Services are processes the node keeps running for its user beside its
// own components (the `stack serve` that `stack up` starts): recorded in
// state.json, restarted by the supervisor as a component is, shown by
// Status and stopped by Down after the components. Health checks are the
// caller's.

// StartService starts the service name with the command line args and
// the environment variables env and records it, unless it runs already.
// Its output goes to LogPath(name).
func (n *Node) StartService(name string, args, env []string) (Proc, error) {
	unlock, err := n.lock(true)
	if err != nil {
		return Proc{}, err
	}
	defer unlock()
	st, err := n.ReadState()
	if err != nil {
		return Proc{}, err
	}
	if p, ok := st.Service(name); ok && p.Alive() {
		return p, nil
	}
	p := Proc{Component: name, Args: args, Env: env}
	if err := n.spawn(&p, "stack up"); err != nil {
		return Proc{}, err
	}
	st.Services = slices.DeleteFunc(st.Services, func(q Proc) bool { return q.Component == name })
	st.Services = append(st.Services, p)
	return p, n.writeState(st)
}

// StopService stops the service name, if it runs, and forgets it.
func (n *Node) StopService(name string) error {
	unlock, err := n.lock(true)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := n.ReadState()
	if err != nil {
		return err
	}
	p, ok := st.Service(name)
	if !ok {
		return nil
	}
	if err := p.Stop(10 * time.Second); err != nil {
		return err
	}
	st.Services = slices.DeleteFunc(st.Services, func(q Proc) bool { return q.Component == name })
	return n.writeOrRemoveState(st)
}

// Service is the recorded process of service name.
func (s *State) Service(name string) (Proc, bool) {
	for _, p := range s.Services {
		if p.Component == name {
			return p, true
		}
	}
	return Proc{}, false
}

// empty reports whether the state records nothing the node started or
// changed.
func (s *State) empty() bool {
	return len(s.Procs) == 0 && len(s.Services) == 0 && s.Sysctls == nil && s.Supervisor == nil
}

// writeOrRemoveState writes st, or removes state.json when st is empty.
func (n *Node) writeOrRemoveState(st *State) error {
	if st.empty() {
		if err := os.Remove(n.statePath()); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	return n.writeState(st)
}
