package api

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/spoolq/spool/queue"
)

// Metrics collects what /metrics exposes, in the Prometheus text format,
// through github.com/VictoriaMetrics/metrics (small, no dependencies of
// note, cheap counters). Per-queue counts are read at scrape time. Every
// family has its # HELP and # TYPE lines (see write).
type Metrics struct {
	set         *metrics.Set
	fsync       *metrics.PrometheusHistogram
	batch       *metrics.PrometheusHistogram
	fsyncs      *metrics.Counter
	stateFsyncs *metrics.Counter
	requests    sync.Map // requestKey → *metrics.Counter
	build       Build
}

// The families of /metrics that this package writes or registers, with
// their help texts. The counters and histograms of Metrics.set get their
// TYPE from the library and their HELP from here (see fillMetadata); the
// per-queue families are written with both by write.
var (
	famFsync          = family{"spool_fsync_seconds", "histogram", "Time one fsync of a message log or state log took."}
	famCommitRecords  = family{"spool_commit_records", "histogram", "Messages written by one group commit of a message log."}
	famFsyncs         = family{"spool_fsyncs_total", "counter", "Fsyncs of the message logs and state logs together."}
	famStateFsyncs    = family{"spool_state_fsyncs_total", "counter", "Fsyncs of the state logs (leases, acks, nacks) alone."}
	famCommitErrors   = family{"spool_commit_errors_total", "counter", "Group commits of a message log that failed; the server log has each error."}
	famRequests       = family{"spool_http_requests_total", "counter", "HTTP requests answered, by route pattern and status (499: the client hung up)."}
	famMessages       = family{"spool_messages", "gauge", "Messages in a queue, by state: ready, delayed, leased, dead."}
	famQueueBytes     = family{"spool_queue_bytes", "gauge", "Bytes of a queue's message log on disk."}
	famOldestReadyAge = family{"spool_queue_oldest_ready_age_seconds", "gauge", "Seconds since the oldest ready message of a queue was enqueued (0 when none is ready): how far its consumers are behind."}
	famQueuesDown     = family{"spool_queues_unavailable", "gauge", "Queues whose files did not open; GET /v1/queues says why."}
	famBuildInfo      = family{"spool_build_info", "gauge", "Always 1; its labels say which spool this is (as spool version prints it)."}
	famTopicBytes     = family{"spool_topic_bytes", "gauge", "Bytes of a topic's message log on disk."}
	famTopicPublished = family{"spool_topic_published_total", "counter", "Messages published to a topic since the server opened it."}
	famTopicsDown     = family{"spool_topics_unavailable", "gauge", "Topics whose files did not open; GET /v1/topics says why."}
	famSubMessages    = family{"spool_subscription_messages", "gauge", "Messages of a subscription, by state: ready (published and not read yet included), delayed, leased, dead."}
	famSubLag         = family{"spool_subscription_lag", "gauge", "A subscription's backlog: its ready, delayed and leased messages, everything since its offset it has not finished."}
	famSubSkipped     = family{"spool_subscription_skipped_total", "counter", "Messages of a subscription that retention removed before it finished them."}
	famSubTotalCounts = []struct {
		family
		value func(queue.Stats) uint64
	}{
		{family{"spool_subscription_acked_total", "counter", "Messages of a subscription acked (done) since the server opened it."}, func(s queue.Stats) uint64 { return s.Acked }},
		{family{"spool_subscription_nacked_total", "counter", "Leases of a subscription nacked since the server opened it."}, func(s queue.Stats) uint64 { return s.Nacked }},
		{family{"spool_subscription_expired_total", "counter", "Leases of a subscription that ran out without an ack since the server opened it."}, func(s queue.Stats) uint64 { return s.Expired }},
		{family{"spool_subscription_dead_total", "counter", "Messages of a subscription that went dead since the server opened it."}, func(s queue.Stats) uint64 { return s.Dead }},
		{family{"spool_subscription_dead_lettered_total", "counter", "Dead messages moved from a subscription to its dead-letter queue since the server opened it."}, func(s queue.Stats) uint64 { return s.DeadLettered }},
	}
	famQueueTotalCounts = []struct {
		family
		value func(queue.Stats) uint64
	}{
		{family{"spool_enqueued_total", "counter", "Messages enqueued into a queue since the server opened it."}, func(s queue.Stats) uint64 { return s.Enqueued }},
		{family{"spool_acked_total", "counter", "Messages of a queue acked (done) since the server opened it."}, func(s queue.Stats) uint64 { return s.Acked }},
		{family{"spool_nacked_total", "counter", "Leases of a queue nacked (returned to the queue) since the server opened it."}, func(s queue.Stats) uint64 { return s.Nacked }},
		{family{"spool_expired_total", "counter", "Leases of a queue that ran out without an ack since the server opened it."}, func(s queue.Stats) uint64 { return s.Expired }},
		{family{"spool_dead_total", "counter", "Messages of a queue that went dead (attempts used up, or failed) since the server opened it."}, func(s queue.Stats) uint64 { return s.Dead }},
		{family{"spool_dead_lettered_total", "counter", "Dead messages moved from a queue to its dead-letter queue since the server opened it."}, func(s queue.Stats) uint64 { return s.DeadLettered }},
		{family{"spool_removed_total", "counter", "Messages of a queue removed by its retention since the server opened it."}, func(s queue.Stats) uint64 { return s.Removed }},
	}
)

// NewMetrics returns an empty collector. Pass its OnCommit and
// OnStateSync to queue.Options so fsyncs and group commits are counted.
//
// It turns on the metrics library's metadata (metrics.ExposeMetadata), a
// process-wide switch: that is the only way to learn the TYPE of the Go
// runtime and process families it writes.
func NewMetrics() *Metrics {
	metrics.ExposeMetadata(true)
	set := metrics.NewSet()
	return &Metrics{
		set:         set,
		fsync:       set.GetOrCreatePrometheusHistogramExt(famFsync.name, []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1}),
		batch:       set.GetOrCreatePrometheusHistogramExt(famCommitRecords.name, []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096}),
		fsyncs:      set.GetOrCreateCounter(famFsyncs.name),
		stateFsyncs: set.GetOrCreateCounter(famStateFsyncs.name),
		build:       ReadBuild(),
	}
}

// OnStateSync records one state-log fsync: spool_fsyncs_total counts the
// fsyncs of both logs, spool_state_fsyncs_total the state log's alone.
func (m *Metrics) OnStateSync(_ string, _ int, took time.Duration) {
	m.fsyncs.Inc()
	m.stateFsyncs.Inc()
	m.fsync.Update(took.Seconds())
}

// OnCommit records one message-log commit round.
func (m *Metrics) OnCommit(_ string, c queue.Commit) {
	if c.Err != nil {
		m.set.GetOrCreateCounter(famCommitErrors.name).Inc()
		return
	}
	m.batch.Update(float64(c.Records))
	if c.Synced {
		m.fsyncs.Inc()
		m.fsync.Update(c.SyncTime.Seconds())
	}
}

// request counts one request. The counter for a route and status is
// looked up once, not named with Sprintf per request: this runs on every
// request, and routes and statuses are few.
func (m *Metrics) request(route string, status int) {
	k := requestKey{route, status}
	c, ok := m.requests.Load(k)
	if !ok {
		c, _ = m.requests.LoadOrStore(k, m.set.GetOrCreateCounter(fmt.Sprintf(`%s{route=%q,status="%d"}`, famRequests.name, route, status)))
	}
	c.(*metrics.Counter).Inc()
}

type requestKey struct {
	route  string
	status int
}

// write writes the whole /metrics page: the registered counters and
// histograms, the per-queue families (each family's samples together, as
// the format requires, under one HELP and TYPE), the build info, then the
// Go runtime and process families. now is the clock the ages are
// measured by (the broker's).
func (m *Metrics) write(w io.Writer, b *queue.Broker, now time.Time) {
	var lib bytes.Buffer
	m.set.WritePrometheus(&lib)
	fillMetadata(w, lib.Bytes())

	var infos []queue.Info
	unavailable := 0
	for _, info := range b.List() {
		if info.Err != nil {
			unavailable++ // the alert for "one tenant is down"
			continue
		}
		infos = append(infos, info)
	}
	if len(infos) > 0 {
		famMessages.header(w)
		for _, info := range infos {
			c := info.Counts
			for _, g := range []struct {
				state string
				n     int
			}{{"ready", c.Ready}, {"delayed", c.Delayed}, {"leased", c.Leased}, {"dead", c.Dead}} {
				fmt.Fprintf(w, "%s{queue=%q,state=%q} %d\n", famMessages.name, info.Name, g.state, g.n)
			}
		}
		famQueueBytes.header(w)
		for _, info := range infos {
			fmt.Fprintf(w, "%s{queue=%q} %d\n", famQueueBytes.name, info.Name, info.Bytes)
		}
		famOldestReadyAge.header(w)
		for _, info := range infos {
			age := 0.0
			if !info.OldestReady.IsZero() {
				age = max(now.Sub(info.OldestReady).Seconds(), 0) // a clock step back is no negative age
			}
			fmt.Fprintf(w, "%s{queue=%q} %s\n", famOldestReadyAge.name, info.Name, strconv.FormatFloat(age, 'f', -1, 64))
		}
		for _, f := range famQueueTotalCounts {
			f.header(w)
			for _, info := range infos {
				fmt.Fprintf(w, "%s{queue=%q} %d\n", f.name, info.Name, f.value(info.Stats))
			}
		}
	}
	famQueuesDown.header(w)
	fmt.Fprintf(w, "%s %d\n", famQueuesDown.name, unavailable)
	writeTopics(w, b.Topics())
	famBuildInfo.header(w)
	fmt.Fprintf(w, "%s{version=%q,revision=%q,go_version=%q} 1\n", famBuildInfo.name, m.build.Version, m.build.Revision, m.build.GoVersion)

	lib.Reset()
	metrics.WriteProcessMetrics(&lib)
	// Open files against the limit: connections and the queues' files
	// share it (see --max-connections), so operators watch the two.
	metrics.WriteFDMetrics(&lib)
	fillMetadata(w, lib.Bytes())
}

// writeTopics writes the per-topic and per-subscription families, as the
// per-queue ones are written: each family's samples together under its
// HELP and TYPE, families with no sample left out, and the count of
// topics that did not open always.
func writeTopics(w io.Writer, topics []queue.TopicInfo) {
	var open []queue.TopicInfo
	var subs []queue.SubscriptionInfo
	for _, t := range topics {
		if t.Err == nil {
			open = append(open, t)
			for _, si := range t.Subscriptions {
				if si.Err == nil { // one that did not open has no counts
					subs = append(subs, si)
				}
			}
		}
	}
	if len(open) > 0 {
		famTopicBytes.header(w)
		for _, t := range open {
			fmt.Fprintf(w, "%s{topic=%q} %d\n", famTopicBytes.name, t.Name, t.Bytes)
		}
		famTopicPublished.header(w)
		for _, t := range open {
			fmt.Fprintf(w, "%s{topic=%q} %d\n", famTopicPublished.name, t.Name, t.Published)
		}
	}
	if len(subs) > 0 {
		famSubMessages.header(w)
		for _, si := range subs {
			c := si.Counts
			for _, g := range []struct {
				state string
				n     int
			}{{"ready", c.Ready}, {"delayed", c.Delayed}, {"leased", c.Leased}, {"dead", c.Dead}} {
				fmt.Fprintf(w, "%s{topic=%q,subscription=%q,state=%q} %d\n", famSubMessages.name, si.Topic, si.Name, g.state, g.n)
			}
		}
		famSubLag.header(w)
		for _, si := range subs {
			fmt.Fprintf(w, "%s{topic=%q,subscription=%q} %d\n", famSubLag.name, si.Topic, si.Name, si.Lag)
		}
		famSubSkipped.header(w)
		for _, si := range subs {
			fmt.Fprintf(w, "%s{topic=%q,subscription=%q} %d\n", famSubSkipped.name, si.Topic, si.Name, si.Skipped)
		}
		for _, f := range famSubTotalCounts {
			f.header(w)
			for _, si := range subs {
				fmt.Fprintf(w, "%s{topic=%q,subscription=%q} %d\n", f.name, si.Topic, si.Name, f.value(si.Stats))
			}
		}
	}
	famTopicsDown.header(w)
	fmt.Fprintf(w, "%s %d\n", famTopicsDown.name, len(topics)-len(open))
}

// family is one metric family of /metrics: its name, Prometheus type and
// help text.
type family struct{ name, typ, help string }

// header writes f's # HELP and # TYPE lines.
func (f family) header(w io.Writer) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", f.name, f.help, f.name, f.typ)
}

// fillMetadata copies text the metrics library wrote to w, giving each
// family the help text the library leaves empty ("# HELP name"), from
// helpTexts or, for a family a newer library adds, a generic one; and
// mending the families whose library name or type promtool's lint refuses
// (runtimeFixes).
func fillMetadata(w io.Writer, text []byte) {
	for line := range strings.Lines(string(text)) {
		if rest, ok := strings.CutPrefix(line, "# HELP "); ok {
			name := strings.TrimSpace(rest)
			if fix, ok := runtimeFixes[name]; ok && fix.name != "" {
				name = fix.name
			}
			if !strings.Contains(name, " ") { // the library wrote no text
				fmt.Fprintf(w, "# HELP %s %s\n", name, helpText(name))
				continue
			}
		}
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(strings.TrimSpace(rest), " ")
			if fix, ok := runtimeFixes[name]; ok {
				fmt.Fprintf(w, "# TYPE %s %s\n", cmp.Or(fix.name, name), cmp.Or(fix.typ, typ))
				continue
			}
		}
		if !strings.HasPrefix(line, "#") {
			name := line[:strings.IndexAny(line+" ", "{ ")]
			if fix, ok := runtimeFixes[name]; ok && fix.name != "" {
				line = fix.name + line[len(name):]
			}
		}
		io.WriteString(w, line)
	}
}

// runtimeFixes renames or retypes the library's families that promtool
// check metrics refuses: counters must end in _total and only histograms
// and summaries may end in _count; the process_io_* totals only ever grow,
// so they are counters, not gauges.
var runtimeFixes = map[string]struct{ name, typ string }{
	"go_cgo_calls_count":                     {name: "go_cgo_calls_total"},
	"go_gc_forced_count":                     {name: "go_gc_forced_total"},
	"go_cpu_count":                           {name: "go_cpus"},
	"process_io_read_bytes_total":            {typ: "counter"},
	"process_io_written_bytes_total":         {typ: "counter"},
	"process_io_read_syscalls_total":         {typ: "counter"},
	"process_io_write_syscalls_total":        {typ: "counter"},
	"process_io_storage_read_bytes_total":    {typ: "counter"},
	"process_io_storage_written_bytes_total": {typ: "counter"},
}

// helpText returns the help text of a family the library writes.
func helpText(name string) string {
	if h, ok := helpTexts[name]; ok {
		return h
	}
	return "Go runtime or process metric " + name + " (github.com/VictoriaMetrics/metrics)."
}

// helpTexts holds the help texts of the families the library writes
// without one: spool's counters and histograms, and the Go runtime and
// process families of metrics.WriteProcessMetrics.
var helpTexts = map[string]string{
	famFsync.name:         famFsync.help,
	famCommitRecords.name: famCommitRecords.help,
	famFsyncs.name:        famFsyncs.help,
	famStateFsyncs.name:   famStateFsyncs.help,
	famCommitErrors.name:  famCommitErrors.help,
	famRequests.name:      famRequests.help,

	"go_info":                             "Always 1; the label says which Go toolchain built the binary.",
	"go_info_ext":                         "Always 1; the labels say the compiler, GOOS, GOARCH and GOROOT of the build.",
	"go_cgo_calls_total":                  "Calls from Go into C.",
	"go_cpus":                             "Logical CPUs the process can use.",
	"go_gomaxprocs":                       "GOMAXPROCS: CPUs running Go code at once.",
	"go_goroutines":                       "Goroutines that exist now.",
	"go_threads":                          "OS threads the Go runtime created.",
	"go_memlimit_bytes":                   "The Go runtime's soft memory limit (GOMEMLIMIT).",
	"go_gc_forced_total":                  "Garbage collections forced by the program (a big request's memory given back) or the runtime.",
	"go_gc_duration_seconds":              "Stop-the-world pause time of garbage collections.",
	"go_gc_pauses_seconds":                "Distribution of stop-the-world pause times of garbage collections.",
	"go_gc_cpu_seconds_total":             "CPU time spent in garbage collection.",
	"go_gc_mark_assist_cpu_seconds_total": "CPU time goroutines spent helping garbage collection.",
	"go_scavenge_cpu_seconds_total":       "CPU time spent returning memory to the OS.",
	"go_mutex_wait_seconds_total":         "Time goroutines spent blocked on a sync.Mutex or sync.RWMutex.",
	"go_sched_latencies_seconds":          "Distribution of the time goroutines waited to run after becoming runnable.",
	"go_memstats_alloc_bytes":             "Bytes of heap objects allocated and not yet freed.",
	"go_memstats_alloc_bytes_total":       "Bytes allocated for heap objects, freed or not.",
	"go_memstats_buck_hash_sys_bytes":     "Bytes used by the profiling bucket hash table.",
	"go_memstats_frees_total":             "Heap objects freed.",
	"go_memstats_gc_cpu_fraction":         "Fraction of CPU time used by garbage collection since the program started.",
	"go_memstats_gc_sys_bytes":            "Bytes used for garbage collection metadata.",
	"go_memstats_heap_alloc_bytes":        "Bytes of heap objects allocated and not yet freed.",
	"go_memstats_heap_idle_bytes":         "Bytes of heap spans holding no objects.",
	"go_memstats_heap_inuse_bytes":        "Bytes of heap spans holding objects.",
	"go_memstats_heap_objects":            "Heap objects allocated and not yet freed.",
	"go_memstats_heap_released_bytes":     "Bytes of heap memory returned to the OS.",
	"go_memstats_heap_sys_bytes":          "Bytes of heap memory obtained from the OS.",
	"go_memstats_last_gc_time_seconds":    "When the last garbage collection ended, in seconds since the Unix epoch.",
	"go_memstats_lookups_total":           "Pointer lookups done by the runtime.",
	"go_memstats_mallocs_total":           "Heap objects allocated.",
	"go_memstats_mcache_inuse_bytes":      "Bytes of mcache structures in use.",
	"go_memstats_mcache_sys_bytes":        "Bytes of memory obtained from the OS for mcache structures.",
	"go_memstats_mspan_inuse_bytes":       "Bytes of mspan structures in use.",
	"go_memstats_mspan_sys_bytes":         "Bytes of memory obtained from the OS for mspan structures.",
	"go_memstats_next_gc_bytes":           "Heap size at which the next garbage collection starts.",
	"go_memstats_other_sys_bytes":         "Bytes of memory obtained from the OS for other runtime allocations.",
	"go_memstats_stack_inuse_bytes":       "Bytes of goroutine stacks in use.",
	"go_memstats_stack_sys_bytes":         "Bytes of memory obtained from the OS for goroutine stacks.",
	"go_memstats_sys_bytes":               "Bytes of memory obtained from the OS in all.",

	"process_cpu_seconds_total":                     "CPU time the process used, user and system.",
	"process_cpu_seconds_user_total":                "CPU time the process used in user mode.",
	"process_cpu_seconds_system_total":              "CPU time the process used in the kernel.",
	"process_major_pagefaults_total":                "Page faults of the process that needed a disk read.",
	"process_minor_pagefaults_total":                "Page faults of the process served from memory.",
	"process_num_threads":                           "OS threads of the process.",
	"process_start_time_seconds":                    "When the process started, in seconds since the Unix epoch.",
	"process_resident_memory_bytes":                 "Resident set size of the process (RSS).",
	"process_open_fds":                              "File descriptors the process holds open: client connections and the queues' files.",
	"process_max_fds":                               "The process's open-file limit (ulimit -n), which connections and queue files share.",
	"process_resident_memory_peak_bytes":            "Highest resident set size of the process so far.",
	"process_resident_memory_anon_bytes":            "Resident anonymous memory of the process (heap, stacks).",
	"process_resident_memory_file_bytes":            "Resident file-backed memory of the process (the binary, mapped files).",
	"process_resident_memory_shared_bytes":          "Resident shared memory of the process.",
	"process_virtual_memory_bytes":                  "Virtual memory size of the process.",
	"process_virtual_memory_peak_bytes":             "Highest virtual memory size of the process so far.",
	"process_io_read_bytes_total":                   "Bytes the process read, from disk or cache.",
	"process_io_written_bytes_total":                "Bytes the process wrote, to disk or cache.",
	"process_io_read_syscalls_total":                "Read system calls of the process.",
	"process_io_write_syscalls_total":               "Write system calls of the process.",
	"process_io_storage_read_bytes_total":           "Bytes the process caused to be read from storage.",
	"process_io_storage_written_bytes_total":        "Bytes the process caused to be written to storage.",
	"process_pressure_cpu_waiting_seconds_total":    "Time the process's tasks waited for a CPU (pressure stall information).",
	"process_pressure_cpu_stalled_seconds_total":    "Time all of the process's tasks were stalled waiting for a CPU.",
	"process_pressure_io_waiting_seconds_total":     "Time the process's tasks waited for I/O (pressure stall information).",
	"process_pressure_io_stalled_seconds_total":     "Time all of the process's tasks were stalled waiting for I/O.",
	"process_pressure_memory_waiting_seconds_total": "Time the process's tasks waited for memory (pressure stall information).",
	"process_pressure_memory_stalled_seconds_total": "Time all of the process's tasks were stalled waiting for memory.",
}
