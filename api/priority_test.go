package api

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestEnqueueTakesAPriorityAndAVisibilityTimeout(t *testing.T) {
	f := srvStart(t, Config{})
	f.create("q", `{"visibility_timeout":"1m"}`)
	f.enqueue("q", "default", "")
	f.enqueue("q", "urgent", "?priority=0&visibility_timeout=5s")
	srvWantStatus(t, f.postJSON("/v1/queues/q/batch", `{"messages":[{"body":"seven","priority":7},{"body":"late","priority":4294967295,"visibility_timeout":"2h"}]}`), http.StatusCreated)

	var peeked Messages
	srvWantJSON(t, f.get("/v1/queues/q/messages"), http.StatusOK, &peeked)
	for i, want := range []struct {
		body string
		pri  uint32
		vis  string
	}{{"default", 1024, ""}, {"urgent", 0, "5s"}, {"seven", 7, ""}, {"late", 4294967295, "2h0m0s"}} {
		if m := peeked.Messages[i]; *m.Body != want.body || m.Priority != want.pri || m.VisibilityTimeout != want.vis {
			t.Errorf("peek %d: %q at %d (visibility %q), want %q at %d (%q)", i, *m.Body, m.Priority, m.VisibilityTimeout, want.body, want.pri, want.vis)
		}
	}
	got := f.receive("q", "?max=10")
	var order []string
	for _, m := range got {
		order = append(order, *m.Body)
	}
	if want := "urgent seven default late"; strings.Join(order, " ") != want {
		t.Fatalf("receive order %q, want %q", order, want)
	}
	// A lease takes the message's own visibility timeout, else the queue's.
	for _, m := range got {
		lease, _ := time.Parse(time.RFC3339Nano, m.LeaseEnds)
		want := map[string]time.Duration{"urgent": 5 * time.Second, "seven": time.Minute, "default": time.Minute, "late": 2 * time.Hour}[*m.Body]
		if d := lease.Sub(srvT0); d != want {
			t.Errorf("%s: lease of %s, want %s", *m.Body, d, want)
		}
	}
}

func TestEnqueueRefusesABadPriority(t *testing.T) {
	f := srvStart(t, Config{})
	f.create("q", "")
	for _, r := range []srvResp{
		f.post("/v1/queues/q/messages?priority=-1", "x"),
		f.post("/v1/queues/q/messages?priority=4294967296", "x"),
		f.post("/v1/queues/q/messages?priority=high", "x"),
		f.post("/v1/queues/q/messages?visibility_timeout=13h", "x"),
		f.postJSON("/v1/queues/q/batch", `{"messages":[{"body":"x","priority":-1}]}`),
		f.postJSON("/v1/queues/q/batch", `{"messages":[{"body":"x","priority":"1"}]}`),
		f.postJSON("/v1/queues/q/batch", `{"messages":[{"body":"x","visibility_timeout":"forever"}]}`),
	} {
		srvWantError(t, r, http.StatusBadRequest, CodeInvalidRequest)
	}
	if c := f.counts("q"); c.Total != 0 {
		t.Fatalf("a refused enqueue left %d messages", c.Total)
	}
}

func TestATopicRefusesAPriority(t *testing.T) {
	f := srvStart(t, Config{})
	srvWantStatus(t, f.postJSON("/v1/topics/t", ""), http.StatusCreated)
	srvWantError(t, f.post("/v1/topics/t/messages?priority=1", "x"), http.StatusBadRequest, CodeInvalidRequest)
}

// --beanstalk-addr: a job put over beanstalkd's protocol is a message
// the HTTP API sees, with its priority and TTR.
func TestServiceSpeaksBeanstalkBesideHTTP(t *testing.T) {
	s := serviceOpen(t, &srvLogBuffer{}, ServiceConfig{BeanstalkAddr: "127.0.0.1:0"})
	nc, err := net.Dial("tcp", s.BeanstalkAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	br := bufio.NewReader(nc)
	fmt.Fprintf(nc, "use emails\r\nput 5 0 90 5\r\nhello\r\n")
	for _, want := range []string{"USING emails\r\n", "INSERTED "} {
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, want) {
			t.Fatalf("reply %q, %v; want %q", line, err, want)
		}
	}
	resp, err := http.Get(s.URL() + "/v1/queues/emails/messages")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{`"priority":5`, `"visibility_timeout":"1m30s"`, `"body":"hello"`} {
		if !strings.Contains(string(body), want) {
			t.Fatalf("peek over HTTP %s lacks %s", body, want)
		}
	}
}
