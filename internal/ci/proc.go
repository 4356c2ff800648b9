package ci

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// groupMembers returns the live (not zombie) processes in process group
// pgid, read from /proc.
func groupMembers(pgid int) []int {
	if pgid <= 1 {
		return nil
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces and parens.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if g, err := strconv.Atoi(f[2]); err == nil && g == pgid {
			pids = append(pids, pid)
		}
	}
	return pids
}

// hasEnv reports whether process pid was started with the variable kv
// ("NAME=value") in its environment.
func hasEnv(pid int, kv string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return false
	}
	for _, e := range bytes.Split(b, []byte{0}) {
		if string(e) == kv {
			return true
		}
	}
	return false
}

// killGroup sends sig to every process in group pgid. A group that is
// already gone is not an error.
func killGroup(pgid int, sig syscall.Signal) error {
	if pgid <= 1 {
		return nil
	}
	if err := syscall.Kill(-pgid, sig); err != nil && err != syscall.ESRCH {
		return err
	}
	return nil
}

// killLeftovers kills what remains of a job's process group after its
// runner died, if the group is still there and is that job's: at least one
// member carries the job's STACK_CI_JOB. It reports whether it killed.
func killLeftovers(j *Job) bool {
	members := groupMembers(j.PID)
	for _, pid := range members {
		if hasEnv(pid, "STACK_CI_JOB="+j.ID) {
			killGroup(j.PID, syscall.SIGKILL)
			return true
		}
	}
	return false
}
