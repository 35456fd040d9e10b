package api

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/julienschmidt/httprouter"

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
	}
}

func (s *Server) listQueues(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) error {
	infos := s.b.List()
	out := QueueList{Queues: make([]QueueInfo, len(infos))}
	for i, info := range infos {
		out.Queues[i] = infoJSON(info)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getQueue(w http.ResponseWriter, _ *http.Request, q *queue.Queue) error {
	info, err := q.Info()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, infoJSON(info))
	return nil
}

// configLimit bounds a config body: a few short fields.
const configLimit = 4 << 10

// putQueue creates the queue (201) or changes only the fields given (200).
func (s *Server) putQueue(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
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
		if f.in == nil {
			continue
		}
		d, err := time.ParseDuration(*f.in)
		if err != nil {
			return fmt.Errorf("%w: %s=%q is not a duration (like 30s or 5m)", errBadRequest, f.name, *f.in)
		}
		*f.out = &d
	}
	q, created, err := s.b.Create(ps.ByName(queueParam), u)
	if err != nil {
		return err
	}
	info, err := q.Info()
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	out := infoJSON(info)
	out.Warnings = s.configWarnings(info)
	writeJSON(w, status, out)
	return nil
}

// configWarnings returns what a queue's config does that its author may
// not expect (the queue logs it at WARN itself). The one so far: a dead-letter queue
// that does not exist. Create accepts it (the dead-letter queue may well
// be created next), but until it is, messages that go dead stay dead in
// this queue.
func (s *Server) configWarnings(info queue.Info) []string {
	dlq := info.Config.DeadLetterQueue
	if dlq == "" {
		return nil
	}
	if _, err := s.b.Queue(dlq); !errors.Is(err, queue.ErrQueueNotFound) {
		return nil
	}
	return []string{fmt.Sprintf("dead-letter queue %q does not exist yet: dead messages stay in this queue until it is created", dlq)}
}

func (s *Server) deleteQueue(w http.ResponseWriter, _ *http.Request, ps httprouter.Params) error {
	if err := s.b.Delete(ps.ByName(queueParam)); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}

func (s *Server) purgeQueue(w http.ResponseWriter, _ *http.Request, q *queue.Queue) error {
	if err := q.Purge(); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}

func (s *Server) redrive(w http.ResponseWriter, r *http.Request, q *queue.Queue) error {
	limit, err := queryInt(r.URL.Query(), "limit", 0, 0, 1<<30)
	if err != nil {
		return err
	}
	n, err := q.Redrive(limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, Redriven{Redriven: n})
	return nil
}
