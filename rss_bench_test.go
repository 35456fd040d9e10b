package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spoolq/spool/bench"
)

// BenchmarkRequestMemory measures what large replies and requests cost the
// real server in memory (issue 11): the growth of its peak RSS (VmHWM,
// reset through /proc/PID/clear_refs before each step) over its RSS at
// the reset, for one peek of 1,000 messages of 256 KiB, for four such
// peeks at once, and for one batch enqueue of 255 x 256 KiB (63.75 MiB,
// about what one batch can hold); and its RSS once it settles after the
// peeks and after the batch, over the RSS before. Targets: peak growth
// ≤ 2x the reply for one peek, ≤ 4x for four, RSS after within 10% of
// before.
//
// It needs about 330 MB of disk under the temp directory. SPOOL_RSS_BIN
// names another spool binary to measure (a baseline built from an older
// tree); run with -benchtime=1x.
func BenchmarkRequestMemory(b *testing.B) {
	bin := os.Getenv("SPOOL_RSS_BIN")
	if bin == "" {
		bin = buildSpool(b)
	}
	for range b.N {
		data := b.TempDir()
		srv := startBinary(b, bin, data)
		pid, base := srv.cmd.Process.Pid, srv.base
		post := func(path, ctype string, body []byte) {
			b.Helper()
			resp, err := http.Post(base+path, ctype, bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode >= 300 {
				b.Fatalf("POST %s: %d", path, resp.StatusCode)
			}
		}
		post("/v1/queues/big", "application/json", nil)
		rng := rand.New(rand.NewPCG(1, 2))
		body := make([]byte, 256<<10)
		for range 1000 {
			for i := range body {
				body[i] = 'a' + byte(rng.IntN(26))
			}
			post("/v1/queues/big/messages", "application/octet-stream", body)
		}
		peek := func() int64 {
			resp, err := http.Get(base + "/v1/queues/big/messages?limit=1000")
			if err != nil {
				b.Fatal(err)
			}
			defer resp.Body.Close()
			n, err := io.Copy(io.Discard, resp.Body)
			if err != nil || resp.StatusCode != 200 {
				b.Fatalf("peek: %d, %v", resp.StatusCode, err)
			}
			return n
		}
		settle(pid)
		before := procStatus(b, pid, "VmRSS")

		from := resetPeak(b, pid)
		reply := peek()
		one := procStatus(b, pid, "VmHWM") - from

		from = resetPeak(b, pid)
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() { peek() })
		}
		wg.Wait()
		four := procStatus(b, pid, "VmHWM") - from
		afterPeeks := settle(pid)

		var batch strings.Builder
		batch.WriteString(`{"messages":[`)
		for i := range 255 {
			if i > 0 {
				batch.WriteByte(',')
			}
			for j := range body {
				body[j] = byte(rng.Uint32())
			}
			fmt.Fprintf(&batch, `{"body_base64":%q}`, base64.StdEncoding.EncodeToString(body))
		}
		batch.WriteString(`]}`)
		from = resetPeak(b, pid)
		post("/v1/queues/big/batch", "application/json", []byte(batch.String()))
		batchGrowth := procStatus(b, pid, "VmHWM") - from

		after := settle(pid)
		b.ReportMetric(float64(reply)/(1<<20), "reply-MiB")
		b.ReportMetric(float64(one)/float64(reply), "peak/reply-1")
		b.ReportMetric(float64(four)/float64(reply), "peak/reply-4")
		b.ReportMetric(float64(batchGrowth)/float64(255<<18), "peak/batch")
		b.ReportMetric(float64(before)/(1<<20), "rss-before-MiB")
		b.ReportMetric(float64(afterPeeks)/float64(before), "rss-after-peeks/before")
		b.ReportMetric(float64(after)/float64(before), "rss-after/before")
	}
}

// settle waits (up to 10 s) until the server's RSS stops falling, and
// returns it: the Go runtime gives freed memory back to the system over
// some seconds. Polling with a deadline, in a benchmark.
func settle(pid int) int64 {
	last := int64(-1)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		rss, _ := bench.ProcStatusBytes(strconv.Itoa(pid), "VmRSS")
		if last >= 0 && rss >= last {
			return rss
		}
		last = rss
		time.Sleep(time.Second)
	}
	return last
}

// resetPeak resets the server's VmHWM to its RSS now, and returns that.
func resetPeak(tb testing.TB, pid int) int64 {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		tb.Skipf("cannot reset the peak RSS: %v", err)
	}
	return procStatus(tb, pid, "VmHWM")
}

// procStatus returns a /proc/PID/status field in bytes.
func procStatus(tb testing.TB, pid int, field string) int64 {
	v, ok := bench.ProcStatusBytes(strconv.Itoa(pid), field)
	if !ok {
		tb.Fatalf("no %s in /proc/%d/status", field, pid)
	}
	return v
}
