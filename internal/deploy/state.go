package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"
)

// StateBranch is the branch of a state repo that holds what is live (the
// default branch of the repositories stack serve creates).
const StateBranch = "refs/heads/main"

// Files of a state repo besides the objects.
const (
	RecordFile    = "_stack/deploy.yaml"
	InventoryFile = "_stack/inventory"
	// InfraFile records the cluster itself, as `stack infra apply` left
	// it (InfraRecord).
	InfraFile = "_stack/infra.yaml"
)

// Deploy statuses, as the Stack-Status trailer records them.
const (
	// StatusDeployed: every object applied, pruned and ready.
	StatusDeployed = "deployed"
	// StatusFailed: the deploy changed the cluster and then failed (an
	// object not ready in time, a prune refused): the commit holds what is
	// live, not what was rendered.
	StatusFailed = "failed"
	// StatusDrift: the drift check found live objects changed behind
	// stack's back and recorded them.
	StatusDrift = "drift"
	// StatusInfra: `stack infra apply` changed the cluster itself.
	StatusInfra = "infra"
)

// State is the state repo of one cluster: a bare git repository whose
// StateBranch always holds what is live.
type State struct {
	// Dir is the bare repository.
	Dir string
}

// OpenState opens the state repo that is the bare git repository dir.
// Where state repos live, and how they are created and served, is the
// caller's: deploy only reads and writes them.
func OpenState(dir string) (*State, error) {
	if fi, err := os.Stat(filepath.Join(dir, "HEAD")); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("state repo %s is not a bare git repository (no HEAD): create it with `stack repo create`, or fix the path", dir)
	}
	return &State{Dir: dir}, nil
}

// LockWait is how long Lock waits for another holder of the lock.
var LockWait = 30 * time.Second

// Lock takes the state repo's lock, so that one deploy or drift record
// runs at a time per cluster on this machine; unlock releases it.
func (s *State) Lock() (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(s.Dir, "stack-deploy.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	// A drift check holds it for a second or so: wait a little for it.
	deadline := time.Now().Add(LockWait)
	for syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("another deploy, drift check or infra apply holds the state repo %s (waited %s): wait for it to finish", s.Dir, LockWait)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return func() { f.Close() }, nil
}

// Record is _stack/deploy.yaml: what the last deploy deployed.
type Record struct {
	Environment string            `yaml:"environment" json:"environment"`
	Cluster     string            `yaml:"cluster" json:"cluster"`
	Commit      string            `yaml:"commit" json:"commit"`
	Dirty       bool              `yaml:"dirty,omitempty" json:"dirty,omitempty"`
	Images      map[string]string `yaml:"images,omitempty" json:"images,omitempty"`
}

// ParseRecord parses _stack/deploy.yaml.
func ParseRecord(data []byte) (*Record, error) {
	var r Record
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%s: %s", RecordFile, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if r.Environment == "" || r.Cluster == "" {
		return nil, fmt.Errorf("%s: environment and cluster are required", RecordFile)
	}
	if r.Commit != "" && !isHex(r.Commit) {
		return nil, fmt.Errorf("%s: commit %q is not a commit id", RecordFile, r.Commit)
	}
	return &r, nil
}

func isHex(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// InfraRecord is _stack/infra.yaml: the cluster as the last `stack infra
// apply` left it, and the source commit whose declaration it applied.
type InfraRecord struct {
	Environment string `yaml:"environment" json:"environment"`
	Cluster     string `yaml:"cluster" json:"cluster"`
	Commit      string `yaml:"commit" json:"commit"`
	Dirty       bool   `yaml:"dirty,omitempty" json:"dirty,omitempty"`
	// Provisioned is the backend's description of what exists.
	Provisioned any `yaml:"provisioned" json:"provisioned"`
}

// Snapshot is one commit of a state repo.
type Snapshot struct {
	Commit string
	// Record is the last deploy's; nil when the cluster was provisioned
	// and nothing deployed yet.
	Record    *Record
	Infra     *InfraRecord
	Inventory Inventory
	// Files are the object files by path.
	Files map[string][]byte
}

// Head returns the latest snapshot, or nil for a repo without deploys.
func (s *State) Head(ctx context.Context) (*Snapshot, error) {
	out, err := git(ctx, s.Dir, nil, "rev-parse", "--verify", "-q", StateBranch)
	if err != nil {
		return nil, nil
	}
	commit := strings.TrimSpace(string(out))
	files, err := gitFiles(ctx, s.Dir, commit)
	if err != nil {
		return nil, fmt.Errorf("state repo %s: %w", s.Dir, err)
	}
	snap := &Snapshot{Commit: commit, Files: map[string][]byte{}}
	for p, data := range files {
		switch {
		case p == RecordFile:
			if snap.Record, err = ParseRecord(data); err != nil {
				return nil, fmt.Errorf("state repo %s at %.12s: %w", s.Dir, commit, err)
			}
		case p == InventoryFile:
			if snap.Inventory, err = ParseInventory(InventoryFile, data); err != nil {
				return nil, fmt.Errorf("state repo %s at %.12s: %w", s.Dir, commit, err)
			}
		case p == InfraFile:
			snap.Infra = &InfraRecord{}
			if err := yaml.Unmarshal(data, snap.Infra); err != nil || snap.Infra.Cluster == "" {
				return nil, fmt.Errorf("state repo %s at %.12s: %s is not an infra record", s.Dir, commit, InfraFile)
			}
		case strings.HasPrefix(p, "_stack/"):
		default:
			snap.Files[p] = data
		}
	}
	if snap.Record == nil && snap.Infra == nil {
		return nil, fmt.Errorf("state repo %s at %.12s has no %s: it was not written by stack", s.Dir, commit, RecordFile)
	}
	return snap, nil
}

// Environment is the environment the snapshot's cluster runs.
func (s *Snapshot) Environment() string {
	if s.Record != nil {
		return s.Record.Environment
	}
	return s.Infra.Environment
}

// WriteInfra commits inf on top of last (nil: the first commit), keeping
// what last recorded of the deploys, and returns the commit id.
func (s *State) WriteInfra(ctx context.Context, last *Snapshot, inf *InfraRecord, subject, body string, by Person) (string, error) {
	c := &Commit{Infra: inf, Subject: subject, Body: body, Status: StatusInfra, By: by}
	parent := ""
	if last != nil {
		parent = last.Commit
		c.Record, c.Inventory, c.Files = last.Record, last.Inventory, last.Files
	}
	return s.Write(ctx, parent, c)
}

// Person is who deployed: a git identity.
type Person struct {
	Name, Email string
}

func (p Person) String() string { return p.Name + " <" + p.Email + ">" }

// Identity is who deploys from the repository dir: its git user.name and
// user.email, else the login name on this host (or "stack" when there is
// none) at the host name.
func Identity(ctx context.Context, dir string) Person {
	get := func(key string) string {
		out, _ := git(ctx, dir, nil, "config", key)
		return strings.TrimSpace(string(out))
	}
	p := Person{Name: get("user.name"), Email: get("user.email")}
	if p.Name == "" {
		p.Name = "stack"
		if u, err := user.Current(); err == nil && u.Username != "" {
			p.Name = u.Username
		}
	}
	if p.Email == "" {
		host, _ := os.Hostname()
		p.Email = strings.ReplaceAll(p.Name, " ", "-") + "@" + host
	}
	return p
}

// Commit is what a state repo commit records.
type Commit struct {
	// Record is the deploy's; nil only in an infra commit before the
	// first deploy.
	Record *Record
	// Infra is carried from commit to commit; nil before the first
	// `stack infra apply`.
	Infra     *InfraRecord
	Inventory Inventory
	// Files are the objects by path (Key.Path), as YAML.
	Files   map[string][]byte
	Subject string
	Body    string
	Status  string
	By      Person
	Time    time.Time
}

// Write commits c as the new head of StateBranch, replacing the whole
// tree, and returns the commit id. It fails, changing nothing, if the
// branch moved since parent was read (parent "" for the first commit).
func (s *State) Write(ctx context.Context, parent string, c *Commit) (string, error) {
	files := map[string][]byte{}
	env, cluster, source, dirty := "", "", "", false
	if c.Record != nil {
		rec, err := yaml.Marshal(c.Record)
		if err != nil {
			return "", err
		}
		files[RecordFile], files[InventoryFile] = rec, c.Inventory.Bytes()
		env, cluster, source, dirty = c.Record.Environment, c.Record.Cluster, c.Record.Commit, c.Record.Dirty
	}
	if c.Infra != nil {
		inf, err := yaml.Marshal(c.Infra)
		if err != nil {
			return "", err
		}
		files[InfraFile] = inf
		if c.Record == nil || c.Status == StatusInfra {
			env, cluster, source, dirty = c.Infra.Environment, c.Infra.Cluster, c.Infra.Commit, c.Infra.Dirty
		}
	}
	if env == "" {
		return "", errors.New("state repo: a commit needs a deploy or an infra record")
	}
	for p, d := range c.Files {
		files[p] = d
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)

	msg := c.Subject + "\n"
	if c.Body != "" {
		msg += "\n" + strings.TrimRight(c.Body, "\n") + "\n"
	}
	msg += "\nStack-Environment: " + env +
		"\nStack-Cluster: " + cluster +
		"\nStack-Source-Commit: " + orNone(source)
	if dirty {
		msg += "\nStack-Source-Dirty: true"
	}
	by := Person{Name: oneLineText(c.By.Name), Email: oneLineText(c.By.Email)}
	msg += "\nStack-Status: " + c.Status + "\nStack-Deployed-By: " + by.String() + "\n"

	when := c.Time
	if when.IsZero() {
		when = time.Now()
	}
	sig := fmt.Sprintf("%s <%s> %d +0000", by.Name, by.Email, when.Unix())
	var b bytes.Buffer
	fmt.Fprintf(&b, "commit %s\nauthor %s\ncommitter %s\ndata %d\n%s", StateBranch, sig, sig, len(msg), msg)
	if parent != "" {
		fmt.Fprintf(&b, "from %s\n", parent)
	}
	b.WriteString("deleteall\n")
	for _, p := range paths {
		fmt.Fprintf(&b, "M 100644 inline %s\ndata %d\n", p, len(files[p]))
		b.Write(files[p])
		b.WriteString("\n")
	}
	b.WriteString("done\n")
	if parent == "" {
		if _, err := git(ctx, s.Dir, nil, "rev-parse", "--verify", "-q", StateBranch); err == nil {
			return "", errors.New("state repo: another deploy wrote the first commit meanwhile: run again")
		}
	}
	if _, err := git(ctx, s.Dir, &b, "fast-import", "--quiet", "--done"); err != nil {
		if head, herr := git(ctx, s.Dir, nil, "rev-parse", "--verify", "-q", StateBranch); herr == nil && strings.TrimSpace(string(head)) != parent {
			return "", fmt.Errorf("state repo %s moved while this deploy ran (another deploy?): its head is %.12s, not %.12s", s.Dir, head, parent)
		}
		return "", fmt.Errorf("state repo %s: %w", s.Dir, err)
	}
	out, err := git(ctx, s.Dir, nil, "rev-parse", "--verify", StateBranch)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// oneLineText keeps a name or address from breaking the commit header.
func oneLineText(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '<' || r == '>' || r == 0 {
			return ' '
		}
		return r
	}, s)
}

// Entry is one commit of a state repo's history.
type Entry struct {
	Commit  string    `json:"commit"`
	Subject string    `json:"subject"`
	By      string    `json:"by"`
	Time    time.Time `json:"time"`
	// Status is the Stack-Status trailer: deployed, failed, drift, infra.
	Status string `json:"status"`
}

// Log returns the last n commits of the state repo, newest first.
func (s *State) Log(ctx context.Context, n int) ([]Entry, error) {
	out, err := git(ctx, s.Dir, nil, "log", fmt.Sprintf("-n%d", n), "--format=%H%x00%an <%ae>%x00%at%x00%s%x00%(trailers:key=Stack-Status,valueonly,separator=)%x00", StateBranch, "--")
	if err != nil {
		return nil, nil // no commits yet
	}
	var entries []Entry
	fields := strings.Split(string(out), "\x00")
	for i := 0; i+5 <= len(fields); i += 5 {
		unix, _ := strconv.ParseInt(fields[i+2], 10, 64)
		entries = append(entries, Entry{
			Commit: strings.TrimSpace(fields[i]), By: fields[i+1], Time: time.Unix(unix, 0).UTC(),
			Subject: fields[i+3], Status: strings.TrimSpace(fields[i+4]),
		})
	}
	return entries, nil
}
