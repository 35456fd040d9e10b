package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// WriteJSON writes the report as indented JSON (the --json output).
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes a readable summary, with the baselines and the ratios
// to them when they were measured.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	line := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "  %-11s %s\n", label, fmt.Sprintf(format, args...))
	}
	target := "in-process server (sync=" + r.Sync + ")"
	if r.Target != "in-process" {
		target = "server at " + r.Target
	}
	shape := fmt.Sprintf("concurrency %d", r.Concurrency)
	if r.Producers > 0 {
		shape += fmt.Sprintf(" (%s, %s)", plural(r.Producers, "producer"), plural(r.Consumers, "consumer"))
	}
	shape += fmt.Sprintf(", %d-byte messages", r.Size)
	if r.Batch > 0 {
		shape += fmt.Sprintf(", batches of %d", r.Batch)
	}
	fmt.Fprintf(&b, "spool bench %s: %s, %s, %s measured\n", r.Scenario, target, shape, secs(r.Duration))

	unit := map[string]string{Enqueue: "enqueued", EnqueueBatch: "enqueued", ReceiveAck: "acked", ReceiveAckBatch: "acked", Mixed: "received",
		BeanstalkPut: "inserted", BeanstalkReserveDelete: "deleted", RedisLPush: "pushed"}[r.Scenario]
	extra := ""
	if r.Enqueued > 0 {
		extra = fmt.Sprintf(", %s enqueued", count(r.Enqueued))
	}
	line("throughput", "%s msgs/s, %s req/s  (%s messages %s%s, %s requests, %s errors)",
		count(int64(r.MsgsPerSec)), count(int64(r.ReqPerSec)), count(r.Messages), unit, extra, count(r.Requests), count(r.Errors))
	line("latency", "p50 %s  p99 %s  p99.9 %s  max %s  mean %s", ms(r.LatencyP50), ms(r.LatencyP99), ms(r.LatencyP999), ms(r.LatencyMax), ms(r.LatencyMean))
	line("", "one sample: %s", r.LatencyOf)

	if r.Fsyncs == Unknown {
		line("fsyncs", "n/a: %s", r.FsyncSource)
	} else {
		per := "no fsync"
		if r.MsgsPerFsync != Unknown {
			per = fmt.Sprintf("%s msgs per fsync", num(r.MsgsPerFsync))
		}
		line("fsyncs", "%s/s (%s in the window), %s  [%s]", count(int64(r.FsyncsPerSec)), count(r.Fsyncs), per, r.FsyncSource)
	}
	if r.DiskFlushes != Unknown {
		line("disk", "%s flushes/s on %s (%s; whole disk, every process, journal included)",
			count(int64(rate(r.DiskFlushes, r.Duration))), r.Disk, count(r.DiskFlushes))
	}

	if r.ServerRSSBytes == Unknown {
		line("memory", "RSS n/a (%s)", r.RSSSource)
	} else {
		line("memory", "RSS %s at the end, %s peak  [%s]", mib(r.ServerRSSBytes), mib(r.ServerRSSPeakBytes), r.RSSSource)
	}

	var cpu []string
	if r.CPUCores != Unknown {
		who := "bench process"
		if r.Target == "in-process" {
			who = "bench process (server + client)"
		}
		cpu = append(cpu, fmt.Sprintf("%s cores busy in the %s", num(r.CPUCores), who))
	}
	if r.ServerCPUCores != Unknown {
		cpu = append(cpu, fmt.Sprintf("%s cores in the server", num(r.ServerCPUCores)))
	}
	if r.ClientCPUShare != Unknown {
		split := fmt.Sprintf("client %s, server %s", pct(r.ClientCPUShare), pct(r.ServerCPUShare))
		if rest := 1 - r.ClientCPUShare - r.ServerCPUShare; rest > 0.005 {
			split += ", Go runtime/GC " + pct(rest)
		}
		cpu = append(cpu, split)
	}
	if len(cpu) == 0 {
		cpu = append(cpu, "n/a")
	}
	line("cpu", "%s  [%s]", strings.Join(cpu, "; "), r.CPUSource)

	if r.Prefilled > 0 {
		line("prefill", "%s messages before the warm-up and the window", count(r.Prefilled))
	}

	if bl := r.Baselines; bl != nil {
		line("baselines", "raw fsync %s/s (100-byte append + fsync for %s in %s)", count(int64(bl.FsyncPerSec)), secs(bl.FsyncDuration), bl.FsyncDir)
		if bl.TrivialDuration > 0 {
			line("", "trivial %s %s req/s (mean of %s before the window and %s after; p50 %s, p99 %s; same client and concurrency, %s each)",
				bl.TrivialServer, count(int64(bl.TrivialReqPerSec)), count(int64(bl.TrivialBefore)), count(int64(bl.TrivialAfter)), ms(bl.TrivialLatencyP50), ms(bl.TrivialLatencyP99), secs(bl.TrivialDuration))
		}
		line("ratios", "%sx the one-fsync-per-message ceiling (msgs/s / raw fsync/s)", num(bl.MsgsPerRawFsync))
		if bl.FsyncUse != Unknown {
			line("", "fsyncs at %s of the raw fsync rate", pct(bl.FsyncUse))
		}
		if bl.VsTrivial != Unknown {
			line("", "requests at %s of the trivial %s's rate (%sx)", pct(bl.VsTrivial), bl.TrivialServer, num(bl.VsTrivial))
		}
	}
	for _, n := range r.Notes {
		line("note", "%s", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// count formats n with thousands separators.
func count(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

// num formats a ratio with about 3 significant digits.
func num(f float64) string {
	switch a := max(f, -f); {
	case a >= 100:
		return strconv.FormatFloat(f, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(f, 'f', 1, 64)
	default:
		return strconv.FormatFloat(f, 'f', 2, 64)
	}
}

func pct(f float64) string { return fmt.Sprintf("%.0f%%", f*100) }

func secs(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// ms formats a latency in milliseconds, with about 3 significant digits.
func ms(d time.Duration) string {
	if d < time.Millisecond {
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64) + "ms"
	}
	return num(float64(d)/float64(time.Millisecond)) + "ms"
}
