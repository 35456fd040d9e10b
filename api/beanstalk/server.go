package beanstalk

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolq/spool/queue"
)

// Options configure a Server. Zero fields get the defaults noted.
type Options struct {
	// MaxJobBytes is the largest job body put takes (default
	// DefaultMaxJobBytes); spool serve passes --max-message-bytes.
	MaxJobBytes int
	// MaxConnections caps the connections open at once (default
	// DefaultMaxConnections). One over it is answered OUT_OF_MEMORY and
	// closed, and the refusal logged.
	MaxConnections int
	// Version is what stats reports as the server's version.
	Version string
	// Logger gets the server's warnings; nil means slog.Default().
	Logger *slog.Logger
}

// DefaultMaxConnections is Options.MaxConnections's default.
const DefaultMaxConnections = 1024

// writeTimeout bounds one reply's write: a client that stops reading
// loses its connection instead of holding a goroutine and its buffers.
const writeTimeout = 30 * time.Second

// Server serves beanstalkd's protocol over the queues of a Broker: each
// tube is a queue (QueueName), made on first use; a job is a message. See
// the package doc for what maps to what. Its methods are safe for
// concurrent use.
type Server struct {
	b       *queue.Broker
	opts    Options
	log     *slog.Logger
	started time.Time
	id      string // stats' id: random, per server
	tubes   tubes

	mu        sync.Mutex
	listeners map[net.Listener]bool
	conns     map[*conn]bool
	closed    bool
	wg        sync.WaitGroup // every connection's goroutine

	cmds                            [PauseTube + 1]atomic.Uint64 // cmd-* by Verb
	connections, totalConnections   atomic.Int64
	producers, workers, waitingConn atomic.Int64
}

// NewServer returns a Server over b's queues.
func NewServer(b *queue.Broker, o Options) *Server {
	if o.MaxJobBytes <= 0 {
		o.MaxJobBytes = DefaultMaxJobBytes
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = DefaultMaxConnections
	}
	lg := o.Logger
	if lg == nil {
		lg = slog.Default()
	}
	id := make([]byte, 8)
	rand.Read(id)
	return &Server{
		b: b, opts: o, log: lg, started: time.Now(), id: hex.EncodeToString(id),
		tubes:     tubes{b: b, m: map[string]*tube{}},
		listeners: map[net.Listener]bool{}, conns: map[*conn]bool{},
	}
}

// ErrServerClosed is Serve's error after Close.
var ErrServerClosed = errors.New("beanstalk: server closed")

// Serve accepts connections on l and serves each in its own goroutine,
// until Close (ErrServerClosed) or an accept error that is not temporary.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Out of file descriptors and the like: wait, as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("beanstalk: accept failed; retrying", "err", err, "in", backoff)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("beanstalk: accept: %w", err)
		}
		backoff = 0
		s.start(nc)
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// start serves nc, or refuses it over the connection cap.
func (s *Server) start(nc net.Conn) {
	s.mu.Lock()
	if s.closed || len(s.conns) >= s.opts.MaxConnections {
		closed := s.closed
		s.mu.Unlock()
		if !closed {
			s.log.Warn("beanstalk: connection refused: at the connection cap", "remote", nc.RemoteAddr().String(), "max_connections", s.opts.MaxConnections)
			nc.SetWriteDeadline(time.Now().Add(time.Second))
			nc.Write(AppendError(nil, ErrOutOfMemory))
		}
		nc.Close()
		return
	}
	c := newConn(s, nc)
	s.conns[c] = true
	s.wg.Add(1)
	s.mu.Unlock()
	s.connections.Add(1)
	s.totalConnections.Add(1)
	go func() {
		defer s.wg.Done()
		c.serve()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.connections.Add(-1)
	}()
}

// Close stops accepting, closes every connection (their reserved jobs
// return to ready, as when a client hangs up) and waits for their
// goroutines. The queues are the caller's to close, after.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var errs []error
	for l := range s.listeners {
		if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return errors.Join(errs...)
}

// count counts one command in its cmd-* stat.
func (s *Server) count(v Verb) {
	if int(v) < len(s.cmds) {
		s.cmds[v].Add(1)
	}
}

// stats is the stats reply's content.
func (s *Server) stats() ServerStats {
	st := ServerStats{
		CmdPut: s.cmds[Put].Load(), CmdPeek: s.cmds[Peek].Load(), CmdPeekReady: s.cmds[PeekReady].Load(),
		CmdPeekDelayed: s.cmds[PeekDelayed].Load(), CmdPeekBuried: s.cmds[PeekBuried].Load(),
		CmdReserve: s.cmds[Reserve].Load(), CmdReserveWithTimeout: s.cmds[ReserveWithTimeout].Load(),
		CmdDelete: s.cmds[Delete].Load(), CmdRelease: s.cmds[Release].Load(), CmdUse: s.cmds[Use].Load(),
		CmdWatch: s.cmds[Watch].Load(), CmdIgnore: s.cmds[Ignore].Load(), CmdBury: s.cmds[Bury].Load(),
		CmdKick: s.cmds[Kick].Load(), CmdTouch: s.cmds[Touch].Load(), CmdStats: s.cmds[Stats].Load(),
		CmdStatsJob: s.cmds[StatsJob].Load(), CmdStatsTube: s.cmds[StatsTube].Load(),
		CmdListTubes: s.cmds[ListTubes].Load(), CmdListTubeUsed: s.cmds[ListTubeUsed].Load(),
		CmdListTubesWatched: s.cmds[ListTubesWatched].Load(), CmdPauseTube: s.cmds[PauseTube].Load(),
		MaxJobSize:         uint64(s.opts.MaxJobBytes),
		CurrentConnections: uint64(s.connections.Load()),
		CurrentProducers:   uint64(s.producers.Load()),
		CurrentWorkers:     uint64(s.workers.Load()),
		CurrentWaiting:     uint64(s.waitingConn.Load()),
		TotalConnections:   uint64(s.totalConnections.Load()),
		PID:                int64(os.Getpid()),
		Version:            s.opts.Version,
		Uptime:             uint64(time.Since(s.started) / time.Second),
		ID:                 s.id,
		OS:                 runtime.GOOS,
		Platform:           runtime.GOARCH,
	}
	st.RusageUtime, st.RusageStime = rusage()
	st.Hostname, _ = os.Hostname()
	for _, info := range s.b.List() {
		if info.Err != nil {
			continue
		}
		st.CurrentTubes++
		st.CurrentJobsReady += uint64(info.Counts.Ready)
		st.CurrentJobsReserved += uint64(info.Counts.Leased)
		st.CurrentJobsDelayed += uint64(info.Counts.Delayed)
		st.CurrentJobsBuried += uint64(info.Counts.Dead)
		st.TotalJobs += info.Stats.Enqueued
		st.JobTimeouts += info.Stats.Expired
		if q, err := s.b.Queue(info.Name); err == nil {
			if n, err := q.ReadyBelow(urgent); err == nil {
				st.CurrentJobsUrgent += uint64(n)
			}
		}
	}
	return st
}

// tubeNames lists every queue as a tube, in the order they were made
// (their serials), as beanstalkd lists tubes.
func (s *Server) tubeNames() []string {
	type numbered struct {
		serial uint32
		name   string
	}
	var tubes []numbered
	for _, info := range s.b.List() {
		if info.Err != nil {
			continue
		}
		serial := info.Serial
		if serial == 0 { // a queue from before serials: number it now
			q, err := s.b.Queue(info.Name)
			if err != nil {
				continue // deleted since
			}
			if serial, err = q.Serial(); err != nil {
				continue
			}
		}
		tubes = append(tubes, numbered{serial, tubeName(info.Name, info.Label)})
	}
	slices.SortFunc(tubes, func(a, b numbered) int { return cmp.Compare(a.serial, b.serial) })
	names := make([]string, len(tubes))
	for i, t := range tubes {
		names[i] = t.name
	}
	return names
}

// urgent is the priority below which a ready job counts as urgent.
const urgent = 1024
