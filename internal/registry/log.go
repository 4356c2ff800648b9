package registry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"
)

// The distribution library logs through logrus's process-wide standard
// logger. bridgeLogs silences that logger's own output once and forwards
// its entries to the slog.Logger of the Registry named by the entry's
// "instance.id" field (every registry puts its id in the contexts it hands
// distribution), with fields that could hold credentials dropped.
//
// Distribution logs some errors of a request before it knows whether they
// are the client's (a digest that does not match, a body too large, a
// client gone): an error entry of a request that names no response status
// is held until the request ends, then logged as an error if the request
// was answered with a 5xx (or not at all) and as debug detail otherwise.
// guard gives every request an instance id of its own, REGISTRY/N, to hold
// its entries by.

var (
	bridgeOnce sync.Once
	bridged    sync.Map // instance id → *slog.Logger, request id → *heldLogs
)

func bridgeLogs(id string, l *slog.Logger) {
	bridgeOnce.Do(func() {
		std := logrus.StandardLogger()
		std.SetOutput(io.Discard)
		std.AddHook(slogHook{})
	})
	bridged.Store(id, l)
}

func forgetLogs(id string) { bridged.Delete(id) }

// maxHeld bounds the entries held for one request.
const maxHeld = 32

// heldLogs holds the error entries of one request until its status is
// known.
type heldLogs struct {
	id string
	l  *slog.Logger

	mu      sync.Mutex
	held    []slog.Record
	dropped int
	done    bool
}

// holdLogs starts holding the entries of the request id, whose registry
// logs to l.
func holdLogs(id string, l *slog.Logger) *heldLogs {
	h := &heldLogs{id: id, l: l}
	bridged.Store(id, h)
	return h
}

// add holds rec, or logs it if the request has ended.
func (h *heldLogs) add(rec slog.Record) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.done:
		handle(h.l, rec)
	case len(h.held) >= maxHeld:
		h.dropped++
	default:
		h.held = append(h.held, rec)
	}
}

// release logs what is held at the level the request's status gives, and
// stops holding: 0 is a request that wrote no response.
func (h *heldLogs) release(status int) {
	bridged.Delete(h.id)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.done = true
	level := slog.LevelError
	if status > 0 && status < 500 {
		level = slog.LevelDebug
	}
	for _, rec := range h.held {
		rec.Level = level
		handle(h.l, rec)
	}
	if h.dropped > 0 {
		h.l.Log(context.Background(), level, "distribution: more errors of the request were not logged", "dropped", h.dropped, "http.response.status", status)
	}
	h.held = nil
}

func handle(l *slog.Logger, rec slog.Record) {
	if ctx := context.Background(); l.Enabled(ctx, rec.Level) {
		_ = l.Handler().Handle(ctx, rec)
	}
}

type slogHook struct{}

func (slogHook) Levels() []logrus.Level { return logrus.AllLevels }

func (slogHook) Fire(e *logrus.Entry) error {
	l := slog.Default()
	var hold *heldLogs
	id, _ := e.Data["instance.id"].(string)
	v, ok := bridged.Load(id)
	if !ok {
		// A request that has ended logs to its registry.
		if inst, _, cut := strings.Cut(id, "/"); cut {
			v, ok = bridged.Load(inst)
		}
	}
	if ok {
		switch v := v.(type) {
		case *slog.Logger:
			l = v
		case *heldLogs:
			l, hold = v.l, v
		}
	}
	level := slogLevel(e)
	_, hasStatus := e.Data["http.response.status"]
	held := hold != nil && level == slog.LevelError && !hasStatus
	if !held && !l.Enabled(context.Background(), level) {
		return nil
	}
	rec := slog.NewRecord(e.Time, level, "distribution: "+e.Message, 0)
	for k, v := range e.Data {
		if k == "instance.id" || k == "go.version" || secretField(k) {
			continue
		}
		if err, ok := v.(error); ok {
			v = err.Error()
		}
		rec.AddAttrs(slog.Any(k, v))
	}
	if held {
		hold.add(rec)
		return nil
	}
	handle(l, rec)
	return nil
}

// slogLevel maps a distribution log entry to the level it deserves here:
// its chatty info lines, and errors that are only a client's bad request,
// are debug detail.
func slogLevel(e *logrus.Entry) slog.Level {
	switch {
	case e.Level <= logrus.ErrorLevel:
		if s, ok := e.Data["http.response.status"]; ok {
			if n, err := strconv.Atoi(fmt.Sprint(s)); err == nil && n < 500 {
				return slog.LevelDebug
			}
		}
		return slog.LevelError
	case e.Level == logrus.WarnLevel:
		return slog.LevelWarn
	default:
		return slog.LevelDebug
	}
}

// secretField reports whether a log field may carry a credential.
func secretField(k string) bool {
	k = strings.ToLower(k)
	for _, s := range []string{"password", "secret", "authorization", "token", "credential"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}
