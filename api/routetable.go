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
	scope  scope  // what the path names: path is route.patternIn(scope)
	route  Route
	does   string   // "to lease messages": how a 405 reply names it
	params []string // the query parameters it takes
	public bool     // answered without the token (GET /healthz)
	perm   Perm     // what an API key needs for it (permFor)
	// look is what handle looks up before anything else, so a request to
	// a missing queue is 404 whatever else is wrong with it: what the
	// path names, or less for a route that creates or deletes it (a
	// subscription's create still needs its topic).
	look scope
	h    targetHandler
}

// Query parameters of the routes that take them.
var (
	enqueueParams = []string{"delay", "priority", "visibility_timeout"}
	listParams    = []string{"after", "limit"}
	receiveParams = []string{"max", "wait", "visibility", "raw"}
	redriveParams = []string{"limit"}
	streamParams  = []string{"credit", "visibility"}
)

// routeTable returns every route of s. A queue's consumer routes and a
// subscription's are the same handlers (on a consumer), as are a queue's
// enqueue routes and a topic's publish routes.
func (s *Server) routeTable() []routeSpec {
	// on is a route on what sc names, looking up look.
	on := func(sc, look scope, method string, route Route, does string, params []string, h targetHandler) routeSpec {
		return routeSpec{method: method, path: route.patternIn(sc), scope: sc, route: route, does: does, params: params, look: look, h: h}
	}
	// consumerRoutes are the routes a queue and a subscription share:
	// the same handlers, on what the path names.
	consumerRoutes := func(sc scope) []routeSpec {
		return []routeSpec{
			on(sc, sc, http.MethodGet, RouteMessages, "to peek at messages without leasing them", listParams, s.peek),
			on(sc, sc, http.MethodPost, RouteReceive, "to lease messages", receiveParams, s.receive),
			on(sc, sc, http.MethodPost, RouteAck, "to ack receipts", nil, s.receiptRoute(ack)),
			on(sc, sc, http.MethodPost, RouteNack, "to nack receipts", nil, s.receiptRoute(nack)),
			on(sc, sc, http.MethodPost, RouteExtend, "to extend leases", nil, s.receiptRoute(extend)),
			on(sc, sc, http.MethodPost, RouteFail, "to fail receipts (straight to dead)", nil, s.receiptRoute(fail)),
			on(sc, sc, http.MethodGet, RouteDead, "to list the dead messages", listParams, s.dead),
			on(sc, sc, http.MethodPost, RouteRedrive, "to return dead messages to ready", redriveParams, s.redrive),
			on(sc, sc, http.MethodPost, RouteStream, "to stream leases and commands over one connection", streamParams, s.stream),
		}
	}
	const (
		q   = scopeQueue
		tp  = scopeTopic
		sub = scopeSubscription
	)
	t := []routeSpec{
		{method: http.MethodGet, path: QueuesPath, does: "to list the queues", h: s.listQueues},
		on(q, q, http.MethodGet, RouteQueue, "to read a queue's config and counts", nil, s.getQueue),
		on(q, scopeNone, http.MethodPost, RouteQueue, "to create a queue or change its config", nil, s.putQueue),
		on(q, scopeNone, http.MethodPost, RouteDelete, "to delete a queue", nil, s.deleteQueue),
		on(q, q, http.MethodPost, RoutePurge, "to remove every message", nil, s.purgeQueue),
		on(q, q, http.MethodPost, RouteMessages, "to enqueue one message (the raw body)", enqueueParams, s.enqueueOne),
		on(q, q, http.MethodPost, RouteBatch, "to enqueue a JSON batch", nil, s.enqueueBatch),
	}
	t = append(t, consumerRoutes(q)...)
	t = append(t,
		routeSpec{method: http.MethodGet, path: TopicsPath, does: "to list the topics", h: s.listTopics},
		on(tp, tp, http.MethodGet, RouteQueue, "to read a topic's config, ids and subscriptions", nil, s.getTopic),
		on(tp, scopeNone, http.MethodPost, RouteQueue, "to create a topic or change its config", nil, s.putTopic),
		on(tp, scopeNone, http.MethodPost, RouteDelete, "to delete a topic", nil, s.deleteTopic),
		on(tp, tp, http.MethodPost, RouteMessages, "to publish one message (the raw body)", enqueueParams, s.enqueueOne),
		on(tp, tp, http.MethodPost, RouteBatch, "to publish a JSON batch", nil, s.enqueueBatch),
		on(tp, tp, http.MethodPost, RouteSeek, "to move every subscription of the topic", nil, s.seek),
		on(sub, sub, http.MethodGet, RouteQueue, "to read a subscription's config and counts", nil, s.getSubscription),
		on(sub, tp, http.MethodPost, RouteQueue, "to create a subscription or change its config", nil, s.putSubscription),
		on(sub, tp, http.MethodPost, RouteDelete, "to delete a subscription", nil, s.deleteSubscription),
		on(sub, sub, http.MethodPost, RouteSeek, "to move the subscription", nil, s.seek),
	)
	t = append(t, consumerRoutes(sub)...)
	t = append(t, routeSpec{method: http.MethodGet, path: HealthPath, does: "to check the server is up", public: true, h: health})
	t = append(t, routeSpec{method: http.MethodGet, path: BackupPath, does: "to stream a backup of every queue and topic", h: s.backup})
	if s.metrics != nil {
		t = append(t, routeSpec{method: http.MethodGet, path: MetricsPath, does: "to read the metrics", h: s.serveMetrics})
	}
	for i := range t {
		t[i].perm = permFor(t[i])
	}
	return t
}

// permFor is the permission an API key needs for sp: reading for every
// GET but the backup, producing for an enqueue or publish, consuming for leases and
// receipts, and admin for the rest (creating, changing, deleting,
// purging, redriving and seeking).
func permFor(sp routeSpec) Perm {
	if sp.path == BackupPath {
		return PermAdmin // every message of every queue
	}
	if sp.method == http.MethodGet {
		return PermRead
	}
	switch sp.route {
	case RouteMessages, RouteBatch:
		return PermProduce
	case RouteReceive, RouteAck, RouteNack, RouteExtend, RouteFail, RouteStream:
		return PermConsume
	}
	return PermAdmin
}

// permitted says whether key may make the call sp with the path's
// params ps: its permission on the queue, topic or TOPIC/SUB the path
// names. A list route wants the permission on some name (the reply
// shows only what the key may read); /metrics, on every name.
func permitted(key *Key, sp routeSpec, ps httprouter.Params) error {
	var name string
	switch sp.scope {
	case scopeQueue:
		name = ps.ByName(queueParam)
	case scopeTopic:
		name = ps.ByName(topicParam)
	case scopeSubscription:
		name = ps.ByName(topicParam) + "/" + ps.ByName(subscriptionParam)
	default:
		if sp.path == MetricsPath || sp.path == BackupPath {
			name = allNames
		} else if key.mayAny(sp.perm) {
			return nil
		}
	}
	if name != "" && key.May(sp.perm, name) {
		return nil
	}
	what := name
	if what == "" {
		what = "any queue or topic"
	}
	return fmt.Errorf("%w: the key %q has no %s grant on %s", errForbidden, key.Name, sp.perm, what)
}

// handle returns sp's handler with what its path names looked up and its
// query parameters checked, in that order.
func (s *Server) handle(sp routeSpec) handler {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
		tg, err := s.lookup(sp.look, ps)
		if err != nil {
			return err
		}
		if err := checkQuery(r, sp.params); err != nil {
			return err
		}
		return sp.h(w, r, tg)
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
	sc, names, route := splitPath(r.URL.Path)
	if sc != scopeNone && route == RouteQueue && r.Method == http.MethodDelete {
		calls = append(calls, "to delete a "+scopeNoun[sc]+", "+http.MethodPost+" "+pathIn(sc, names, RouteDelete))
	}
	for _, sp := range s.table {
		var path string
		switch {
		case sc != scopeNone && sp.scope == sc && sp.route == route:
			path = pathIn(sc, names, sp.route)
		case sp.scope == scopeNone && sp.path == r.URL.Path:
			path = sp.path
		default:
			continue
		}
		if sw != nil {
			sw.route = sp.path
			switch sc {
			case scopeQueue:
				sw.queue = names[0]
			case scopeTopic, scopeSubscription:
				sw.topic = names[0]
				if sc == scopeSubscription {
					sw.subscription = names[1]
				}
			}
		}
		calls = append(calls, sp.does+", "+sp.method+" "+path)
	}
	writeError(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed,
		fmt.Sprintf("%s %s is not a call of the API (GET only reads, every change is a POST): %s", r.Method, r.URL.Path, strings.Join(calls, "; ")))
}

// scopeNoun is what the 405 reply calls what a path names.
var scopeNoun = map[scope]string{scopeQueue: "queue", scopeTopic: "topic", scopeSubscription: "subscription"}

// pathIn returns the path of route on what names names in sc.
func pathIn(sc scope, names []string, route Route) string {
	switch sc {
	case scopeTopic:
		return TopicPath(names[0], route)
	case scopeSubscription:
		return SubscriptionPath(names[0], names[1], route)
	}
	return QueuePath(names[0], route)
}

// splitPath splits a path under /v1/queues/<name> or /v1/topics/<topic>
// (and /subscriptions/<sub>) into what it names, the names and the Route
// after them; sc is scopeNone for any other path.
func splitPath(path string) (sc scope, names []string, route Route) {
	var rest string
	if r, ok := strings.CutPrefix(path, QueuesPath+"/"); ok {
		sc, rest = scopeQueue, r
	} else if r, ok := strings.CutPrefix(path, TopicsPath+"/"); ok {
		sc, rest = scopeTopic, r
	}
	if rest == "" {
		return scopeNone, nil, ""
	}
	name, after, has := strings.Cut(rest, "/")
	names = []string{name}
	if sc == scopeTopic && has {
		if r, ok := strings.CutPrefix(after, strings.TrimPrefix(subscriptionsSegment, "/")); ok && r != "" {
			sub, subAfter, subHas := strings.Cut(r, "/")
			sc, names, after, has = scopeSubscription, append(names, sub), subAfter, subHas
		}
	}
	if has {
		route = Route("/" + after)
	}
	return sc, names, route
}
