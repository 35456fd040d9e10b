// Package bench is the load generator behind `spool bench`: it loads a
// spool server over its HTTP API (or its beanstalkd-protocol listener;
// or, for comparison, beanstalkd itself or a redis server) with one
// scenario for a fixed time and reports throughput, latency quantiles,
// fsyncs, memory and CPU, beside baselines measured in the same run.
//
// It owns: the scenarios and their workers, the HTTP client they share,
// the latency histogram (Histogram), the in-process server it starts when
// no address is given, the baselines, and the Report with its text and
// JSON forms. main wires flags to Config and prints the Report; the bench
// has no logic in main. Request paths come from package api's route
// names, so the bench follows a renamed route.
//
// Layout: bench.go holds the exported API (scenario names, Config, Report,
// Baselines, Run); run.go the measured run (prefill, warm-up, window,
// counters, progress lines); baseline.go the fsync probe and the trivial
// HTTP baseline, trivial_line.go the line protocols' one; workers.go the
// HTTP client, phases and the worker loop; scenarios.go each scenario's
// operations; target.go the server under test; beanstalk.go the
// beanstalkd scenarios and the line connection they share with redis.go's
// RESP; report.go, hist.go and cpu.go the report's forms, the histogram
// and the client/server CPU split.
//
// # Target
//
// With Config.Addr empty, Run starts a server in this process: a Broker
// over a fresh temporary data directory under Config.Dir (os.TempDir() by
// default; removed at the end) with Config.Sync, served on 127.0.0.1:0 by
// api.Service (the server spool serve runs, with its timeouts, connection
// cap and shutdown), the queue created in it. With Addr, it loads that
// server: the queue is created if missing (and deleted at the end) or
// purged before and after the run if it exists, so never point
// Config.Queue at a queue in use. Sync then is the server's own --sync;
// give Config.PID (a server on this host) for its RSS and CPU.
//
// The beanstalk-* scenarios speak beanstalkd's protocol to Config.Addr
// (host:port: beanstalkd, or spool serve --beanstalk-addr); with no Addr,
// to the in-process server, which then also listens for that protocol on
// 127.0.0.1:0 (the listener spool serve --beanstalk-addr runs), the tube
// made by a use command as a client's is. The tube is Config.Queue. A
// remote server's tube is not emptied before or after (the protocol has
// no purge, only job-by-job deletes, each an fsync on beanstalkd): give
// the bench a scratch server. redis-lpush needs Addr (the bench starts
// no redis) and deletes the list Config.Queue there before and after the
// run. These protocols have no token (Config.Token is an error) and no
// fsync counter the bench can read.
//
// # Scenarios
//
// Each runs Config.Concurrency workers, each with one request in flight,
// for Config.Duration (the measured window), after an unmeasured warm-up
// of the same scenario (Config.Warmup). A worker starts no operation after
// the deadline; the window ends at the last counted completion, and the
// rates are counts over that window. Failed operations are counted
// (Report.Errors, the first one kept), not timed; 50 in a row abort the
// run.
//
//   - enqueue: POST /v1/queues/Q/messages with a Size-byte body. One
//     latency sample per request; Messages counts 201 replies.
//   - enqueue-batch: POST /v1/queues/Q/batch of Batch Size-byte messages
//     (JSON text bodies). One sample per request; Messages counts the
//     messages of 201 replies.
//   - receive-ack: POST /receive?max=1, then POST /ack of its receipt. One
//     sample per pair, from the receive's start to the ack's reply;
//     Messages counts acked messages. The queue is prefilled first.
//   - receive-ack-batch: the same with max=Batch and one ack call for all
//     the receipts.
//   - mixed: half the workers produce (enqueue like "enqueue", the body
//     starting with the send time), half consume (receive up to 10 with a
//     100 ms long poll, then ack them). One sample per received message:
//     the end-to-end latency from the start of its enqueue request to its
//     receive's reply; Messages counts them, Enqueued the producers'. The
//     queue is purged after the warm-up. Bodies are at least 21 bytes (the
//     send time).
//   - beanstalk-put: each worker its own connection, which says "use
//     TUBE" once, then "put 1024 0 60 Size" with a Size-byte body and
//     waits for INSERTED. One sample per put; Messages counts INSERTED.
//   - beanstalk-reserve-delete: each worker its own connection, watching
//     the tube only; "reserve-with-timeout 1", then "delete" of the job.
//     One sample per pair, from the reserve's send to DELETED; Messages
//     counts DELETED, Requests both commands. The tube is prefilled;
//     TIMED_OUT means it ran dry.
//   - redis-lpush: each worker its own connection, sending the RESP
//     command LPUSH Queue <Size-byte value> and waiting for its integer
//     reply. One sample per LPUSH; Messages counts them.
//
// In the last three a connection is dialled, and readied (use, watch),
// outside the timing and the request count, and kept from the warm-up to
// the window, as the HTTP client keeps its connections; any reply other
// than the one the scenario wants (JOB_TOO_BIG, DRAINING, a redis "-ERR")
// is a failed operation, counted in Report.Errors, and the connection is
// dropped and dialled again. A deadline on the connection bounds a wait
// as an HTTP request's is bounded.
//
// The receive-ack scenarios and beanstalk-reserve-delete need messages to
// receive. Before the warm-up the queue is filled directly (in-process:
// Queue.Enqueue in batches of 1000; remote: POST /batch, or for a
// beanstalkd-protocol server, from Concurrency connections each sending
// 100 puts in one write; spool answers a connection's puts in turn, each
// after its group commit, so it needs the many connections), outside any
// timing; the warm-up consumes
// from it and gives a rate estimate, and the queue is topped up to 1.5 ×
// that rate × Duration (at most 4M messages and 512 MiB of bodies). If the
// queue still runs dry, the window ends there (Report.RanDry) and the
// rate is over the shorter window.
//
// # Measurements
//
// Latency: a Histogram of fixed log buckets (exact below 128 ns, then 64
// buckets per power of two: quantiles within 0.8%, 18 KiB whatever the
// sample count). p50/p99/p99.9 are the samples of rank ceil(q·n).
//
// Fsyncs: in-process, the fsyncs of the message logs (enqueues) and state
// logs (acks), counted through queue.Options.OnCommit and OnStateSync;
// remote, spool_fsyncs_total of GET /metrics before and after (every
// queue on that server, both logs); not measured over the beanstalkd and
// redis protocols. Messages per fsync is the messages
// enqueued in the window (acked, for the receive-ack scenarios) over
// those fsyncs. In-process, the disk's own flush counter
// (/sys/block/DEV/stat) is reported beside them for
// every scenario: it counts every fsync on that disk, by any process,
// and the journal's flushes too.
//
// Memory: in-process, VmRSS of /proc/self/status (the bench client is in
// that figure too; runtime/metrics /memory/classes/total:bytes off Linux);
// remote, VmRSS of /proc/PID/status. Sampled every 250 ms in the window:
// the value at its end and the peak.
//
// CPU: the bench process's getrusage over the window, in cores. In-process
// the client/server split comes from a CPU profile of the window whose
// goroutines are labelled client or server with pprof labels (inherited by
// the goroutines they start: the transport's and http.Server's
// connection goroutines, the broker's committers); unlabelled samples are
// the Go runtime's (background GC). When a profile is already running
// (go test -cpuprofile) the split is Unknown. Remote, with PID, the split
// is the bench's getrusage against the server's /proc/PID/stat.
//
// # Baselines
//
// With Config.Baselines, in the same run:
//   - raw fsync: 100-byte pwrite at the end of a new file, then fsync
//     (os.File.Sync, the call spool's logs make), in a loop for a fifth of
//     Duration within [100 ms, 1 s], in the data directory (remote: Dir).
//     Ratios: msgs/s over raw fsync/s (how far past one fsync per message
//     group commit got) and the server's fsyncs/s over raw fsync/s.
//   - trivial HTTP: a net/http handler on 127.0.0.1:0 that reads the body
//     and writes "ok", loaded by the same client code with the same
//     settings and concurrency, with the scenario's main request (enqueue
//     and mixed: the message body; enqueue-batch: the batch; the
//     receive-ack scenarios: an empty POST), for min(Duration, 3 s),
//     once before the window and once after it. The baseline is the mean
//     of the two, so a machine whose speed drifts during the run (these
//     are shared VMs) biases the ratio less; a note says when they differ
//     by more than 15%. Ratio: the scenario's requests/s over the
//     baseline. Its rate is also a floor on what the client can drive:
//     when it is far above the scenario's, the client was not the
//     bottleneck.
//   - trivial line server (the beanstalkd and redis scenarios, whose
//     comparison is otherwise a run of the same scenario against
//     beanstalkd or redis on the same machine): a responder on
//     127.0.0.1:0 that reads each of the scenario's commands and writes
//     the fixed reply of a success (INSERTED 1; RESERVED 1 with the run's
//     body; DELETED; ":1" for LPUSH), loaded by the scenario's own workers
//     the same way and for as long as the HTTP one. No server of the
//     protocol can answer this client faster on this machine: the ratio
//     says how much of that ceiling the server's queue work, fsyncs and
//     scheduling leave.
//
// # Client
//
// One http.Client per run shared by all workers: keep-alive with an idle
// pool of 2 × concurrency + 8 connections per host (no worker dials after
// its first request), no proxy, no compression, 64 KiB socket buffers.
// Fixed bodies are built once per run; each worker reads replies into a
// buffer it reuses. Receive replies are decoded with encoding/json into a
// reused struct. The beanstalkd and redis scenarios use no library: one
// TCP connection per worker with 64 KiB bufio buffers, the command built
// once per run, reply lines read in place.
//
// # Caveats
//
// In-process, client and server share the process and its CPUs: on a
// 2-core machine the client's share (typically a third of the CPU for
// single-message scenarios) is taken from the server, so in-process
// figures understate a dedicated server. Loopback TCP's kernel work is
// charged to whichever side sends. Everything else running on the machine
// (and, for disk flushes, on the disk) shows up in the figures; compare
// ratios within one run rather than absolute numbers across runs. A
// temporary directory on tmpfs makes fsync free: Run notes it; put Dir on
// the disk being measured.
package bench
