package beanstalk

import (
	"bufio"
	"cmp"
	"errors"
	"net"
	"slices"
	"time"

	"github.com/spoolq/spool/queue"
)

// conn is one client connection: its used tube, its watch list and the
// jobs it has reserved. Only its own goroutine touches it.
type conn struct {
	s   *Server
	nc  net.Conn
	r   *Reader
	w   *bufio.Writer
	out []byte // the reply being built, reused

	used     *tube
	watched  []*tube
	reserved map[uint64]reservation // by job id
	producer bool                   // has put: counted in current-producers
	worker   bool                   // has reserved: current-workers

	wake chan struct{} // a watched queue has a ready message (NotifyReady)
}

// reservation is a job this connection reserved: only it may delete,
// release, bury or touch it (others get NOT_FOUND), and closing the
// connection returns it to ready at once.
type reservation struct {
	t        *tube
	receipt  queue.Receipt
	ttr      time.Duration
	deadline time.Time
}

// deadlineSoon is beanstalkd's safety margin: a reserve while a job of
// the connection's has less than this left of its TTR answers
// DEADLINE_SOON instead of waiting.
const deadlineSoon = time.Second

// writeBufferBytes is a connection's write buffer; maxKeptReply the
// reply buffer it keeps between commands (a FOUND of a big job grows it
// once, then it goes).
const (
	writeBufferBytes = 4 << 10
	maxKeptReply     = 16 << 10
)

func newConn(s *Server, nc net.Conn) *conn {
	return &conn{
		s: s, nc: nc,
		r:        NewReader(nc, s.opts.MaxJobBytes),
		w:        bufio.NewWriterSize(nc, writeBufferBytes),
		reserved: map[uint64]reservation{},
		wake:     make(chan struct{}, 1),
	}
}

// serve reads and answers commands until the client quits or goes away,
// then gives back what the connection held.
func (c *conn) serve() {
	defer c.nc.Close()
	defer c.release()
	def, err := c.tube("default", true)
	if err != nil {
		c.s.log.Error("beanstalk: cannot make the default tube", "err", err)
		return
	}
	c.use(def)
	c.watch(def)
	for {
		cmd, err := c.r.Next()
		if err != nil && !isProtocolError(err) {
			return // EOF, a cut inside a command, a read error
		}
		c.s.count(cmd.Verb)
		if cmd.Verb == Put && !c.producer {
			// beanstalkd counts a producer at its first put, even one
			// that fails.
			c.producer = true
			c.s.producers.Add(1)
		}
		c.out = c.out[:0]
		if err != nil {
			c.out = AppendError(c.out, err)
		} else {
			c.out = c.do(cmd)
		}
		if cmd.Verb == Quit && err == nil {
			return
		}
		if len(c.out) == 0 {
			return // the connection ended inside the command (a waiting reserve)
		}
		c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := c.w.Write(c.out); err != nil {
			return
		}
		if c.r.br.Buffered() == 0 { // flush unless more commands are already here
			if err := c.w.Flush(); err != nil {
				return
			}
		}
		if cap(c.out) > maxKeptReply {
			c.out = nil // a big job's reply: not kept for the connection's life
		}
	}
}

// isProtocolError says whether err, from Reader.Next, is a malformed
// command that gets its error word, after which the connection goes on.
func isProtocolError(err error) bool {
	for _, s := range []error{ErrBadFormat, ErrUnknownCommand, ErrExpectedCRLF, ErrJobTooBig} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// do runs one well-formed command and returns its reply, appended to
// c.out (empty: end the connection without one).
func (c *conn) do(cmd Command) []byte {
	switch cmd.Verb {
	case Put:
		return c.put(cmd)
	case Use:
		t, err := c.tube(cmd.Tube, true)
		if err != nil {
			return c.fail(err)
		}
		c.use(t)
		return AppendUsing(c.out, t.name)
	case Watch:
		t, err := c.tube(cmd.Tube, true)
		if err != nil {
			return c.fail(err)
		}
		c.watch(t)
		return AppendWatching(c.out, len(c.watched))
	case Ignore:
		return c.ignore(cmd.Tube)
	case Reserve:
		return c.reserve(0, false)
	case ReserveWithTimeout:
		return c.reserve(time.Duration(cmd.Timeout)*time.Second, true)
	case ReserveJob:
		return c.reserveJob(cmd.ID)
	case Delete:
		return c.delete(cmd.ID)
	case Release:
		return c.withReservation(cmd.ID, Released, func(r reservation) ([]error, error) {
			return r.t.q.Nack([]queue.Receipt{r.receipt}, queue.NackOptions{
				InPlace: true, Priority: &cmd.Pri, Delay: time.Duration(cmd.Delay) * time.Second,
			})
		})
	case Bury:
		return c.withReservation(cmd.ID, Buried, func(r reservation) ([]error, error) {
			return r.t.q.FailWithPriority([]queue.Receipt{r.receipt}, cmd.Pri)
		})
	case Touch:
		return c.touch(cmd.ID)
	case Peek:
		return c.peek(cmd.ID)
	case PeekReady:
		m, err := c.used.q.PeekReady()
		return c.found(c.used.serial, m, err)
	case PeekDelayed:
		m, err := c.used.q.PeekDelayed()
		return c.found(c.used.serial, m, err)
	case PeekBuried:
		dead, err := c.used.q.Dead(0, 1)
		if err == nil && len(dead) == 0 {
			err = ErrNotFound
		}
		if err != nil {
			return c.fail(err)
		}
		return c.found(c.used.serial, dead[0], nil)
	case Kick:
		return c.kick(cmd.Bound)
	case KickJob:
		q, id, err := c.job(cmd.ID)
		if err == nil {
			err = q.Kick(id)
		}
		if err != nil {
			return c.fail(err)
		}
		return AppendWord(c.out, Kicked)
	case StatsJob:
		return c.statsJob(cmd.ID)
	case StatsTube:
		return c.statsTube(cmd.Tube)
	case Stats:
		return AppendServerStats(c.out, c.s.stats())
	case ListTubes:
		return AppendTubeList(c.out, c.s.tubeNames())
	case ListTubeUsed:
		return AppendUsing(c.out, c.used.name)
	case ListTubesWatched:
		names := make([]string, len(c.watched))
		for i, t := range c.watched {
			names[i] = t.name
		}
		return AppendTubeList(c.out, names)
	case PauseTube:
		return c.pause(cmd.Tube, cmd.Delay)
	case Quit:
		return c.out
	}
	return AppendError(c.out, ErrUnknownCommand)
}

// fail is the reply for err: its protocol word, NOT_FOUND for a job or
// tube the queues do not have, DRAINING while the server shuts down,
// INTERNAL_ERROR (logged) for anything else.
func (c *conn) fail(err error) []byte {
	switch {
	case errors.Is(err, queue.ErrNotFound), errors.Is(err, queue.ErrLeased),
		errors.Is(err, queue.ErrStaleReceipt), errors.Is(err, queue.ErrQueueNotFound):
		err = ErrNotFound
	case errors.Is(err, queue.ErrClosed):
		err = ErrDraining
	case errors.Is(err, queue.ErrQueueFull):
		err = ErrOutOfMemory
	case !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrBadFormat) && !errors.Is(err, ErrTimedOut) &&
		!errors.Is(err, ErrDeadlineSoon) && !errors.Is(err, ErrNotIgnored):
		c.s.log.Warn("beanstalk: command failed", "remote", c.nc.RemoteAddr().String(), "err", err)
	}
	return AppendError(c.out, err)
}

// tube returns the named tube (see tubes.getLocked).
func (c *conn) tube(name string, create bool) (*tube, error) {
	c.s.tubes.mu.Lock()
	defer c.s.tubes.mu.Unlock()
	return c.s.tubes.getLocked(name, create)
}

func (c *conn) use(t *tube) {
	ts := &c.s.tubes
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if c.used != nil {
		c.used.using--
	}
	c.used = t
	t.using++
}

func (c *conn) watch(t *tube) {
	if slices.Contains(c.watched, t) {
		return
	}
	ts := &c.s.tubes
	ts.mu.Lock()
	t.watching++
	ts.mu.Unlock()
	c.watched = append(c.watched, t)
}

func (c *conn) ignore(name string) []byte {
	i := slices.IndexFunc(c.watched, func(t *tube) bool { return t.name == name })
	switch {
	case i < 0:
		return AppendWatching(c.out, len(c.watched))
	case len(c.watched) == 1:
		return AppendError(c.out, ErrNotIgnored)
	}
	ts := &c.s.tubes
	ts.mu.Lock()
	c.watched[i].watching--
	ts.mu.Unlock()
	// beanstalkd's watch list fills the hole with its last tube, and
	// list-tubes-watched shows that order.
	last := len(c.watched) - 1
	c.watched[i] = c.watched[last]
	c.watched = c.watched[:last]
	return AppendWatching(c.out, len(c.watched))
}

// release gives back what the connection held when it ends: its reserved
// jobs go back to ready at once, in their places (beanstalkd's), and its
// tubes lose a user and watcher.
func (c *conn) release() {
	for _, r := range c.reserved {
		if _, err := r.t.q.NackSoon([]queue.Receipt{r.receipt}, queue.NackOptions{InPlace: true}); err != nil && !errors.Is(err, queue.ErrClosed) {
			c.s.log.Warn("beanstalk: a reserved job of a closed connection could not be released; it is released when its TTR runs out", "err", err)
		}
	}
	ts := &c.s.tubes
	ts.mu.Lock()
	if c.used != nil {
		c.used.using--
	}
	for _, t := range c.watched {
		t.watching--
	}
	ts.mu.Unlock()
	if c.producer {
		c.s.producers.Add(-1)
	}
	if c.worker {
		c.s.workers.Add(-1)
	}
}

// put enqueues a job on the used tube. Its INSERTED is sent once the job
// is durable (under --sync=always, a group commit shared with every
// other connection's puts).
func (c *conn) put(cmd Command) []byte {
	delay := time.Duration(cmd.Delay) * time.Second
	ttr := time.Duration(max(cmd.TTR, 1)) * time.Second // beanstalkd raises 0 to 1
	if delay > queue.MaxDelay || ttr > queue.MaxVisibility {
		// beanstalkd takes any 32-bit delay and TTR; spool's queues bound them.
		return AppendError(c.out, ErrBadFormat)
	}
	msg := queue.NewMessage{Body: cmd.Body, Priority: &cmd.Pri, Delay: &delay, VisibilityTimeout: ttr}
	t := c.used
	ids, err := t.q.Enqueue([]queue.NewMessage{msg})
	if errors.Is(err, queue.ErrQueueNotFound) && c.renew(t) == nil {
		ids, err = t.q.Enqueue([]queue.NewMessage{msg})
	}
	if err != nil {
		return c.fail(err)
	}
	id, ok := jobID(t.serial, ids[0])
	if !ok {
		// Past the ids a job id holds: never reachable in practice (2^40
		// puts), and then the job must not exist unnamed.
		t.q.Remove(ids)
		return AppendError(c.out, ErrInternalError)
	}
	return AppendInserted(c.out, id)
}

// renew makes t's queue again after someone deleted it.
func (c *conn) renew(t *tube) error {
	c.s.tubes.mu.Lock()
	defer c.s.tubes.mu.Unlock()
	return c.s.tubes.renewLocked(t)
}

// job resolves a job id to its queue and message id.
func (c *conn) job(job uint64) (*queue.Queue, uint64, error) {
	serial, id := splitJobID(job)
	if id == 0 || serial == 0 {
		return nil, 0, ErrNotFound
	}
	q, err := c.s.tubes.bySerial(serial)
	return q, id, err
}

// reserve waits for a job on the watched tubes (for at most timeout if
// timed), reserves it for its TTR and replies RESERVED.
func (c *conn) reserve(timeout time.Duration, timed bool) []byte {
	if !c.worker {
		c.worker = true
		c.s.workers.Add(1)
	}
	var deadline time.Time
	if timed {
		deadline = time.Now().Add(timeout)
	}
	waiting := false
	defer func() {
		if waiting {
			c.setWaiting(false)
		}
	}()
	for {
		m, t, err := c.takeReady()
		if err != nil {
			return c.fail(err)
		}
		if t != nil {
			return c.reserved1(t, m)
		}
		now := time.Now()
		soon, hasSoon := c.soonestDeadline()
		if hasSoon && soon.Sub(now) < deadlineSoon {
			return AppendError(c.out, ErrDeadlineSoon)
		}
		if timed && !now.Before(deadline) {
			return AppendError(c.out, ErrTimedOut)
		}
		if !waiting {
			waiting = true
			c.setWaiting(true)
		}
		// Wake for a ready message, the timeout, a reservation coming
		// within the safety margin, a pause ending, or the client leaving.
		wakeAt := deadline
		if hasSoon {
			wakeAt = earliest(wakeAt, soon.Add(-deadlineSoon))
		}
		for _, t := range c.watched {
			if paused, until := c.paused(t, now); paused {
				wakeAt = earliest(wakeAt, until)
			}
		}
		if gone := c.wait(wakeAt); gone {
			return c.out[:0]
		}
	}
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

func (c *conn) setWaiting(on bool) {
	d := 1
	if !on {
		d = -1
	}
	c.s.waitingConn.Add(int64(d))
	ts := &c.s.tubes
	ts.mu.Lock()
	for _, t := range c.watched {
		t.waiting += d
	}
	ts.mu.Unlock()
}

func (c *conn) paused(t *tube, now time.Time) (bool, time.Time) {
	ts := &c.s.tubes
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return t.paused(now)
}

// soonestDeadline is the earliest TTR end of the connection's jobs. It
// forgets reservations whose TTR has run out: the queue has taken them
// back.
func (c *conn) soonestDeadline() (time.Time, bool) {
	var soon time.Time
	now := time.Now()
	for id, r := range c.reserved {
		if !now.Before(r.deadline) {
			delete(c.reserved, id)
			continue
		}
		soon = earliest(soon, r.deadline)
	}
	return soon, !soon.IsZero()
}

// takeReady reserves the job that goes first on the watched tubes that
// are not paused: the lowest (priority, job id), as beanstalkd picks. It
// returns a nil tube when none is ready.
func (c *conn) takeReady() (queue.Message, *tube, error) {
	now := time.Now()
	for {
		var best *tube
		var bestID uint64
		var bestPri uint32
		for _, t := range c.watched {
			if paused, _ := c.paused(t, now); paused {
				continue
			}
			id, pri, ok, err := t.q.NextReady()
			if errors.Is(err, queue.ErrQueueNotFound) {
				continue // deleted under us: nothing ready there
			}
			if err != nil {
				return queue.Message{}, nil, err
			}
			if !ok {
				continue
			}
			job, _ := jobID(t.serial, id)
			if best == nil || pri < bestPri || (pri == bestPri && job < bestID) {
				best, bestID, bestPri = t, job, pri
			}
		}
		if best == nil {
			return queue.Message{}, nil, nil
		}
		_, id := splitJobID(bestID)
		m, err := best.q.LeaseReady(id, 0)
		switch {
		case err == nil:
			return m, best, nil
		case errors.Is(err, queue.ErrLeased), errors.Is(err, queue.ErrNotFound):
			continue // another connection took it first: look again
		}
		return queue.Message{}, nil, err
	}
}

// reserved1 records m, just leased from t, as this connection's and
// replies RESERVED.
func (c *conn) reserved1(t *tube, m queue.Message) []byte {
	job, _ := jobID(t.serial, m.ID)
	c.reserved[job] = reservation{t: t, receipt: m.Receipt, ttr: ttrOf(t.q, m), deadline: m.LeaseEnds}
	return AppendReserved(c.out, job, m.Body)
}

// wait blocks until a watched queue has a ready message, until (if not
// zero), or the client closes the connection; gone says the last.
//
// The client is watched by a read of one byte into the Reader's buffer,
// which consumes nothing: bytes that arrive (a pipelined command) end the
// watch and stay for the next Next; an end of input ends the connection.
// The read is cut short by a read deadline before the command loop reads
// again.
func (c *conn) wait(until time.Time) (gone bool) {
	var stops []func() bool
	for _, t := range c.watched {
		stop, err := t.q.NotifyReady(func() {
			select {
			case c.wake <- struct{}{}:
			default:
			}
		})
		if err == nil {
			stops = append(stops, stop)
		}
	}
	defer func() {
		for _, stop := range stops {
			stop()
		}
	}()
	var timer <-chan time.Time
	if !until.IsZero() {
		t := time.NewTimer(time.Until(until))
		defer t.Stop()
		timer = t.C
	}
	peeked := make(chan error, 1)
	watching := c.r.br.Buffered() == 0 // else a command is waiting already: nothing to watch
	if watching {
		go func() {
			_, err := c.r.br.Peek(1)
			peeked <- err
		}()
	} else {
		peeked = nil
	}
	stopWatching := func() {
		if watching {
			c.nc.SetReadDeadline(time.Now())
			<-peeked
			c.nc.SetReadDeadline(time.Time{})
		}
	}
	for {
		select {
		case <-c.wake:
			stopWatching()
			return false
		case <-timer:
			stopWatching()
			return false
		case err := <-peeked:
			watching = false
			if err != nil && !isTimeout(err) {
				return true // EOF or a broken connection
			}
			peeked = nil // bytes are here; go on waiting for a job
		}
	}
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// withReservation runs op on job id if this connection reserved it and
// replies word, or NOT_FOUND; the job is this connection's no longer.
func (c *conn) withReservation(job uint64, word Word, op func(reservation) ([]error, error)) []byte {
	r, ok := c.reserved[job]
	if !ok {
		return AppendError(c.out, ErrNotFound)
	}
	delete(c.reserved, job)
	if err := firstError(op(r)); err != nil {
		return c.fail(err)
	}
	return AppendWord(c.out, word)
}

func firstError(errs []error, err error) error {
	if err != nil {
		return err
	}
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// delete deletes a job this connection reserved (an ack), or one that
// nobody has reserved (ready, delayed or buried). Its DELETED is sent
// once that is durable.
func (c *conn) delete(job uint64) []byte {
	if r, ok := c.reserved[job]; ok {
		c.countDeleteIn(r.t.q)
		return c.withReservation(job, Deleted, func(r reservation) ([]error, error) {
			return r.t.q.Ack([]queue.Receipt{r.receipt})
		})
	}
	q, id, err := c.job(job)
	if err == nil {
		c.countDeleteIn(q)
		err = firstError(q.Remove([]uint64{id}))
	}
	if err != nil {
		return c.fail(err)
	}
	return AppendWord(c.out, Deleted)
}

// countDeleteIn counts a delete in q's tube, if a connection named it.
func (c *conn) countDeleteIn(q *queue.Queue) {
	ts := &c.s.tubes
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if t := ts.m[tubeName(q.Name(), q.Label())]; t != nil {
		t.cmdDelete++
	}
}

// ttrOf is m's TTR: its own lease length, else its queue's.
func ttrOf(q *queue.Queue, m queue.Message) time.Duration {
	return cmp.Or(m.VisibilityTimeout, q.Config().VisibilityTimeout)
}

// touch gives a job this connection reserved its whole TTR again.
func (c *conn) touch(job uint64) []byte {
	r, ok := c.reserved[job]
	if !ok {
		return AppendError(c.out, ErrNotFound)
	}
	if err := firstError(r.t.q.Extend([]queue.Receipt{r.receipt}, r.ttr)); err != nil {
		delete(c.reserved, job)
		return c.fail(err)
	}
	r.deadline = time.Now().Add(r.ttr)
	c.reserved[job] = r
	return AppendWord(c.out, Touched)
}

func (c *conn) reserveJob(job uint64) []byte {
	q, id, err := c.job(job)
	if err != nil {
		return c.fail(err)
	}
	m, err := q.LeaseID(id, 0)
	if err != nil {
		return c.fail(err)
	}
	t, err := c.tube(tubeName(q.Name(), q.Label()), true)
	if err != nil {
		return c.fail(err)
	}
	if !c.worker {
		c.worker = true
		c.s.workers.Add(1)
	}
	return c.reserved1(t, m)
}

func (c *conn) peek(job uint64) []byte {
	q, id, err := c.job(job)
	if err != nil {
		return c.fail(err)
	}
	m, err := q.Get(id)
	return c.found(uint32(job>>idBits), m, err)
}

// found replies FOUND with m, which a peek on the queue numbered serial
// returned, or the peek's error.
func (c *conn) found(serial uint32, m queue.Message, err error) []byte {
	if err != nil {
		return c.fail(err)
	}
	job, _ := jobID(serial, m.ID)
	return AppendFound(c.out, job, m.Body)
}

func (c *conn) kick(bound uint32) []byte {
	q := c.used.q
	info, err := q.Info()
	if err != nil {
		return c.fail(err)
	}
	n := 0
	switch {
	case bound == 0:
	case info.Counts.Dead > 0:
		n, err = q.Redrive(int(min(bound, uint32(info.Counts.Dead))))
	default:
		n, err = q.KickDelayed(int(bound))
	}
	if err != nil {
		return c.fail(err)
	}
	return AppendKickedCount(c.out, uint32(n))
}

func (c *conn) statsJob(job uint64) []byte {
	q, id, err := c.job(job)
	if err != nil {
		return c.fail(err)
	}
	m, err := q.Get(id)
	if err != nil {
		return c.fail(err)
	}
	now := time.Now()
	ttr := ttrOf(q, m)
	st := JobStats{
		ID: job, Tube: tubeName(q.Name(), q.Label()), Pri: m.Priority,
		Age: int64(now.Sub(m.EnqueuedAt) / time.Second), Delay: int64(m.Delay / time.Second),
		TTR: int64(ttr / time.Second), Reserves: uint32(m.Attempts),
	}
	switch m.State {
	case queue.StateReady:
		st.State = StateReady
	case queue.StateDelayed:
		st.State = StateDelayed
		st.TimeLeft = int64(m.ReadyAt.Sub(now) / time.Second)
	case queue.StateLeased:
		st.State = StateReserved
		st.TimeLeft = int64(m.LeaseEnds.Sub(now) / time.Second)
	default:
		st.State = StateBuried
	}
	return AppendJobStats(c.out, st)
}

func (c *conn) statsTube(name string) []byte {
	t, err := c.tube(name, false)
	if err != nil {
		return c.fail(err)
	}
	info, err := t.q.Info()
	if err != nil {
		return c.fail(err)
	}
	urgentReady, err := t.q.ReadyBelow(urgent)
	if err != nil {
		return c.fail(err)
	}
	ts := &c.s.tubes
	ts.mu.Lock()
	st := TubeStats{
		Name:              t.name,
		CurrentJobsUrgent: uint64(urgentReady), CurrentJobsReady: uint64(info.Counts.Ready),
		CurrentJobsReserved: uint64(info.Counts.Leased), CurrentJobsDelayed: uint64(info.Counts.Delayed),
		CurrentJobsBuried: uint64(info.Counts.Dead), TotalJobs: info.Stats.Enqueued,
		CurrentUsing: uint64(t.using), CurrentWatching: uint64(t.watching), CurrentWaiting: uint64(t.waiting),
		CmdDelete: t.cmdDelete, CmdPauseTube: t.cmdPause, Pause: uint64(t.pause / time.Second),
	}
	if paused, until := t.paused(time.Now()); paused {
		st.PauseTimeLeft = int64(time.Until(until) / time.Second)
	}
	ts.mu.Unlock()
	return AppendTubeStats(c.out, st)
}

// pause holds back reserves from a tube for delay seconds; 0 ends a
// pause, as in beanstalkd 1.12. A pause is the server's, not the
// queue's: it ends with the process.
func (c *conn) pause(name string, delay uint32) []byte {
	t, err := c.tube(name, false)
	if err != nil {
		return c.fail(err)
	}
	d := time.Duration(delay) * time.Second
	ts := &c.s.tubes
	ts.mu.Lock()
	t.cmdPause++
	t.pause, t.pausedUntil = d, time.Time{}
	if d > 0 {
		t.pausedUntil = time.Now().Add(d)
	}
	ts.mu.Unlock()
	return AppendWord(c.out, Paused)
}
