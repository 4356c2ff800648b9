package serve

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hashbang/stack/internal/ci"
	"github.com/hashbang/stack/internal/release"
)

// The web page: a small, read-only, server-rendered view of what the
// daemon knows, for the team — the environments with their deployed
// commit, who deployed it and when, and drift; the recent CI jobs with
// their logs (a running job's page reloads itself, no JavaScript); the
// verdicts of recent pushes. It listens on loopback unless told otherwise
// (--web-addr), and shows every repository's jobs: put it behind what
// decides who may see it before giving it another address.

// DefaultWebAddr is where the web page listens unless told otherwise.
const DefaultWebAddr = "127.0.0.1:8480"

//go:embed web/*.html web/style.css
var webFiles embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"short": shortID,
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return time.Since(t).Round(time.Second).String() + " ago"
	},
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"ref": ci.ShortRef,
}).ParseFS(webFiles, "web/*.html"))

// web serves the page.
type web struct {
	data string
	envs func(context.Context) ([]*release.Status, error)
	log  *slog.Logger
}

func (w *web) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", w.index)
	mux.HandleFunc("GET /jobs/{id}", w.job)
	mux.HandleFunc("GET /style.css", func(rw http.ResponseWriter, r *http.Request) {
		css, _ := webFiles.ReadFile("web/style.css")
		rw.Header().Set("Content-Type", "text/css; charset=utf-8")
		rw.Header().Set("Cache-Control", "max-age=300")
		rw.Write(css)
	})
	return secure(mux)
}

// secure adds the headers of a page that runs no script and embeds nothing
// from elsewhere.
func secure(h http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		hd := rw.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(rw, r)
	})
}

type indexPage struct {
	Envs   []*release.Status
	EnvErr string
	Jobs   []*ci.Job
	Pushes []Push
	Now    time.Time
}

func (w *web) index(rw http.ResponseWriter, r *http.Request) {
	p := indexPage{Now: time.Now()}
	if w.envs != nil {
		envs, err := w.envs(r.Context())
		if err != nil {
			p.EnvErr = err.Error()
		}
		p.Envs = envs
	}
	jobs, err := ci.List(w.data)
	if err != nil {
		http.Error(rw, "CI jobs: "+err.Error(), http.StatusInternalServerError)
		return
	}
	slices.Reverse(jobs)
	if len(jobs) > 20 {
		jobs = jobs[:20]
	}
	p.Jobs = jobs
	if p.Pushes, err = RecentPushes(w.data, 20); err != nil {
		http.Error(rw, "pushes: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.render(rw, "index.html", p)
}

type jobPage struct {
	Job     *ci.Job
	Log     string
	Running bool
}

// maxWebLog is how much of a log the page shows: its end.
const maxWebLog = 256 << 10

func (w *web) job(rw http.ResponseWriter, r *http.Request) {
	j, err := ci.Get(w.data, r.PathValue("id"))
	if err != nil {
		http.Error(rw, "no such job", http.StatusNotFound)
		return
	}
	var log strings.Builder
	if _, err := ci.Logs(r.Context(), w.data, j.ID, &log, false, 0); err != nil && !errors.Is(err, os.ErrNotExist) {
		http.Error(rw, "log: "+err.Error(), http.StatusInternalServerError)
		return
	}
	text := log.String()
	if len(text) > maxWebLog {
		text = "[…]\n" + text[len(text)-maxWebLog:]
	}
	w.render(rw, "job.html", jobPage{Job: j, Log: text, Running: !j.State.Final()})
}

func (w *web) render(rw http.ResponseWriter, name string, data any) {
	rw.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := pages.ExecuteTemplate(rw, name, data); err != nil {
		w.log.Error("web page", "page", name, "err", err)
	}
}

// serveWeb serves the page on l until ctx ends.
func serveWeb(ctx context.Context, l net.Listener, w *web) error {
	srv := &http.Server{
		Handler:           w.handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	})
	defer stop()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
