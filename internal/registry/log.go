package registry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"
)

// The distribution library logs through logrus's process-wide standard
// logger. bridgeLogs silences that logger's own output once and forwards
// its entries to the slog.Logger of the Registry named by the entry's
// "instance.id" field (every registry puts its id in the contexts it hands
// distribution), with fields that could hold credentials dropped.

var (
	bridgeOnce sync.Once
	bridged    sync.Map // instance id → *slog.Logger
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

type slogHook struct{}

func (slogHook) Levels() []logrus.Level { return logrus.AllLevels }

func (slogHook) Fire(e *logrus.Entry) error {
	l := slog.Default()
	if id, ok := e.Data["instance.id"].(string); ok {
		if v, ok := bridged.Load(id); ok {
			l = v.(*slog.Logger)
		}
	}
	level := slogLevel(e)
	ctx := context.Background()
	if !l.Enabled(ctx, level) {
		return nil
	}
	attrs := make([]slog.Attr, 0, len(e.Data))
	for k, v := range e.Data {
		if k == "instance.id" || k == "go.version" || secretField(k) {
			continue
		}
		if err, ok := v.(error); ok {
			v = err.Error()
		}
		attrs = append(attrs, slog.Any(k, v))
	}
	l.LogAttrs(ctx, level, "distribution: "+e.Message, attrs...)
	return nil
}

// slogLevel maps a distribution log entry to the level it deserves here:
// its chatty info lines, and errors that are only a client's bad request,
// are debug detail.
func slogLevel(e *logrus.Entry) slog.Level {
	switch {
	case e.Level <= logrus.ErrorLevel:
		if s, ok := e.Data["http.response.status"]; ok && fmt.Sprint(s) < "500" {
			return slog.LevelDebug
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
