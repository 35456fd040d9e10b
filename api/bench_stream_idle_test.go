//go:build linux

package api_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spoolq/spool/api"
	"github.com/spoolq/spool/bench"
	"github.com/spoolq/spool/queue"
)

const streamServerEnvDir = "SPOOL_STREAM_SERVER_DIR"

// TestStreamServerChild serves the API on 127.0.0.1 for
// BenchmarkHTTPStreamIdle, in a process of its own so that its RSS is the
// server's alone; it prints its address and serves until stdin closes.
func TestStreamServerChild(t *testing.T) {
	dir := os.Getenv(streamServerEnvDir)
	if dir == "" {
		t.Skip("the server side of BenchmarkHTTPStreamIdle")
	}
	s, err := api.Open(dir, api.ServiceConfig{Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler),
		Queue: queue.Options{MaintenanceInterval: -1}, MaxConnections: 2000, ExplicitMaxConnections: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Broker().Create("q", queue.ConfigUpdate{}); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("ADDR %s\n", s.Addr())
	// Each line from the parent asks where the memory is; stdin closing
	// ends the server.
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fmt.Printf("MEM %d %d %d\n", ms.HeapInuse, ms.StackInuse, runtime.NumGoroutine())
	}
	s.Close()
}

// childMem is what TestStreamServerChild says of its memory.
type childMem struct{ heap, stack, goroutines int64 }

func (c *streamChild) mem(b *testing.B) childMem {
	b.Helper()
	fmt.Fprintln(c.stdin)
	var m childMem
	if !c.out.Scan() {
		b.Fatal("the server child is gone")
	}
	if _, err := fmt.Sscanf(c.out.Text(), "MEM %d %d %d", &m.heap, &m.stack, &m.goroutines); err != nil {
		b.Fatalf("the server child said %q: %v", c.out.Text(), err)
	}
	return m
}

// BenchmarkHTTPStreamIdle runs the server in a child process and measures
// (1) publish→delivery latency on one idle stream (credit 1, each message
// acked before the next is sent): from an enqueue request
// to the message on the stream, beside the enqueue's own round trip (p50
// and p99 over b.N, sync=always), and
// (2) the server's RSS growth for 1,000 idle open streams, over HTTP/1.1
// (a connection each) and over h2c (multiplexed), from /proc of the
// child.
func BenchmarkHTTPStreamIdle(b *testing.B) {
	addr := startStreamServer(b).addr
	ctx := context.Background()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	c := api.NewClient("http://"+addr, "", hc)

	// (1) latency on one idle stream.
	s, err := c.Queue("q").Stream(ctx, api.StreamOptions{Credit: 1})
	if err != nil {
		b.Fatal(err)
	}
	// lat is from the enqueue request to the message on the stream (the
	// enqueue's fsync included); rtt the enqueue's own round trip.
	lat := make([]time.Duration, 0, b.N)
	rtt := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		got := make(chan api.Message, 1)
		go func() {
			m := <-s.Messages()
			lat = append(lat, time.Since(start))
			got <- m
		}()
		if _, err := c.Send(ctx, "q", []byte("x"), 0); err != nil {
			b.Fatal(err)
		}
		rtt = append(rtt, time.Since(start))
		if err := s.Ack(ctx, (<-got).Receipt); err != nil { // frees the credit of 1
			b.Fatal(err)
		}
	}
	b.StopTimer()
	s.Close()
	for _, l := range []struct {
		name string
		d    []time.Duration
	}{{"publish-to-delivery", lat}, {"enqueue-rtt", rtt}} {
		slices.Sort(l.d)
		b.ReportMetric(float64(l.d[len(l.d)/2].Microseconds()), l.name+"-p50-µs")
		b.ReportMetric(float64(l.d[len(l.d)*99/100].Microseconds()), l.name+"-p99-µs")
	}

	// (2) 1,000 idle streams: over HTTP/1.1 a connection each, over h2c
	// multiplexed on a shared transport's few connections.
	for _, proto := range []string{"h2c", "http1"} {
		child := startStreamServer(b) // a fresh one: no memory the last run freed to reuse
		addr := child.addr
		before, ok := bench.ProcStatusBytes(child.pid, "VmRSS")
		if !ok {
			b.Skip("no /proc RSS here")
		}
		memBefore := child.mem(b)
		h2c := &http.Transport{Protocols: new(http.Protocols)}
		h2c.Protocols.SetUnencryptedHTTP2(true)
		var streams []*api.Stream
		for range 1000 {
			tr := h2c
			if proto == "http1" {
				tr = &http.Transport{}
			}
			st, err := api.NewClient("http://"+addr, "", &http.Client{Transport: tr}).Queue("q").Stream(ctx, api.StreamOptions{Credit: 10})
			if err != nil {
				b.Fatal(err)
			}
			streams = append(streams, st)
		}
		after, _ := bench.ProcStatusBytes(child.pid, "VmRSS")
		memAfter := child.mem(b)
		b.ReportMetric(float64(after-before)/(1<<20), "MB-per-1000-idle-streams-"+proto)
		b.ReportMetric(float64(memAfter.heap-memBefore.heap)/(1<<20), "heap-MB-"+proto)
		b.ReportMetric(float64(memAfter.stack-memBefore.stack)/(1<<20), "stack-MB-"+proto)
		b.ReportMetric(float64(memAfter.goroutines-memBefore.goroutines)/1000, "goroutines-per-stream-"+proto)
		for _, st := range streams {
			st.Close()
		}
	}
}

// streamChild is a running TestStreamServerChild.
type streamChild struct {
	addr, pid string
	stdin     io.Writer
	out       *bufio.Scanner
}

// startStreamServer starts TestStreamServerChild; it stops when the
// benchmark ends.
func startStreamServer(b *testing.B) *streamChild {
	b.Helper()
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestStreamServerChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), streamServerEnvDir+"="+b.TempDir())
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); cmd.Wait() })
	c := &streamChild{pid: fmt.Sprint(cmd.Process.Pid), stdin: stdin, out: bufio.NewScanner(stdout)}
	for c.out.Scan() {
		if a, ok := strings.CutPrefix(c.out.Text(), "ADDR "); ok {
			c.addr = a
			return c
		}
	}
	b.Fatal("the server child printed no address")
	return nil
}
