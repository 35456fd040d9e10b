package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/spoolq/spool/queue"
)

// enqueueOne takes the raw request body, any content type, as one message
// to enqueue or publish.
func (s *Server) enqueueOne(w http.ResponseWriter, r *http.Request, tg target) error {
	params := r.URL.Query()
	delay, err := queryDelay(params)
	if err != nil {
		return err
	}
	priority, err := queryPriority(params)
	if err != nil {
		return err
	}
	vis, err := queryDuration(params, "visibility_timeout", queue.MaxVisibility)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(s.cfg.MaxMessageBytes)))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fmt.Errorf("%w: message over %d bytes (--max-message-bytes)", errTooLarge, s.cfg.MaxMessageBytes)
		}
		return fmt.Errorf("%w: reading the body: %v", errBadRequest, err)
	}
	if err := s.checkQuota(); err != nil {
		return err
	}
	ids, err := tg.enqueue([]queue.NewMessage{{Body: body, Delay: delay, Priority: priority, VisibilityTimeout: vis}})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, Enqueued{IDs: idStrings(ids)})
	return nil
}

// enqueueBatch enqueues or publishes a Batch all-or-nothing.
func (s *Server) enqueueBatch(w http.ResponseWriter, r *http.Request, tg target) error {
	msgs, err := s.readBatch(w, r)
	if err != nil {
		return err
	}
	size := 0
	for _, m := range msgs {
		size += len(m.Body)
	}
	if size >= bigRequest {
		defer s.releaseMemory()
	}
	if err := s.checkQuota(); err != nil {
		return err
	}
	ids, err := tg.enqueue(msgs)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, Enqueued{IDs: idStrings(ids)})
	return nil
}

// readBatch decodes a Batch body one message at a time, turning each into
// a queue.NewMessage as it goes: only the bodies stay in memory, not the
// request text nor a decoded copy of every message beside them (issue 11
// measured +246 MB of RSS for a 64 MiB batch when it held all three). The
// rules are readJSON's: JSON content type, no unknown field, nothing after
// the object.
func (s *Server) readBatch(w http.ResponseWriter, r *http.Request) ([]queue.NewMessage, error) {
	if err := checkJSONType(r); err != nil {
		return nil, err
	}
	// base64 and JSON escaping can take a body to about 4/3 (base64) or
	// 6x (\u escapes) its bytes; bound the request by the worst honest case.
	limit := int64(s.cfg.MaxBatch) * (int64(s.cfg.MaxMessageBytes)*6 + 64<<10)
	limit = min(limit, 512<<20)
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	bad := func(err error) error { return jsonError(err, limit, "", &Batch{}) }
	// expect reads the next token, which must be want; what says, in an
	// error, what the body should have had there.
	expect := func(want json.Delim, what string) error {
		tok, err := dec.Token()
		if err != nil {
			return bad(err)
		}
		if tok != want {
			return fmt.Errorf("%w: %s", errBadRequest, what)
		}
		return nil
	}
	if err := expect('{', `the body must be a JSON object like {"messages":[{"body":"..."}]}`); err != nil {
		return nil, err
	}
	var msgs []queue.NewMessage
	seen := false
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return nil, bad(err)
		}
		if key != "messages" {
			return nil, fmt.Errorf("%w: unknown field %q in the body; it takes messages", errBadRequest, key)
		}
		if seen {
			return nil, fmt.Errorf("%w: messages given twice", errBadRequest)
		}
		seen = true
		if err := expect('[', "messages must be "+fieldKinds["messages"]); err != nil {
			return nil, err
		}
		bytes := 0
		for i := 0; dec.More(); i++ {
			if i == s.cfg.MaxBatch {
				return nil, fmt.Errorf("%w: more than %d messages in a batch (--max-batch)", errTooLarge, s.cfg.MaxBatch)
			}
			var m NewMessage
			if err := dec.Decode(&m); err != nil {
				return nil, jsonError(err, limit, fmt.Sprintf("messages[%d].", i), &m)
			}
			nm, err := newMessage(i, m)
			if err != nil {
				return nil, err
			}
			if len(nm.Body) > s.cfg.MaxMessageBytes {
				return nil, fmt.Errorf("%w: message %d is %d bytes, limit %d (--max-message-bytes)", errTooLarge, i, len(nm.Body), s.cfg.MaxMessageBytes)
			}
			if bytes += len(nm.Body); bytes > queue.MaxBatchBytes {
				return nil, fmt.Errorf("%w: a batch holds at most %d bytes of bodies", errTooLarge, queue.MaxBatchBytes)
			}
			msgs = append(msgs, nm)
		}
		if err := expect(']', "messages must end with ]"); err != nil {
			return nil, err
		}
	}
	if err := expect('}', "the body must end after messages"); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: body holds more than one JSON value", errBadRequest)
	}
	if len(msgs) == 0 {
		return nil, fmt.Errorf("%w: a batch needs at least one message", errBadRequest)
	}
	return msgs, nil
}

// newMessage turns message i of a batch into a queue.NewMessage.
func newMessage(i int, m NewMessage) (queue.NewMessage, error) {
	var nm queue.NewMessage
	body, err := decodeBody(i, m.Body, m.BodyBase64)
	if err != nil {
		return nm, fmt.Errorf("%w: %w", errBadRequest, err)
	}
	nm.Body = body
	if m.Delay != "" {
		d, err := parseDuration(fmt.Sprintf("messages[%d].delay", i), m.Delay, queue.MaxDelay)
		if err != nil {
			return nm, err
		}
		nm.Delay = &d
	}
	if m.VisibilityTimeout != "" {
		d, err := parseDuration(fmt.Sprintf("messages[%d].visibility_timeout", i), m.VisibilityTimeout, queue.MaxVisibility)
		if err != nil {
			return nm, err
		}
		nm.VisibilityTimeout = d
	}
	nm.Priority = m.Priority
	nm.Attributes = m.Attributes
	return nm, nil
}

// receive leases messages, long-polling up to ?wait=; ?raw=1 answers one
// message's bytes with its lease in Spool-* headers.
func (s *Server) receive(w http.ResponseWriter, r *http.Request, tg target) error {
	params := r.URL.Query()
	rawText, err := query(params, "raw")
	if err != nil {
		return err
	}
	raw := rawText == "1" || rawText == "true"
	maxDefault := 1
	maxN, err := queryInt(params, "max", maxDefault, 1, s.cfg.MaxBatch)
	if err != nil {
		return err
	}
	if raw && maxN != 1 {
		return fmt.Errorf("%w: raw=1 returns one message: leave out max or use max=1", errBadRequest)
	}
	wait, err := queryDuration(params, "wait", s.cfg.MaxWait)
	if err != nil {
		return err
	}
	vis, err := queryDuration(params, "visibility", queue.MaxVisibility)
	if err != nil {
		return err
	}
	ctx := r.Context()
	if wait > 0 {
		// The wait ends with the request: a client that hangs up while
		// waiting leases nothing. Shutdown releases the wait with 503.
		// (Not set up for a receive that does not wait: registering with
		// the server-wide closing context on every receive contends.)
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(s.closing, cancel)()
	}
	out := messageStream{w: w, srv: s}
	defer out.done()
	n, err := tg.consumer().ReceiveEach(ctx, queue.ReceiveOptions{Max: maxN, Wait: wait, Visibility: vis}, func(m queue.Message) error {
		if raw {
			h := w.Header()
			h.Set("Content-Type", "application/octet-stream")
			h.Set("Spool-Id", strconv.FormatUint(m.ID, 10))
			h.Set("Spool-Receipt", m.Receipt.String())
			h.Set("Spool-Attempts", strconv.Itoa(m.Attempts))
			h.Set("Spool-Priority", strconv.FormatUint(uint64(m.Priority), 10))
			h.Set("Spool-Enqueued-At", m.EnqueuedAt.UTC().Format(time.RFC3339Nano))
			w.WriteHeader(http.StatusOK)
			out.n++
			_, err := w.Write(m.Body)
			return err
		}
		return out.add(m)
	})
	switch {
	case err != nil && out.n > 0:
		out.abort() // the reply is under way: cut it rather than end it as if whole
	case err != nil:
		if s.closing.Err() != nil {
			return errShutdown
		}
		if errors.Is(err, context.Canceled) {
			return errClientGone
		}
		return err
	case n == 0:
		w.WriteHeader(http.StatusNoContent)
	case !raw:
		out.end()
	}
	return nil
}

// list answers peek (dead false) and the dead list: messages after
// ?after=, at most ?limit=, leasing none.
func (s *Server) list(w http.ResponseWriter, r *http.Request, tg target, dead bool) error {
	params := r.URL.Query()
	afterText, err := query(params, "after")
	if err != nil {
		return err
	}
	var after uint64
	if afterText != "" {
		if after, err = strconv.ParseUint(afterText, 10, 64); err != nil {
			return fmt.Errorf("%w: after=%q is not a message id", errBadRequest, afterText)
		}
	}
	limit, err := queryInt(params, "limit", 100, 1, queue.MaxList)
	if err != nil {
		return err
	}
	c := tg.consumer()
	each := c.PeekEach
	if dead {
		each = c.DeadEach
	}
	out := messageStream{w: w, srv: s}
	defer out.done()
	if err := each(after, limit, out.add); err != nil {
		if out.n > 0 {
			s.cfg.Logger.Error("api: listing failed after its reply started; cutting it", "queue", tg.name(), "err", err)
			out.abort()
		}
		return err
	}
	out.end()
	return nil
}

func (s *Server) peek(w http.ResponseWriter, r *http.Request, tg target) error {
	return s.list(w, r, tg, false)
}

func (s *Server) dead(w http.ResponseWriter, r *http.Request, tg target) error {
	return s.list(w, r, tg, true)
}
