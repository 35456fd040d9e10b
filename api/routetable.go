package api

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/julienschmidt/httprouter"
)

// routeSpec is one route of the API as the router registers it: the
// method and pattern, what it is for (the words a 405 reply points to it
// with), the query parameters it takes (any other is refused), and its
// handler. The routing table (Server.routeTable) is the one list of them.
type routeSpec struct {
	method string
	path   string // the router's pattern
	queue  bool   // path is route.pattern(), a route on a named queue
	route  Route
	does   string   // "to lease messages": how a 405 reply names it
	params []string // the query parameters it takes
	public bool     // answered without the token (GET /healthz)
	q      queueHandler
	h      handler // when q is nil
}

// Query parameters of the routes that take them.
var (
	enqueueParams = []string{"delay"}
	listParams    = []string{"after", "limit"}
	receiveParams = []string{"max", "wait", "visibility", "raw"}
	redriveParams = []string{"limit"}
)

// routeTable returns every route of s. A queue route with q set looks its
// queue up before anything else, so a request to a missing queue is 404
// whatever else is wrong with it.
func (s *Server) routeTable() []routeSpec {
	qr := func(method string, route Route, does string, params []string, q queueHandler) routeSpec {
		return routeSpec{method: method, path: route.pattern(), queue: true, route: route, does: does, params: params, q: q}
	}
	t := []routeSpec{
		{method: http.MethodGet, path: QueuesPath, does: "to list the queues", h: s.listQueues},
		qr(http.MethodGet, RouteQueue, "to read a queue's config and counts", nil, s.getQueue),
		{method: http.MethodPost, path: RouteQueue.pattern(), queue: true, route: RouteQueue, does: "to create a queue or change its config", h: s.putQueue},
		{method: http.MethodPost, path: RouteDelete.pattern(), queue: true, route: RouteDelete, does: "to delete a queue", h: s.deleteQueue},
		qr(http.MethodPost, RoutePurge, "to remove every message", nil, s.purgeQueue),
		qr(http.MethodPost, RouteMessages, "to enqueue one message (the raw body)", enqueueParams, s.enqueueOne),
		qr(http.MethodGet, RouteMessages, "to peek at messages without leasing them", listParams, s.peek),
		qr(http.MethodPost, RouteBatch, "to enqueue a JSON batch", nil, s.enqueueBatch),
		qr(http.MethodPost, RouteReceive, "to lease messages", receiveParams, s.receive),
		qr(http.MethodPost, RouteAck, "to ack receipts", nil, s.receiptRoute(ack)),
		qr(http.MethodPost, RouteNack, "to nack receipts", nil, s.receiptRoute(nack)),
		qr(http.MethodPost, RouteExtend, "to extend leases", nil, s.receiptRoute(extend)),
		qr(http.MethodPost, RouteFail, "to fail receipts (straight to dead)", nil, s.receiptRoute(fail)),
		qr(http.MethodGet, RouteDead, "to list the dead messages", listParams, s.dead),
		qr(http.MethodPost, RouteRedrive, "to return dead messages to ready", redriveParams, s.redrive),
		{method: http.MethodGet, path: HealthPath, does: "to check the server is up", public: true, h: health},
	}
	if s.metrics != nil {
		t = append(t, routeSpec{method: http.MethodGet, path: MetricsPath, does: "to read the metrics", h: s.serveMetrics})
	}
	return t
}

// handle returns sp's handler with its queue looked up (if it is on a
// queue) and its query parameters checked, in that order.
func (s *Server) handle(sp routeSpec) handler {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
		if sp.q == nil {
			if err := checkQuery(r, sp.params); err != nil {
				return err
			}
			return sp.h(w, r, ps)
		}
		q, err := s.queue(ps)
		if err != nil {
			return err
		}
		if err := checkQuery(r, sp.params); err != nil {
			return err
		}
		return sp.q(w, r, q)
	}
}

// checkQuery refuses a query parameter the route does not take: a typo
// (?mx=10, ?wiat=20s) would otherwise be a silent default, as an unknown
// JSON field would be were it not refused too.
func checkQuery(r *http.Request, params []string) error {
	if r.URL.RawQuery == "" {
		return nil
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return fmt.Errorf("%w: the query string is malformed: %v", errBadRequest, err)
	}
	var unknown []string
	for name := range q {
		if !slices.Contains(params, name) {
			unknown = append(unknown, fmt.Sprintf("%q", name))
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	takes := "no query parameters"
	if len(params) > 0 {
		takes = "only " + strings.Join(params, ", ")
	}
	noun := "parameter"
	if len(unknown) > 1 {
		noun = "parameters"
	}
	return fmt.Errorf("%w: unknown query %s %s: %s %s takes %s", errBadRequest, noun, strings.Join(unknown, ", "), r.Method, r.URL.Path, takes)
}

// methodNotAllowed is the reply to a known path with a method it does not
// take. The router has set Allow; the message says which call does what
// on that path ("to delete a queue, POST /v1/queues/q/delete"), since
// DELETE or PUT is what a REST habit tries first.
func (s *Server) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	sw, _ := w.(*statusWriter)
	var calls []string
	name, route, onQueue := splitQueuePath(r.URL.Path)
	if onQueue && route == RouteQueue && r.Method == http.MethodDelete {
		calls = append(calls, "to delete a queue, "+http.MethodPost+" "+QueuePath(name, RouteDelete))
	}
	for _, sp := range s.table {
		var path string
		switch {
		case sp.queue && onQueue && sp.route == route:
			path = QueuePath(name, sp.route)
		case !sp.queue && sp.path == r.URL.Path:
			path = sp.path
		default:
			continue
		}
		if sw != nil {
			sw.route = sp.path
			if onQueue {
				sw.queue = name
			}
		}
		calls = append(calls, sp.does+", "+sp.method+" "+path)
	}
	writeError(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed,
		fmt.Sprintf("%s %s is not a call of the API (GET only reads, every change is a POST): %s", r.Method, r.URL.Path, strings.Join(calls, "; ")))
}

// splitQueuePath splits a path under /v1/queues/<name> into the name and
// the Route after it; ok is false for any other path.
func splitQueuePath(path string) (name string, route Route, ok bool) {
	rest, ok := strings.CutPrefix(path, QueuesPath+"/")
	if !ok || rest == "" {
		return "", "", false
	}
	name, sub, hasSub := strings.Cut(rest, "/")
	if hasSub {
		route = Route("/" + sub)
	}
	return name, route, true
}
