package sqs

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spoolq/spool/queue"
)

// Config configures the SQS endpoint.
type Config struct {
	// Broker holds the queues; an SQS queue is the spool queue of the same
	// name.
	Broker *queue.Broker
	// Keys, if not nil, are the access keys whose SigV4 signatures are
	// accepted, and every request must carry one (an empty StaticKeys
	// refuses everything). nil accepts any signature or none: the caller
	// allows that only where the listener is loopback or anonymous access
	// was asked for.
	Keys Keys
	// MaxMessageBytes bounds one message body, and a batch's bodies
	// together, as SQS does (default queue.DefaultMaxMessageBytes, 256 KiB,
	// SQS's long-standing limit).
	MaxMessageBytes int
	// MaxWait bounds a receive's WaitTimeSeconds beside SQS's own 20 s
	// (the server's long-poll cap); 0 means 20 s.
	MaxWait time.Duration
	// Region and AccountID make the ARNs GetQueueAttributes reports
	// (defaults "us-east-1" and "000000000000"). Requests for any region
	// are served.
	Region, AccountID string
	// Closing, if set, ends every long-poll receive when it is done (the
	// server shutting down): each replies with what it has, likely
	// nothing.
	Closing context.Context
	// Logger gets failures a client is not told the detail of.
	Logger *slog.Logger
	// Now is the clock SigV4's skew check uses (default time.Now).
	Now func() time.Time
}

// Handler serves SQS's two protocols (see IsRequest for which requests
// are its).
type Handler struct {
	cfg   Config
	keys  atomic.Pointer[keysBox] // cfg.Keys, or what SetKeys put there since
	moves moveTasks
}

// keysBox holds a Keys (an interface) for an atomic.Pointer.
type keysBox struct{ k Keys }

// SetKeys replaces the access keys requests are verified against (a
// reload of the keys file, say), as Config.Keys; requests already being
// verified finish with the old ones.
func (h *Handler) SetKeys(k Keys) { h.keys.Store(&keysBox{k}) }

// NewHandler returns the SQS endpoint over cfg.Broker.
func NewHandler(cfg Config) *Handler {
	cfg.MaxMessageBytes = cmp.Or(cfg.MaxMessageBytes, queue.DefaultMaxMessageBytes)
	if cfg.MaxWait <= 0 || cfg.MaxWait > maxWait {
		cfg.MaxWait = maxWait
	}
	cfg.Region = cmp.Or(cfg.Region, "us-east-1")
	cfg.AccountID = cmp.Or(cfg.AccountID, "000000000000")
	cfg.Logger = cmp.Or(cfg.Logger, slog.Default())
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	h := &Handler{cfg: cfg}
	h.SetKeys(cfg.Keys)
	return h
}

// maxBodyBytes bounds a request body: a batch's bodies at their largest,
// escaped as JSON or a form may escape them (up to 6 bytes for one:
// \u003c, or %XX%XX for two), and room for the rest.
func (h *Handler) maxBodyBytes() int64 { return int64(h.cfg.MaxMessageBytes)*6 + 64<<10 }

// call is one request being served.
type call struct {
	h         *Handler
	r         *http.Request
	proto     protocol
	action    string
	requestID string
	body      []byte
	form      url.Values // the query protocol's parameters
}

// decode reads the action's parameters into in.
func (c *call) decode(in any) error {
	if c.proto == protoQuery {
		return decodeQuery(c.form, in)
	}
	return decodeJSON(c.body, in)
}

// ServeHTTP answers one SQS request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := &call{h: h, r: r, requestID: newRequestID()}
	c.proto = protoQuery
	if t := r.Header.Get("X-Amz-Target"); t != "" {
		c.proto = protoJSON
		c.action = strings.TrimPrefix(t, targetPrefix)
	}
	result, err := c.serve()
	if err != nil {
		c.writeError(w, err)
		return
	}
	c.writeResult(w, result)
}

// serve reads, authenticates and runs the request; result is what the
// reply carries (nil for an action whose reply has no members).
func (c *call) serve() (any, error) {
	body, err := io.ReadAll(http.MaxBytesReader(nil, c.r.Body, c.h.maxBodyBytes()))
	if err != nil {
		if mb := (*http.MaxBytesError)(nil); errors.As(err, &mb) {
			return nil, fail(codeRequestEntityTooLarge, "the request body is over %d bytes", mb.Limit)
		}
		return nil, fail(codeMalformedRequest, "reading the request body: %v", err)
	}
	c.body = body
	keys := c.h.keys.Load().k
	if k, ok := keys.(StaticKeys); ok && len(k) == 0 {
		return nil, fail(codeInvalidClientTokenID, "this server takes no SQS access keys: start it with --sqs-keys to serve SQS clients")
	}
	if keys != nil {
		if _, err := Verify(c.r, body, keys, c.h.cfg.Now()); err != nil {
			return nil, err
		}
	}
	if c.proto == protoQuery {
		if c.form, err = url.ParseQuery(string(body)); err != nil {
			return nil, fail(codeMalformedRequest, "the form does not parse: %v", err)
		}
		c.action = c.form.Get("Action")
		if c.action == "" {
			return nil, fail(codeMissingParameter, "the request has no Action")
		}
	}
	run, ok := actions[c.action]
	if !ok {
		if unsupported[c.action] {
			return nil, fail(codeUnsupportedOperation, "spool does not support %s (see the README's SQS section)", c.action)
		}
		return nil, fail(codeInvalidAction, "the action %q is not valid for this endpoint", c.action)
	}
	return run(c)
}

// writeResult writes a success reply.
func (c *call) writeResult(w http.ResponseWriter, result any) {
	if c.proto == protoJSON {
		w.Header().Set("Content-Type", jsonContentType)
		w.Header().Set("x-amzn-RequestId", c.requestID)
		if result == nil {
			result = struct{}{}
		}
		b, err := json.Marshal(result)
		if err != nil {
			c.writeError(w, fmt.Errorf("encode the %s reply: %w", c.action, err))
			return
		}
		w.Write(b)
		return
	}
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	e := xml.NewEncoder(&buf)
	resp := xml.StartElement{Name: xml.Name{Local: c.action + "Response"}, Attr: []xml.Attr{{Name: xml.Name{Local: "xmlns"}, Value: xmlNamespace}}}
	err := e.EncodeToken(resp)
	if err == nil && result != nil {
		err = e.EncodeElement(result, xml.StartElement{Name: xml.Name{Local: c.action + "Result"}})
	}
	if err == nil {
		err = e.EncodeElement(struct {
			RequestId string
		}{c.requestID}, xml.StartElement{Name: xml.Name{Local: "ResponseMetadata"}})
	}
	if err == nil {
		err = e.EncodeToken(resp.End())
	}
	if err == nil {
		err = e.Flush()
	}
	if err != nil {
		c.writeError(w, fmt.Errorf("encode the %s reply: %w", c.action, err))
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.Write(buf.Bytes())
}

// writeError writes err in the request's protocol's error shape.
func (c *call) writeError(w http.ResponseWriter, err error) {
	e, internal := asAPIError(err)
	if internal {
		c.h.cfg.Logger.Error("sqs: request failed", "action", c.action, "request_id", c.requestID, "err", err)
	}
	if c.proto == protoJSON {
		w.Header().Set("Content-Type", jsonContentType)
		w.Header().Set("x-amzn-RequestId", c.requestID)
		w.Header().Set("x-amzn-query-error", e.code.queryCode+";"+e.code.fault())
		w.WriteHeader(e.code.status)
		b, _ := json.Marshal(struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
		}{"com.amazonaws.sqs#" + e.code.shape, e.msg})
		w.Write(b)
		return
	}
	type xmlError struct {
		Type    string
		Code    string
		Message string
		Detail  struct{}
	}
	b, _ := xml.Marshal(struct {
		XMLName   xml.Name `xml:"ErrorResponse"`
		Xmlns     string   `xml:"xmlns,attr"`
		Error     xmlError
		RequestId string
	}{Xmlns: xmlNamespace, Error: xmlError{Type: e.code.fault(), Code: e.code.queryCode, Message: e.msg}, RequestId: c.requestID})
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(e.code.status)
	w.Write([]byte(xml.Header))
	w.Write(b)
}

// newRequestID makes a request id in the UUID form SQS's have.
func newRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
