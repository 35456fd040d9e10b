package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spoolq/spool/queue"
)

// The lines of POST .../stream, both ways (see handlers_stream.go).

// StreamCommand is one line of a stream's request body: exactly one of
// Ack, Nack, Extend, Fail (a receipt) or Credit.
type StreamCommand struct {
	Ack    string `json:"ack,omitempty"`
	Nack   string `json:"nack,omitempty"`
	Extend string `json:"extend,omitempty"`
	Fail   string `json:"fail,omitempty"`
	// Position ("front" or "back", the default) and Delay (a Go duration)
	// go with Nack; Visibility (a Go duration; the stream's if empty)
	// with Extend.
	Position   string `json:"position,omitempty"`
	Delay      string `json:"delay,omitempty"`
	Visibility string `json:"visibility,omitempty"`
	// Credit sets how many messages may be out unacked on the stream,
	// 0 (pause) to --max-batch.
	Credit *int `json:"credit,omitempty"`
}

// StreamReply is one line of a stream's response that is not a message (a
// message line is a Message, with "id" and "receipt"): a command's outcome,
// sent once it is durable — OK set to its receipt, or Receipt and Error —,
// or, with Error alone, a line the server could not use.
type StreamReply struct {
	OK      string     `json:"ok,omitempty"`
	Receipt string     `json:"receipt,omitempty"`
	Error   *ErrorBody `json:"error,omitempty"`
}

// streamOp is a decoded StreamCommand, or a line that did not decode.
type streamOp struct {
	kind       receiptKind // ack, nack, extend, fail; or credit, badLine
	text       string      // the receipt as sent
	receipt    queue.Receipt
	nack       queue.NackOptions
	visibility time.Duration
	credit     int
	bad        *ErrorBody // badLine: why
}

// The streamOp kinds beside the receipt kinds.
const (
	credit  receiptKind = fail + 1 + iota // a credit command
	badLine                               // a line the server cannot use
)

// decodeStreamCommand parses one line of a stream's request body; what it
// refuses wraps errBadRequest (or queue.ErrInvalid) and says why.
func decodeStreamCommand(line []byte, maxCredit int) (streamOp, error) {
	var c StreamCommand
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return streamOp{}, fmt.Errorf("%w: a stream command is one JSON object a line, e.g. {\"ack\":\"42.3\"}: %v", errBadRequest, err)
	}
	if dec.More() {
		return streamOp{}, fmt.Errorf("%w: one JSON object a line", errBadRequest)
	}
	var op streamOp
	n := 0
	for _, f := range []struct {
		text string
		kind receiptKind
	}{{c.Ack, ack}, {c.Nack, nack}, {c.Extend, extend}, {c.Fail, fail}} {
		if f.text != "" {
			op.kind, op.text = f.kind, f.text
			n++
		}
	}
	if c.Credit != nil {
		op.kind = credit
		n++
	}
	if n != 1 {
		return streamOp{}, fmt.Errorf("%w: a stream command has exactly one of ack, nack, extend, fail and credit", errBadRequest)
	}
	if op.kind != nack && (c.Position != "" || c.Delay != "") {
		return streamOp{}, fmt.Errorf("%w: position and delay belong to nack", errBadRequest)
	}
	if op.kind != extend && c.Visibility != "" {
		return streamOp{}, fmt.Errorf("%w: visibility belongs to extend", errBadRequest)
	}
	var err error
	switch op.kind {
	case credit:
		if *c.Credit < 0 || *c.Credit > maxCredit {
			return streamOp{}, fmt.Errorf("%w: credit %d must be between 0 and %d (--max-batch)", errBadRequest, *c.Credit, maxCredit)
		}
		op.credit = *c.Credit
		return op, nil
	case nack:
		switch c.Position {
		case "", "back":
		case "front":
			op.nack.Front = true
		default:
			return streamOp{}, fmt.Errorf("%w: position %q (want front or back)", errBadRequest, c.Position)
		}
		if c.Delay != "" {
			if op.nack.Delay, err = parseDuration("delay", c.Delay, queue.MaxDelay); err != nil {
				return streamOp{}, err
			}
		}
	case extend:
		if c.Visibility != "" {
			if op.visibility, err = parseDuration("visibility", c.Visibility, queue.MaxVisibility); err != nil {
				return streamOp{}, err
			}
		}
	}
	if op.receipt, err = queue.ParseReceipt(op.text); err != nil {
		return streamOp{}, err
	}
	return op, nil
}

// ParseStreamCommand checks one line of a stream's request body as the
// server does (a credit at most maxCredit) and returns it in canonical
// form: the receipt as id.attempt, durations as Go prints them, the
// default position left out. What the server refuses is an error that
// says why.
func ParseStreamCommand(line []byte, maxCredit int) (StreamCommand, error) {
	op, err := decodeStreamCommand(line, maxCredit)
	if err != nil {
		return StreamCommand{}, err
	}
	var c StreamCommand
	r := op.receipt.String()
	switch op.kind {
	case credit:
		n := op.credit
		c.Credit = &n
	case ack:
		c.Ack = r
	case fail:
		c.Fail = r
	case extend:
		c.Extend = r
		if op.visibility > 0 {
			c.Visibility = op.visibility.String()
		}
	case nack:
		c.Nack = r
		if op.nack.Front {
			c.Position = "front"
		}
		if op.nack.Delay > 0 {
			c.Delay = op.nack.Delay.String()
		}
	}
	return c, nil
}
