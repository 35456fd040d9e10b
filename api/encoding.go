package api

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
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
	newEncoder(w).Encode(v) // a failed write means the client left; nothing to tell it
}

// newEncoder returns the JSON encoder of everything the API writes: one
// that leaves <, > and & as they are. Go escapes them by default for JSON
// pasted into HTML, which no API reply is, and the escapes made messages
// unreadable ("send Authorization: Bearer \u003ctoken\u003e").
func newEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc
}

// marshalJSON is json.Marshal without HTML escaping (see newEncoder).
func marshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	if err := newEncoder(&b).Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'}), nil
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
		return 0, fmt.Errorf("%w: %s=%q must be a duration from 0s to %s, like %s", errBadRequest, name, s, hi, min(10*time.Second, hi))
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
		return jsonError(err, limit, "", v)
	}
	// Anything after the value, even a stray "}" (which dec.More does
	// not count), is refused: the body was not what its sender thought.
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: body holds more than one JSON value", errBadRequest)
	}
	return nil
}

// jsonError turns a failure to decode a JSON body of at most limit bytes
// into v into the request error: too large, or not the JSON the route
// takes, said in the API's terms rather than Go's ("visibility_timeout
// must be a string like "30s"", not "cannot unmarshal number into Go
// struct field QueueConfig.visibility_timeout of type string"). prefix
// names where v sits in the body ("messages[3]."), "" for the whole body.
func jsonError(err error, limit int64, prefix string, v any) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return fmt.Errorf("%w: request body over %d bytes", errTooLarge, limit)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("%w: %s", errBadRequest, typeErrorText(te, prefix))
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("%w: body is not valid JSON at byte %d: %s", errBadRequest, se.Offset, se.Error())
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: body ends in the middle of its JSON", errBadRequest)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return fmt.Errorf("%w: unknown field %s in %s; it takes %s", errBadRequest, name, cmp.Or(strings.TrimSuffix(prefix, "."), "the body"), strings.Join(jsonFields(v), ", "))
	}
	return fmt.Errorf("%w: body is not the JSON this route takes: %w", errBadRequest, err)
}

// fieldKinds says, in API terms, what each JSON field of a request takes;
// typeErrorText falls back to the Go type's kind for a field not here.
var fieldKinds = map[string]string{
	"visibility_timeout": `a string like "30s"`,
	"retention":          `a string like "168h"`,
	"delay":              `a string like "5s"`,
	"priority":           "a number from 0 (most urgent) to 4294967295",
	"visibility":         `a string like "30s"`,
	"max_attempts":       "a number",
	"max_length":         "a number",
	"max_bytes":          "a number",
	"start":              `a string: "earliest", "latest", a message id or an RFC 3339 time`,
	"to":                 `a string: "earliest", "latest", a message id or an RFC 3339 time`,
	"dead_letter_queue":  "a string (a queue name)",
	"receipts":           `an array of receipt strings like ["42.3"]`,
	"position":           `"front" or "back"`,
	"messages":           "an array of messages",
	"body":               "a string",
	"body_base64":        "a string of standard base64",
	"attributes":         `an object of strings like {"key":"value"}`,
}

// typeErrorText says which field had the wrong type and what it takes.
func typeErrorText(te *json.UnmarshalTypeError, prefix string) string {
	if te.Field == "" {
		return "the body must be a JSON object, not " + jsonValueName(te.Value)
	}
	field := te.Field
	if i := strings.IndexByte(field, '.'); i >= 0 {
		field = field[:i] // attributes.k: the map, not the key
	}
	want, ok := fieldKinds[field]
	if !ok {
		want = kindName(te.Type.Kind())
	}
	if n, ok := strings.CutPrefix(te.Value, "number "); ok { // a number, but not one the field holds
		if _, err := strconv.ParseInt(n, 10, 64); err == nil || strings.TrimLeft(n, "-0123456789") == "" {
			return fmt.Sprintf("%s%s: %s is out of range", prefix, field, n)
		}
		return fmt.Sprintf("%s%s must be a whole number, not %s", prefix, field, n)
	}
	return fmt.Sprintf("%s%s must be %s, not %s", prefix, field, want, jsonValueName(te.Value))
}

// jsonValueName is the JSON kind encoding/json names ("number",
// "string", "object", "array", "bool") with its article.
func jsonValueName(v string) string {
	switch v {
	case "array", "object":
		return "an " + v
	case "bool":
		return "true or false"
	}
	return "a " + v
}

func kindName(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int64, reflect.Uint32, reflect.Uint64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "another JSON type"
}

// jsonFields returns the JSON field names of the struct v points to, for
// saying what a body takes.
func jsonFields(v any) []string {
	t := reflect.TypeOf(v)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	var names []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.IsExported() && name != "-" {
			names = append(names, cmp.Or(name, f.Name))
		}
	}
	return names
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

// queryPriority returns the ?priority= of an enqueue: nil when it is
// absent, so the default applies.
func queryPriority(q url.Values) (*uint32, error) {
	s, err := query(q, "priority")
	if err != nil || s == "" {
		return nil, err
	}
	p, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("%w: priority=%q must be a whole number from 0 (most urgent) to %d", errBadRequest, s, uint32(math.MaxUint32))
	}
	pri := uint32(p)
	return &pri, nil
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
		Priority:   m.Priority,
		Attributes: m.Attributes,
	}
	if m.VisibilityTimeout != 0 {
		out.VisibilityTimeout = m.VisibilityTimeout.String()
	}
	if !m.ReadyAt.IsZero() {
		out.ReadyAt = m.ReadyAt.UTC().Format(time.RFC3339Nano)
	}
	if !m.LeaseEnds.IsZero() {
		out.LeaseEnds = m.LeaseEnds.UTC().Format(time.RFC3339Nano)
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
	bytes int          // written so far
	buf   bytes.Buffer // one message's JSON, reused
	enc   *json.Encoder
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
	if s.enc == nil {
		s.enc = newEncoder(&s.buf)
	}
	s.buf.Reset()
	if s.n == 0 {
		s.w.Header().Set("Content-Type", "application/json")
		s.w.WriteHeader(http.StatusOK)
		s.buf.WriteString(`{"messages":[`)
	} else {
		s.buf.WriteByte(',')
	}
	if err := s.enc.Encode(messageJSON(m)); err != nil {
		return err
	}
	b := bytes.TrimSuffix(s.buf.Bytes(), []byte{'\n'}) // Encode ends each value with one
	s.n++
	s.bytes += len(b)
	_, err := s.w.Write(b)
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
