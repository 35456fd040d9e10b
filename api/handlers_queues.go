package api

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/spoolq/spool/queue"
)

// infoJSON is i as GET /v1/queues and GET /v1/queues/:queue reply with it.
func infoJSON(i queue.Info) QueueInfo {
	if i.Err != nil {
		return QueueInfo{Name: i.Name, Unavailable: i.Err.Error()}
	}
	c := i.Config
	return QueueInfo{
		Name:              i.Name,
		VisibilityTimeout: c.VisibilityTimeout.String(),
		MaxAttempts:       c.MaxAttempts,
		DeadLetterQueue:   c.DeadLetterQueue,
		MaxLength:         c.MaxLength,
		Retention:         c.Retention.String(),
		Delay:             c.Delay.String(),
		Counts:            Counts(i.Counts),
		Bytes:             i.Bytes,
		Stats:             &QueueStats{Enqueued: i.Stats.Enqueued, Acked: i.Stats.Acked, Nacked: i.Stats.Nacked, Expired: i.Stats.Expired, Dead: i.Stats.Dead},
	}
}

func (s *Server) listQueues(w http.ResponseWriter, r *http.Request, _ target) error {
	infos := s.b.List()
	key := keyOf(r.Context())
	out := QueueList{Queues: make([]QueueInfo, 0, len(infos))}
	for _, info := range infos {
		if key == nil || key.May(PermRead, info.Name) {
			out.Queues = append(out.Queues, infoJSON(info))
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getQueue(w http.ResponseWriter, _ *http.Request, tg target) error {
	info, err := tg.queue.Info()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, infoJSON(info))
	return nil
}

// configLimit bounds a config body: a few short fields.
const configLimit = 4 << 10

// putQueue creates the queue (201) or changes only the fields given (200).
func (s *Server) putQueue(w http.ResponseWriter, r *http.Request, tg target) error {
	var c QueueConfig
	if err := readJSONOrEmpty(w, r, configLimit, &c); err != nil {
		return err
	}
	u := queue.ConfigUpdate{MaxAttempts: c.MaxAttempts, DeadLetterQueue: c.DeadLetterQueue, MaxLength: c.MaxLength}
	for _, f := range []struct {
		name string
		in   *string
		out  **time.Duration
	}{
		{"visibility_timeout", c.VisibilityTimeout, &u.VisibilityTimeout},
		{"retention", c.Retention, &u.Retention},
		{"delay", c.Delay, &u.Delay},
	} {
		var err error
		if *f.out, err = configDuration(f.name, f.in); err != nil {
			return err
		}
	}
	q, created, err := s.b.Create(tg.ps.ByName(queueParam), u)
	if err != nil {
		return err
	}
	info, err := q.Info()
	if err != nil {
		return err
	}
	out := infoJSON(info)
	out.Warnings = s.configWarnings(info.Config.DeadLetterQueue, "queue")
	writeJSON(w, createdStatus(created), out)
	return nil
}

// configWarnings returns what a queue's or subscription's config (what
// says which) does that its author may not expect (the queue logs it at
// WARN itself). The one so far: a dead-letter queue that does not exist.
// Create accepts it (the dead-letter queue may well be created next), but
// until it is, messages that go dead stay dead in this queue.
func (s *Server) configWarnings(dlq, what string) []string {
	if dlq == "" {
		return nil
	}
	if _, err := s.b.Queue(dlq); !errors.Is(err, queue.ErrQueueNotFound) {
		return nil
	}
	return []string{fmt.Sprintf("dead-letter queue %q does not exist yet: dead messages stay in this %s until it is created", dlq, what)}
}

func (s *Server) deleteQueue(w http.ResponseWriter, _ *http.Request, tg target) error {
	if err := s.b.Delete(tg.ps.ByName(queueParam)); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}

func (s *Server) purgeQueue(w http.ResponseWriter, _ *http.Request, tg target) error {
	if err := tg.queue.Purge(); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}

func (s *Server) redrive(w http.ResponseWriter, r *http.Request, tg target) error {
	limit, err := queryInt(r.URL.Query(), "limit", 0, 0, 1<<30)
	if err != nil {
		return err
	}
	n, err := tg.consumer().Redrive(limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, Redriven{Redriven: n})
	return nil
}
