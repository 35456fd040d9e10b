package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/spoolq/spool/queue"
)

// writeError sends the JSON error reply of every failure.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, ErrorReply{Error: ErrorBody{Code: code, Message: msg}})
}

// writeJSON sends v as the JSON reply with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v) // a failed write means the client left; nothing to tell it
}

// query returns the single value of a query parameter; a parameter given
// twice is ambiguous and refused rather than guessed.
func query(q url.Values, name string) (string, error) {
	v := q[name]
	if len(v) > 1 {
		return "", fmt.Errorf("%w: query parameter %q given %d times", errBadRequest, name, len(v))
	}
	if len(v) == 0 {
		return "", nil
	}
	return v[0], nil
}

// queryInt returns the integer query parameter name, def when it is
// absent; a value outside [lo, hi] is refused.
func queryInt(q url.Values, name string, def, lo, hi int) (int, error) {
	s, err := query(q, name)
	if err != nil || s == "" {
		return def, err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%w: %s=%q must be a whole number from %d to %d", errBadRequest, name, s, lo, hi)
	}
	return n, nil
}

// queryDuration returns the duration query parameter name, 0 when it is
// absent; see parseDuration.
func queryDuration(q url.Values, name string, hi time.Duration) (time.Duration, error) {
	s, err := query(q, name)
	if err != nil || s == "" {
		return 0, err
	}
	return parseDuration(name, s, hi)
}

// parseDuration parses s, the value of name, as a Go duration from 0 to hi.
func parseDuration(name, s string, hi time.Duration) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > hi {
		return 0, fmt.Errorf("%w: %s=%q must be a duration from 0s to %s (like 30s or 5m)", errBadRequest, name, s, hi)
	}
	return d, nil
}

// readJSON decodes a JSON body of at most limit bytes into v, refusing
// other content types, unknown fields and trailing data.
func readJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if err := checkJSONType(r); err != nil {
		return err
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err, limit)
	}
	if dec.More() {
		return fmt.Errorf("%w: body holds more than one JSON value", errBadRequest)
	}
	return nil
}

// jsonError turns a failure to decode a JSON body of at most limit bytes
// into the request error: too large, or not the JSON the route takes.
func jsonError(err error, limit int64) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return fmt.Errorf("%w: request body over %d bytes", errTooLarge, limit)
	}
	return fmt.Errorf("%w: body is not the JSON this route takes: %w", errBadRequest, err)
}

// checkJSONType refuses a body labelled other than JSON.
func checkJSONType(r *http.Request) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		// curl -d labels every body form-urlencoded; accept that label (the
		// body must still be JSON) so the README's curl lines work as typed.
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && mt != "application/x-www-form-urlencoded") {
			return fmt.Errorf("%w: send Content-Type: application/json, not %q", errBadMedia, ct)
		}
	}
	return nil
}

// readJSONOrEmpty is readJSON for routes whose body may be empty.
func readJSONOrEmpty(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if r.ContentLength == 0 {
		return nil
	}
	err := readJSON(w, r, limit, v)
	if errors.Is(err, errBadRequest) && errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// queryDelay returns the ?delay= of an enqueue: nil when it is absent, so
// the queue's default delay applies.
func queryDelay(q url.Values) (*time.Duration, error) {
	s, err := query(q, "delay")
	if err != nil || s == "" {
		return nil, err
	}
	d, err := parseDuration("delay", s, queue.MaxDelay)
	return &d, err
}

// idStrings turns ids into their JSON form, decimal strings.
func idStrings(ids []uint64) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = strconv.FormatUint(id, 10)
	}
	return out
}

// messageJSON is m as a reply carries it.
func messageJSON(m queue.Message) Message {
	out := Message{
		ID:         strconv.FormatUint(m.ID, 10),
		Attempts:   m.Attempts,
		EnqueuedAt: m.EnqueuedAt.UTC().Format(time.RFC3339Nano),
		Attributes: m.Attributes,
	}
	if m.Receipt.ID != 0 {
		out.Receipt = m.Receipt.String()
	} else {
		out.State = m.State.String()
	}
	out.Body, out.BodyBase64 = encodeBody(m.Body)
	return out
}

// messageStream writes a Messages reply one message at a time, as the
// queue reads each body: a reply of a thousand 256 KiB messages never sits
// in memory whole (issue 11 measured +744 MB of RSS for such a peek when
// it did). The bytes are those writeJSON would write for the whole reply.
type messageStream struct {
	w     http.ResponseWriter
	srv   *Server
	n     int
	bytes int // written so far
}

// done gives the memory a big reply took back to the system (see
// bigRequest); defer it once the stream is made.
func (s *messageStream) done() {
	if s.bytes >= bigRequest {
		s.srv.releaseMemory()
	}
}

// add writes m, after the reply's opening on the first call.
func (s *messageStream) add(m queue.Message) error {
	b, err := json.Marshal(messageJSON(m))
	if err != nil {
		return err
	}
	if s.n == 0 {
		s.w.Header().Set("Content-Type", "application/json")
		s.w.WriteHeader(http.StatusOK)
		b = append([]byte(`{"messages":[`), b...)
	} else {
		b = append([]byte{','}, b...)
	}
	s.n++
	s.bytes += len(b)
	_, err = s.w.Write(b)
	return err
}

// end finishes the reply; with no message added it is an empty list.
func (s *messageStream) end() {
	if s.n == 0 {
		writeJSON(s.w, http.StatusOK, Messages{Messages: []Message{}})
		return
	}
	io.WriteString(s.w, "]}\n")
}

// abort ends a reply that failed after it started: the status is sent
// already, so the connection is cut and the client sees a broken reply,
// never a short list that looks whole.
func (s *messageStream) abort() { panic(http.ErrAbortHandler) }
