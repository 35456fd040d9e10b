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
	// TopicsPath lists the topics (GET); every topic's routes, and its
	// subscriptions', live under it.
	TopicsPath = "/v1/topics"
	// HealthPath answers 200 "ok" to GET, with no token needed.
	HealthPath = "/healthz"
	// MetricsPath serves GET /metrics in the Prometheus text format.
	MetricsPath = "/metrics"
	// BackupPath streams an online backup of the data directory (GET, a
	// tar archive; queue.Broker.Backup), what spool backup reads.
	BackupPath = "/v1/backup"
)

// Route is one route of a queue, a topic or a subscription: what follows
// /v1/queues/<name>, /v1/topics/<topic> or
// /v1/topics/<topic>/subscriptions/<sub> in its path. QueuePath,
// TopicPath and SubscriptionPath join the names and a Route.
type Route string

// The routes. The methods are the design's: GET only reads, every change
// is a POST. A topic has RouteQueue (itself), RouteDelete, RouteMessages
// and RouteBatch (publish), and RouteSeek; a subscription has RouteQueue,
// RouteDelete, RouteSeek and the consumer routes a queue has (receive,
// ack, nack, extend, fail, GET messages, dead, redrive).
const (
	RouteQueue    Route = ""          // GET config and counts; POST create or update (of a topic or subscription too)
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
	RouteStream   Route = "/stream"   // POST: NDJSON both ways, leases and acks on one connection
	RouteSeek     Route = "/seek"     // POST a topic's or subscription's new offset
)

// QueuePath returns the path of route on the queue called name, the name
// path-escaped. It does not check the name: the server owns the naming
// rules (Client refuses, before sending, a name that would hit another
// route).
func QueuePath(name string, route Route) string {
	return QueuesPath + "/" + url.PathEscape(name) + string(route)
}

// TopicPath returns the path of route on the topic called topic, the
// name path-escaped and not checked (see QueuePath).
func TopicPath(topic string, route Route) string {
	return TopicsPath + "/" + url.PathEscape(topic) + string(route)
}

// subscriptionsSegment sits between a topic's name and a subscription's.
const subscriptionsSegment = "/subscriptions/"

// SubscriptionPath returns the path of route on subscription sub of
// topic, the names path-escaped and not checked (see QueuePath).
func SubscriptionPath(topic, sub string, route Route) string {
	return TopicPath(topic, "") + subscriptionsSegment + url.PathEscape(sub) + string(route)
}

// The router parameters that hold the names a path gives.
const (
	queueParam        = "queue"
	topicParam        = "topic"
	subscriptionParam = "subscription"
)

// scope is what a route's path names: nothing, a queue, a topic or a
// subscription of a topic.
type scope int

const (
	scopeNone scope = iota
	scopeQueue
	scopeTopic
	scopeSubscription
)

// pattern is the router's pattern for r, the name as a parameter. It is
// also the route's label in spool_http_requests_total.
func (r Route) pattern() string { return r.patternIn(scopeQueue) }

// patternIn is the router's pattern for r on what sc names.
func (r Route) patternIn(sc scope) string {
	switch sc {
	case scopeTopic:
		return TopicsPath + "/:" + topicParam + string(r)
	case scopeSubscription:
		return TopicsPath + "/:" + topicParam + subscriptionsSegment + ":" + subscriptionParam + string(r)
	}
	return QueuesPath + "/:" + queueParam + string(r)
}

// BaseURL returns the base URL of the server at addr: addr itself if it
// has a scheme ("https://host:port/prefix"), else http://addr; without a
// trailing slash, so paths append to it.
func BaseURL(addr string) string {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return strings.TrimRight(addr, "/")
}
