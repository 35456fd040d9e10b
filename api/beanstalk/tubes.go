package beanstalk

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"time"

	"github.com/spoolq/spool/queue"
)

// Tubes are queues, and job ids are made from the queue's number and the
// message's id there.

// QueueName returns the queue that holds tube name's jobs. A tube whose
// name is a queue name is the queue of that name, so a beanstalkd client
// and the HTTP API share "emails". Any other tube ("a/b", ".", a name
// over 80 bytes) is the queue "bt-" + 32 hex digits of the name's
// SHA-256, labelled with the tube's name, which list-tubes shows: the
// mapping is one to one, never a path made from the client's bytes. A
// tube named like such a queue is hashed too, so it cannot take another
// tube's queue.
func QueueName(tube string) string {
	if queue.ValidName(tube) && !hashedName.MatchString(tube) {
		return tube
	}
	sum := sha256.Sum256([]byte(tube))
	return hashedPrefix + hex.EncodeToString(sum[:16])
}

const hashedPrefix = "bt-"

var hashedName = regexp.MustCompile(`^bt-[0-9a-f]{32}$`)

// tubeName is the tube a queue is: its label if a tube gave it one.
func tubeName(name, label string) string {
	if label != "" {
		return label
	}
	return name
}

// Job ids are unique across tubes and kept across restarts: a queue's
// number (queue.Queue.Serial) above the message's id in its queue.
const (
	idBits = 40
	idMask = 1<<idBits - 1
)

// jobID is the id of message id of the queue numbered serial. Message ids
// of 2^40 and over (a trillion puts to one tube) have no job id: put
// refuses them.
func jobID(serial uint32, id uint64) (uint64, bool) {
	return uint64(serial)<<idBits | id, id != 0 && id <= idMask
}

func splitJobID(job uint64) (serial uint32, id uint64) {
	return uint32(job >> idBits), job & idMask
}

// A tube is what the server keeps of one tube besides its queue: who
// uses and watches it, its pause, its cmd-* counts. All under
// tubes.mu.
type tube struct {
	name     string
	q        *queue.Queue
	serial   uint32
	using    int
	watching int
	waiting  int

	cmdDelete, cmdPause uint64
	pause               time.Duration // of the last pause-tube
	pausedUntil         time.Time
}

// tubes are the tubes the server's connections have named, by name. An
// entry stays while its queue exists: there are as many as the broker
// has queues.
type tubes struct {
	b  *queue.Broker
	mu sync.Mutex
	m  map[string]*tube
}

// tubeConfig is a queue made for a tube: beanstalkd never buries a job
// on its own, so it may be delivered as often as spool allows.
var tubeConfig = queue.ConfigUpdate{MaxAttempts: ptr(queue.MaxMaxAttempts)}

func ptr[T any](v T) *T { return &v }

// getLocked returns the tube name, making its queue if create and it has
// none (use and watch make tubes; stats-tube and pause-tube do not:
// errNoTube). The caller holds mu.
func (ts *tubes) getLocked(name string, create bool) (*tube, error) {
	if t := ts.m[name]; t != nil {
		return t, nil
	}
	qname := QueueName(name)
	var q *queue.Queue
	var err error
	if create {
		label := ""
		if qname != name {
			label = name
		}
		q, _, err = ts.b.CreateLabeled(qname, label, tubeConfig)
	} else if q, err = ts.b.Queue(qname); errors.Is(err, queue.ErrQueueNotFound) {
		err = fmt.Errorf("%w: tube %q", errNoTube, name)
	}
	if err != nil {
		return nil, err
	}
	serial, err := q.Serial()
	if err != nil {
		return nil, err
	}
	t := &tube{name: name, q: q, serial: serial}
	ts.m[name] = t
	return t, nil
}

// renew makes t's queue again after an operation found it deleted
// (through the HTTP API) while connections still use the tube, as
// beanstalkd would have kept it. The caller holds mu.
func (ts *tubes) renewLocked(t *tube) error {
	q, _, err := ts.b.CreateLabeled(t.q.Name(), t.q.Label(), tubeConfig)
	if err != nil {
		return err
	}
	serial, err := q.Serial()
	if err != nil {
		return err
	}
	t.q, t.serial = q, serial
	return nil
}

// errNoTube is a tube whose queue does not exist, where a command does not
// make one.
var errNoTube = fmt.Errorf("%w: no such tube", ErrNotFound)

// bySerial returns the queue numbered serial; NOT_FOUND if there is none.
func (ts *tubes) bySerial(serial uint32) (*queue.Queue, error) {
	q, err := ts.b.QueueBySerial(serial)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return q, nil
}

// paused says whether t is paused at now, and until when. A pause that
// has run out is over: stats-tube's pause reads 0 again, as beanstalkd's.
func (t *tube) paused(now time.Time) (bool, time.Time) {
	if !t.pausedUntil.IsZero() && !now.Before(t.pausedUntil) {
		t.pause, t.pausedUntil = 0, time.Time{}
	}
	return !t.pausedUntil.IsZero(), t.pausedUntil
}
