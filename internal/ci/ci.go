// Package ci owns continuous integration: the pipelines a repository
// declares in ci/pipelines.yaml, the jobs that pushes, timers and people
// queue from them, and the runner that runs each job in a clean checkout of
// its exact commit.
//
// Everything lives in one directory, <data>/ci/, and processes share nothing
// else: the git post-receive hook (its own process) calls Enqueue, the
// runner inside `stack serve` picks queued jobs up, and `stack ci` reads and
// queues jobs whether or not the server runs.
//
//	<data>/ci/lock              flock held while jobs are queued or claimed
//	<data>/ci/runner.lock       flock held by the one live runner
//	<data>/ci/seq               the last job number handed out
//	<data>/ci/queue/<id>        an empty marker per queued job (the runner watches this
//	                            directory with inotify and reads it every 200ms)
//	<data>/ci/jobs/<id>/job.json the job: what, why, state, times, exit code
//	<data>/ci/jobs/<id>/log     the job's combined output, appended live
//	<data>/ci/work/<id>/        the job's checkout (src), TMPDIR (tmp) and HOME (home)
//	                            while it runs: the one directory of the machine a
//	                            sandboxed job may write, owned by the job's user
//	<data>/ci/timers.json       when each timer last fired
//
// job.json and timers.json are replaced atomically (temp file + rename).
//
// Jobs run sandboxed (sandbox.go): as a user of their own, in PID, mount
// and IPC namespaces of their own where nothing of the data directory but
// their work directory is in view, with memory and process limits, and with
// no secret of the server's. The directories above are 0700 and the
// runner's.
package ci

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// State is where a job is in its life.
type State string

// The states of a job. Queued and Running are live; the others are final.
const (
	Queued      State = "queued"
	Running     State = "running"
	Succeeded   State = "succeeded"
	Failed      State = "failed"
	TimedOut    State = "timed-out"
	Superseded  State = "superseded"
	Interrupted State = "interrupted"
)

// Final reports whether a job in state s will not change any more.
func (s State) Final() bool { return s != Queued && s != Running }

// Trigger is why a job was queued.
type Trigger string

// The triggers of a job.
const (
	Push   Trigger = "push"
	Timer  Trigger = "timer"
	Manual Trigger = "manual"
)

// Job is one run of one pipeline at one commit. It is stored as
// <data>/ci/jobs/<id>/job.json.
type Job struct {
	ID       string   `json:"id"`
	Seq      int64    `json:"seq"`
	Repo     string   `json:"repo"`
	RepoPath string   `json:"repo_path"`
	Pipeline string   `json:"pipeline"`
	Run      string   `json:"run"`
	Timeout  Duration `json:"timeout"`
	Ref      string   `json:"ref"`
	Commit   string   `json:"commit"`
	Trigger  Trigger  `json:"trigger"`
	State    State    `json:"state"`

	Queued   time.Time `json:"queued"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`

	// ExitCode is the script's exit status (128+N when killed by signal N);
	// absent if the script never ran or did not end by itself.
	ExitCode *int `json:"exit_code,omitempty"`
	// PID is the process id of the job's sandbox init (PID 1 of the job's
	// PID namespace), or of the script itself when it runs unsandboxed;
	// either is the leader of its own process group.
	PID int `json:"pid,omitempty"`
	// UID is the user id the script ran as, when the runner gave it one of
	// its own (a runner running as root).
	UID int `json:"uid,omitempty"`
	// TokenSHA256 is the SHA-256 of the job's STACK_CI_TOKEN.
	TokenSHA256 string `json:"token_sha256,omitempty"`
	// RunnerPID is the process that ran the job.
	RunnerPID int `json:"runner_pid,omitempty"`
	// Error says why the job ended as it did when the script alone does not.
	Error string `json:"error,omitempty"`
	// SupersededBy is the newer job that replaced this queued one.
	SupersededBy string `json:"superseded_by,omitempty"`
}

// key is what may run only once at a time: a pipeline on a ref of a repo.
func (j *Job) key() string { return j.Repo + "\x00" + j.Pipeline + "\x00" + j.Ref }

// Duration is how long the job ran (so far, if it is running), or 0.
func (j *Job) Duration(now time.Time) time.Duration {
	switch {
	case j.Started.IsZero():
		return 0
	case j.Finished.IsZero():
		return now.Sub(j.Started)
	}
	return j.Finished.Sub(j.Started)
}

// Duration is a time.Duration written as text ("30m0s") in JSON.
type Duration time.Duration

// MarshalText writes d like time.Duration.String.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads what MarshalText wrote.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// jobID makes the id of job number seq queued at t: sortable by time, and
// unique because seq is.
func jobID(t time.Time, seq int64) string {
	return fmt.Sprintf("%s-%06d", t.UTC().Format("20060102-150405"), seq)
}

// seqOf returns the job number at the end of an id, or -1 if id is not one.
func seqOf(id string) int64 {
	if len(id) < 17 || id[8] != '-' || id[15] != '-' {
		return -1
	}
	for i, c := range id[:15] {
		if i != 8 && (c < '0' || c > '9') {
			return -1
		}
	}
	n, err := strconv.ParseInt(id[16:], 10, 64)
	if err != nil || n < 0 || strings.HasPrefix(id[16:], "+") {
		return -1
	}
	return n
}

func decodeJob(b []byte) (*Job, error) {
	var j Job
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, err
	}
	if seqOf(j.ID) < 0 {
		return nil, fmt.Errorf("bad job id %q", j.ID)
	}
	return &j, nil
}
