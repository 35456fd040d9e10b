package api_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolq/spool/api"
	"github.com/spoolq/spool/queue"
)

// TestStreamShutdownRefusesNewStreams: once Server.Shutdown has run, a
// stream is refused with 503 shutting_down before it leases anything.
func TestStreamShutdownRefusesNewStreams(t *testing.T) {
	for _, proto := range streamProtocols {
		t.Run(proto, func(t *testing.T) {
			e := newStreamEnv(t, proto)
			e.enqueue(t, 3)
			e.srv.Shutdown()
			s, err := e.c.Queue("q").Stream(context.Background(), api.StreamOptions{Credit: 3})
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || ae.Code != api.CodeShuttingDown || !errors.Is(err, queue.ErrClosed) {
				if s != nil {
					s.Close()
				}
				t.Fatalf("a stream after Shutdown: %v, want 503 %s", err, api.CodeShuttingDown)
			}
			if c := e.counts(t); c.Ready != 3 || c.Leased != 0 {
				t.Fatalf("after the refused stream: %+v, want all 3 ready", c)
			}
		})
	}
}

// TestStreamReconnectsDuringShutdownSpendNoAttempts: consumers that
// reconnect in a loop while the server stops lease nothing once it has
// begun to: each message was leased at most once (before Shutdown), so
// none reaches its queue's MaxAttempts and goes dead, and every lease is
// back once EndStreams returns.
func TestStreamReconnectsDuringShutdownSpendNoAttempts(t *testing.T) {
	for _, proto := range streamProtocols {
		t.Run(proto, func(t *testing.T) {
			e := newStreamEnv(t, proto)
			maxAttempts := 3
			if _, _, err := e.b.Create("q", queue.ConfigUpdate{MaxAttempts: &maxAttempts}); err != nil {
				t.Fatal(err)
			}
			const messages, consumers = 10, 3
			e.enqueue(t, messages)

			ctx, stop := context.WithCancel(context.Background())
			var refused, delivered atomic.Int64
			var wg sync.WaitGroup
			for range consumers {
				wg.Go(func() {
					for ctx.Err() == nil {
						s, err := e.c.Queue("q").Stream(ctx, api.StreamOptions{Credit: messages, Visibility: time.Hour})
						if err != nil {
							if errors.Is(err, queue.ErrClosed) {
								refused.Add(1)
							}
							continue
						}
						for range s.Messages() { // never acked: every one goes back when the stream ends
							delivered.Add(1)
						}
						s.Close()
					}
				})
			}
			deadline := time.Now().Add(10 * time.Second)
			for delivered.Load() < messages && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond) // polling a condition, with a deadline
			}
			if got := delivered.Load(); got < messages {
				stop()
				wg.Wait()
				t.Fatalf("before Shutdown the consumers got %d messages, want all %d", got, messages)
			}
			e.srv.Shutdown()
			// Every consumer comes back, several times over, and is refused.
			for refused.Load() < 5*consumers && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			stop()
			wg.Wait()
			if n := refused.Load(); n < 5*consumers {
				t.Fatalf("only %d streams were refused after Shutdown", n)
			}
			if !e.srv.EndStreams(5 * time.Second) {
				t.Fatal("EndStreams: streams still running")
			}
			if c := e.counts(t); c.Ready != messages || c.Leased != 0 || c.Dead != 0 {
				t.Fatalf("after the shutdown: %+v, want all %d ready, none dead", c, messages)
			}
			err := e.q.PeekEach(0, messages, func(m queue.Message) error {
				if m.Attempts > 1 {
					t.Errorf("message %d was leased %d times, want at most once (before Shutdown)", m.ID, m.Attempts)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestStreamOpenEndsWithItsContext: a Stream whose context ends before
// the server answers returns the context's error. (net/http's transport
// waits for the request body's writer before it returns; the body is the
// stream's pipe, which nothing else would end.)
func TestStreamOpenEndsWithItsContext(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		close(entered)
		<-release // never answers while the client waits
	}))
	defer ts.Close()
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	opened := make(chan error, 1)
	go func() {
		s, err := api.NewClient(ts.URL, "", ts.Client()).Queue("q").Stream(ctx, api.StreamOptions{})
		if s != nil {
			s.Close()
		}
		opened <- err
	}()
	<-entered
	cancel()
	select {
	case err := <-opened:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Stream = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Stream did not return once its context ended")
	}
}
