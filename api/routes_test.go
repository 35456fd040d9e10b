package api

import "testing"

func TestQueuePath(t *testing.T) {
	for _, tc := range []struct {
		name  string
		route Route
		want  string
	}{
		{"jobs", RouteQueue, "/v1/queues/jobs"},
		{"jobs", RouteAck, "/v1/queues/jobs/ack"},
		{"a b", RouteReceive, "/v1/queues/a%20b/receive"},
		{"a/b", RouteDelete, "/v1/queues/a%2Fb/delete"}, // the server refuses it as a name, never as another route
	} {
		if got := QueuePath(tc.name, tc.route); got != tc.want {
			t.Errorf("QueuePath(%q, %q) = %q, want %q", tc.name, tc.route, got, tc.want)
		}
	}
	if got := RouteMessages.pattern(); got != "/v1/queues/:queue/messages" {
		t.Errorf("the router's pattern for messages is %q", got)
	}
}
