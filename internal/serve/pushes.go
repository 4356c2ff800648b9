package serve

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/hashbang/stack/internal/gitserve"
)

// PushesFile records the verdict of every push the pre-receive hook
// judged, one JSON object a line, newest last: DATA/pushes.jsonl. It is
// rotated to pushes.jsonl.1 past maxPushLog, so it cannot fill a disk.
const PushesFile = "pushes.jsonl"

const maxPushLog = 4 << 20

// Push is one judged push.
type Push struct {
	Time     time.Time            `json:"time"`
	Repo     string               `json:"repo"`
	Pusher   string               `json:"pusher"`
	Updates  []gitserve.RefUpdate `json:"updates"`
	Accepted bool                 `json:"accepted"`
	// Reasons are the policy's lines for a refused push.
	Reasons []string `json:"reasons,omitempty"`
}

// recordPush appends p to the data directory's push log, best effort: a
// push is judged whether or not it can be recorded.
func recordPush(dataDir string, p Push) {
	file := filepath.Join(dataDir, PushesFile)
	line, err := json.Marshal(p)
	if err != nil {
		return
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX) != nil {
		return
	}
	if fi, err := f.Stat(); err == nil && fi.Size() > maxPushLog {
		os.Rename(file, file+".1")
	}
	f.Write(append(line, '\n'))
}

// RecentPushes returns up to n pushes of the log, newest first.
func RecentPushes(dataDir string, n int) ([]Push, error) {
	data, err := os.ReadFile(filepath.Join(dataDir, PushesFile))
	if os.IsNotExist(err) {
		return []Push{}, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Push
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var p Push
		if json.Unmarshal(sc.Bytes(), &p) == nil {
			out = append(out, p)
		}
	}
	slices.Reverse(out)
	if len(out) > n {
		out = out[:n]
	}
	return out, nil
}
