//go:build unix

package api_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/spoolq/spool/api"
	"github.com/spoolq/spool/log/crashtest"
)

const streamCrashEnvURL = "SPOOL_STREAM_CRASH_URL"

// TestStreamCrashChild is the child of TestStreamKilledClientLeavesNothingLeased:
// it opens a stream with credit 5 and prints each message it gets, acking
// none, until it is killed.
func TestStreamCrashChild(t *testing.T) {
	url := crashtest.Child(t, streamCrashEnvURL)
	proto := os.Getenv("SPOOL_STREAM_CRASH_PROTO")
	hc := &http.Client{Transport: &http.Transport{}}
	if proto == "h2c" {
		tr := &http.Transport{Protocols: new(http.Protocols)}
		tr.Protocols.SetUnencryptedHTTP2(true)
		hc = &http.Client{Transport: tr}
	}
	s, err := api.NewClient(url, "", hc).Queue("q").Stream(context.Background(), api.StreamOptions{Credit: 5, Visibility: time.Hour})
	if err != nil {
		crashtest.Die("stream: %v", err)
	}
	for m := range s.Messages() {
		fmt.Printf("R %s\n", m.ID)
	}
	crashtest.Die("the stream ended: %v", s.Err())
}

// TestStreamKilledClientLeavesNothingLeased SIGKILLs a client holding
// leases on a stream (visibility an hour) and checks that they are ready
// again at once, not when the leases run out, over HTTP/1.1 and h2c.
func TestStreamKilledClientLeavesNothingLeased(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a child process; skipped in -short mode")
	}
	for _, proto := range []string{"http1", "h2c"} {
		t.Run(proto, func(t *testing.T) {
			e := newStreamEnv(t, proto)
			e.enqueue(t, 20)
			lines, _, stderr := crashtest.Kill(t, "TestStreamCrashChild",
				[]string{streamCrashEnvURL + "=" + e.ts.URL, "SPOOL_STREAM_CRASH_PROTO=" + proto}, 20*time.Second, 50*time.Millisecond, 150*time.Millisecond)
			if len(stderr) > 0 {
				t.Fatalf("child: %s", stderr)
			}
			if len(lines) == 0 || len(lines) > 5 {
				t.Fatalf("the child received %d messages on a stream of credit 5", len(lines))
			}
			deadline := time.Now().Add(10 * time.Second)
			for e.counts(t).Leased != 0 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond) // polling a condition, with a deadline
			}
			c := e.counts(t)
			if c.Leased != 0 || c.Ready != 20 {
				t.Fatalf("after the client was killed: %+v, want every lease back at once", c)
			}
			if info, _ := e.q.Info(); info.Stats.Nacked < uint64(len(lines)) {
				t.Fatalf("nacked %d, want at least the %d messages the child printed", info.Stats.Nacked, len(lines))
			}
		})
	}
}
