package api

import (
	"net/url"
	"strings"
)

// The paths of the HTTP API. The server's routing table registers them,
// and Client and the bench build their requests from them, so a route
// renamed here is renamed everywhere; the tests spell the paths out by
// hand, so a rename that changes the wire shows there.
const (
	// QueuesPath lists the queues (GET); every queue's routes live under it.
	QueuesPath = "/v1/queues"
	// HealthPath answers 200 "ok" to GET, with no token needed.
	HealthPath = "/healthz"
	// MetricsPath serves GET /metrics in the Prometheus text format.
	MetricsPath = "/metrics"
)

// Route is one route of a queue: what follows /v1/queues/<name> in its
// path. QueuePath joins a name and a Route.
type Route string

// The routes of a queue. The methods are the design's: GET only reads,
// every change is a POST.
const (
	RouteQueue    Route = ""          // GET config and counts; POST create or update
	RouteDelete   Route = "/delete"   // POST: the queue and its messages
	RoutePurge    Route = "/purge"    // POST: every message, keeping the config
	RouteMessages Route = "/messages" // POST enqueue one raw body; GET peek
	RouteBatch    Route = "/batch"    // POST enqueue a JSON batch
	RouteReceive  Route = "/receive"  // POST lease messages
	RouteAck      Route = "/ack"      // POST receipts: done
	RouteNack     Route = "/nack"     // POST receipts: back to the queue
	RouteExtend   Route = "/extend"   // POST receipts: a longer lease
	RouteFail     Route = "/fail"     // POST receipts: straight to dead
	RouteDead     Route = "/dead"     // GET the dead messages
	RouteRedrive  Route = "/redrive"  // POST dead messages back to ready
)

// QueuePath returns the path of route on the queue called name, the name
// path-escaped. It does not check the name: the server owns the naming
// rules (Client refuses, before sending, a name that would hit another
// route).
func QueuePath(name string, route Route) string {
	return QueuesPath + "/" + url.PathEscape(name) + string(route)
}

// queueParam is the router parameter that holds the queue's name.
const queueParam = "queue"

// pattern is the router's pattern for r, the name as a parameter. It is
// also the route's label in spool_http_requests_total.
func (r Route) pattern() string { return QueuesPath + "/:" + queueParam + string(r) }

// BaseURL returns the base URL of the server at addr: addr itself if it
// has a scheme ("https://host:port/prefix"), else http://addr; without a
// trailing slash, so paths append to it.
func BaseURL(addr string) string {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return strings.TrimRight(addr, "/")
}
