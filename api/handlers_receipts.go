package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/spoolq/spool/queue"
)

// receiptKind is what a receipt route does with each receipt: the four
// share one handler, as they share one body (Receipts) and one reply.
type receiptKind int

const (
	ack receiptKind = iota
	nack
	extend
	fail
)

// receiptRoute is the handler of ack, nack, extend or fail; the fields
// of Receipts that belong to another kind are refused, not ignored.
func (s *Server) receiptRoute(kind receiptKind) targetHandler {
	return func(w http.ResponseWriter, r *http.Request, tg target) error {
		q := tg.consumer()
		var body Receipts
		if err := readJSON(w, r, int64(s.cfg.MaxBatch)*64+4<<10, &body); err != nil {
			return err
		}
		if len(body.Receipts) == 0 {
			return fmt.Errorf("%w: no receipts", errBadRequest)
		}
		if len(body.Receipts) > s.cfg.MaxBatch {
			return fmt.Errorf("%w: %d receipts, at most %d (--max-batch)", errTooLarge, len(body.Receipts), s.cfg.MaxBatch)
		}
		if kind != nack && (body.Position != "" || body.Delay != "") {
			return fmt.Errorf("%w: position and delay belong to nack", errBadRequest)
		}
		if kind != extend && body.Visibility != "" {
			return fmt.Errorf("%w: visibility belongs to extend", errBadRequest)
		}
		receipts := make([]queue.Receipt, len(body.Receipts))
		var err error
		for i, text := range body.Receipts {
			if receipts[i], err = queue.ParseReceipt(text); err != nil {
				return err
			}
		}
		var errs []error
		switch kind {
		case ack:
			errs, err = q.Ack(receipts)
		case fail:
			errs, err = q.Fail(receipts)
		case extend:
			var vis time.Duration
			if body.Visibility != "" {
				if vis, err = parseDuration("visibility", body.Visibility, queue.MaxVisibility); err != nil {
					return err
				}
			}
			errs, err = q.Extend(receipts, vis)
		case nack:
			var o queue.NackOptions
			switch body.Position {
			case "", "back":
			case "front":
				o.Front = true
			default:
				return fmt.Errorf("%w: position %q (want front or back)", errBadRequest, body.Position)
			}
			if body.Delay != "" {
				if o.Delay, err = parseDuration("delay", body.Delay, queue.MaxDelay); err != nil {
					return err
				}
			}
			errs, err = q.Nack(receipts, o)
		}
		if err != nil {
			return err
		}
		return writeResults(w, body.Receipts, errs)
	}
}

// writeResults answers a receipt call: when every receipt failed the same
// way, that error (a single stale receipt is a plain 409); otherwise 200
// with one result per receipt.
func writeResults(w http.ResponseWriter, receipts []string, errs []error) error {
	first := errs[0]
	if first != nil {
		status, code := statusOf(first)
		same := true
		for _, e := range errs[1:] {
			if e == nil {
				same = false
				break
			}
			if st, c := statusOf(e); st != status || c != code {
				same = false
				break
			}
		}
		if same {
			return first
		}
	}
	out := Results{Results: make([]Result, len(receipts))}
	for i, e := range errs {
		out.Results[i].Receipt = receipts[i]
		if e == nil {
			out.Results[i].OK = true
			continue
		}
		out.Results[i].Error = errorBody(e)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
