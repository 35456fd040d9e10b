package api

// What the server logs about requests besides their errors: the access
// log at DEBUG and the refused tokens at WARN.

import (
	"cmp"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// logRequests is the outermost layer of the handler: it makes the
// statusWriter every layer below writes through and, when the logger
// takes DEBUG, logs one "api: request" line as each request ends, with
// its method, route pattern (never the raw path: the pattern is what to
// search for, and the line stays one per route), status, time taken and
// the queue, or the topic and subscription, it names. Bodies, headers and
// tokens are never logged. A reply cut on purpose (messageStream.abort)
// is logged with cut=true.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		if !s.cfg.Logger.Enabled(r.Context(), slog.LevelDebug) {
			next.ServeHTTP(sw, r) // the common case costs one check
			return
		}
		start := time.Now()
		ended := false
		defer func() {
			attrs := []slog.Attr{
				slog.String("method", r.Method),
				slog.String("route", cmp.Or(sw.route, noRoute)),
				slog.Int("status", sw.status),
				slog.Duration("took", time.Since(start)),
			}
			if sw.queue != "" {
				attrs = append(attrs, slog.String("queue", sw.queue))
			}
			if sw.topic != "" {
				attrs = append(attrs, slog.String("topic", sw.topic))
			}
			if sw.subscription != "" {
				attrs = append(attrs, slog.String("subscription", sw.subscription))
			}
			if !ended {
				attrs = append(attrs, slog.Bool("cut", true))
			}
			s.cfg.Logger.LogAttrs(r.Context(), slog.LevelDebug, "api: request", attrs...)
		}()
		next.ServeHTTP(sw, r)
		ended = true
	})
}

// noRoute is the access log's route for a path that matched none.
const noRoute = "none"

// warnUnauthorized logs a refused request at WARN: who (the remote
// address), which route and why (no header, not a bearer token, or a
// wrong token), never the token. A client retrying with a wrong token, or
// a scanner, would fill the log, so at most one line a second is
// written; the next says how many were left out.
func (s *Server) warnUnauthorized(r *http.Request, route string) {
	suppressed, ok := s.authWarn.allow(time.Now())
	if !ok {
		return
	}
	reason := "wrong token"
	switch h := r.Header.Get("Authorization"); {
	case h == "":
		reason = "no Authorization header"
	case !strings.HasPrefix(strings.ToLower(h), "bearer "):
		reason = "not a Bearer token"
	}
	attrs := []any{"remote", r.RemoteAddr, "method", r.Method, "route", route, "reason", reason}
	if suppressed > 0 {
		attrs = append(attrs, "suppressed", suppressed)
	}
	s.cfg.Logger.Warn("api: unauthorized request refused", attrs...)
}

// rateLimit lets one event through per second and counts the rest. Its
// zero value is ready to use; it is safe for concurrent use.
type rateLimit struct {
	last    atomic.Int64 // unix ns of the last event let through
	skipped atomic.Int64 // events held back since then
}

// allow reports whether an event at now may go through and, if so, how
// many were held back before it.
func (l *rateLimit) allow(now time.Time) (skipped int64, ok bool) {
	ns, last := now.UnixNano(), l.last.Load()
	if (last != 0 && ns-last < int64(time.Second)) || !l.last.CompareAndSwap(last, ns) {
		l.skipped.Add(1)
		return 0, false
	}
	return l.skipped.Swap(0), true
}
