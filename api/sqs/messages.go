package sqs

import (
	"context"
	"encoding/base64"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spoolq/spool/queue"
)

// SQS's limits on messages and batches.
const (
	maxBatchEntries      = 10
	maxMessageAttributes = 10
	maxAttributeNameLen  = 256
	maxDataTypeLen       = 256
	maxReceiveMessages   = 10
)

// How SQS message attributes ride in spool's: an attribute is kept under
// its name with its value (a Binary one base64-encoded), so a native
// consumer reads it as it would any; a type other than plain String is
// kept beside it under typeKeyPrefix+name, and the AWSTraceHeader system
// attribute under traceKey. Keys with the reserved prefix are never a
// message attribute an SQS client sees (SQS names cannot hold a colon).
const (
	reservedPrefix = "sqs:"
	typeKeyPrefix  = reservedPrefix + "type:"
	traceKey       = reservedPrefix + "AWSTraceHeader"
)

var (
	attributeNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
	// numberRE is a decimal number, SQS's Number type (no NaN, Inf, hex
	// or digit separators, which strconv would take).
	numberRE       = regexp.MustCompile(`^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,3})?$`)
	batchEntryIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)
)

// message is what SendMessage and a SendMessageBatch entry share.
type message struct {
	MessageBody             *string
	DelaySeconds            *number
	MessageAttributes       map[string]attributeValue
	MessageSystemAttributes map[string]attributeValue
	MessageDeduplicationId  string
	// MessageGroupId is a FIFO queue's message group; a standard queue
	// accepts one (SQS's fair queues take one) and does not keep it.
	MessageGroupId string
}

// sendReceipt is what a send replies with, per message.
type sendReceipt struct {
	MessageId                    string
	MD5OfMessageBody             string
	MD5OfMessageAttributes       string `json:",omitempty" xml:",omitempty"`
	MD5OfMessageSystemAttributes string `json:",omitempty" xml:",omitempty"`
	SequenceNumber               string `json:",omitempty" xml:",omitempty"` // a FIFO queue's
}

// prepare checks a message as SQS does and makes the spool message for
// it; size is what counts against the size limit (body and attributes).
func (h *Handler) prepare(m message, maxBytes int, rules sendRules) (nm queue.NewMessage, r sendReceipt, size int, err error) {
	if m.MessageBody == nil || *m.MessageBody == "" {
		return nm, r, 0, fail(codeMissingParameter, "the request must contain the parameter MessageBody")
	}
	body := *m.MessageBody
	if !validText(body) {
		return nm, r, 0, fail(codeInvalidMessageContents, "the message body holds characters outside what SQS allows (#x9, #xA, #xD, #x20-#xD7FF, #xE000-#xFFFD, #x10000-#x10FFFF)")
	}
	if m.DelaySeconds != nil {
		d := m.DelaySeconds.v
		if d < 0 || d > maxDelaySeconds {
			return nm, r, 0, fail(codeInvalidParameterValue, "DelaySeconds %d must be from 0 to %d", d, maxDelaySeconds)
		}
		nm.Delay = ptr(time.Duration(d) * time.Second)
	}
	attrs, userAttrs, attrBytes, err := toSpoolAttributes(m.MessageAttributes)
	if err != nil {
		return nm, r, 0, err
	}
	for name, v := range m.MessageSystemAttributes {
		if name != "AWSTraceHeader" || v.DataType != "String" || v.StringValue == nil || *v.StringValue == "" {
			return nm, r, 0, fail(codeInvalidParameterValue, "message system attribute %q: only AWSTraceHeader, a non-empty String, is valid", name)
		}
		if attrs == nil {
			attrs = map[string]string{}
		}
		attrs[traceKey] = *v.StringValue
		attrBytes += len(name) + len(v.DataType) + len(*v.StringValue)
		r.MD5OfMessageSystemAttributes = MD5OfMessageAttributes([]MessageAttribute{{Name: name, DataType: v.DataType, StringValue: *v.StringValue}})
	}
	// Checked with the trace header in: what spool keeps is what must fit,
	// or the queue would refuse the enqueue, and with it a whole batch.
	if kept := spoolAttributeBytes(attrs); kept > queue.MaxAttributeBytes {
		return nm, r, 0, fail(codeInvalidParameterValue, "the message attributes take %d bytes as spool keeps them, over the %d it keeps with a message", kept, queue.MaxAttributeBytes)
	}
	size = len(body) + attrBytes
	if size > maxBytes {
		return nm, r, 0, fail(codeInvalidParameterValue, "the message is %d bytes with its attributes, over the %d this queue takes", size, maxBytes)
	}
	nm.Body, nm.Attributes = []byte(body), attrs
	if err := rules.apply(m, &nm); err != nil {
		return nm, r, 0, err
	}
	r.MD5OfMessageBody = MD5OfBody(nm.Body)
	r.MD5OfMessageAttributes = MD5OfMessageAttributes(userAttrs)
	return nm, r, size, nil
}

// toSpoolAttributes checks SQS message attributes and returns them as
// spool attributes, as MessageAttributes for the digest, and their size.
func toSpoolAttributes(in map[string]attributeValue) (map[string]string, []MessageAttribute, int, error) {
	if len(in) == 0 {
		return nil, nil, 0, nil
	}
	if len(in) > maxMessageAttributes {
		return nil, nil, 0, fail(codeInvalidParameterValue, "%d message attributes: at most %d", len(in), maxMessageAttributes)
	}
	out := make(map[string]string, len(in))
	digest := make([]MessageAttribute, 0, len(in))
	size := 0
	for name, v := range in {
		if err := checkAttributeName(name); err != nil {
			return nil, nil, 0, err
		}
		base, _, _ := strings.Cut(v.DataType, ".")
		if len(v.DataType) > maxDataTypeLen || (base != "String" && base != "Number" && base != "Binary") {
			return nil, nil, 0, fail(codeInvalidParameterValue, "message attribute %q: DataType %q must be String, Number or Binary, optionally with .label", name, v.DataType)
		}
		if v.StringListValues != nil || v.BinaryListValues != nil {
			return nil, nil, 0, fail(codeInvalidParameterValue, "message attribute %q: list values are reserved by SQS and not supported", name)
		}
		a := MessageAttribute{Name: name, DataType: v.DataType}
		switch base {
		case "Binary":
			if len(v.BinaryValue) == 0 {
				return nil, nil, 0, fail(codeInvalidParameterValue, "message attribute %q must contain a non-empty BinaryValue", name)
			}
			a.BinaryValue = v.BinaryValue
			out[name] = base64.StdEncoding.EncodeToString(v.BinaryValue)
			size += len(v.BinaryValue)
		default:
			if v.StringValue == nil || *v.StringValue == "" {
				return nil, nil, 0, fail(codeInvalidParameterValue, "message attribute %q must contain a non-empty StringValue", name)
			}
			s := *v.StringValue
			if base == "Number" {
				if !validNumber(s) {
					return nil, nil, 0, fail(codeInvalidParameterValue, "message attribute %q: %q is not a number", name, s)
				}
			} else if !validText(s) {
				return nil, nil, 0, fail(codeInvalidParameterValue, "message attribute %q holds characters SQS does not allow", name)
			}
			a.StringValue = s
			out[name] = s
			size += len(s)
		}
		if v.DataType != "String" {
			out[typeKeyPrefix+name] = v.DataType
		}
		size += len(name) + len(v.DataType)
		digest = append(digest, a)
	}
	return out, digest, size, nil
}

// spoolAttributeBytes is what attrs count against queue.MaxAttributeBytes.
func spoolAttributeBytes(attrs map[string]string) int {
	n := 0
	for k, v := range attrs {
		n += len(k) + len(v)
	}
	return n
}

// checkAttributeName applies SQS's rules for a message attribute's name.
func checkAttributeName(name string) error {
	lower := strings.ToLower(name)
	switch {
	case len(name) == 0 || len(name) > maxAttributeNameLen || !attributeNameRE.MatchString(name):
		return fail(codeInvalidParameterValue, "message attribute name %q: use 1-%d of A-Z a-z 0-9 _ - .", name, maxAttributeNameLen)
	case strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") || strings.Contains(name, ".."):
		return fail(codeInvalidParameterValue, "message attribute name %q may not start or end with a dot or hold two in a row", name)
	case strings.HasPrefix(lower, "aws.") || strings.HasPrefix(lower, "amazon."):
		return fail(codeInvalidParameterValue, "message attribute name %q: the AWS. and Amazon. prefixes are reserved", name)
	}
	return nil
}

// maxNumberDigits is the precision of SQS's Number type.
const maxNumberDigits = 38

// validNumber says whether s is a Number SQS takes: a decimal of at most
// 38 significant digits (its range, 10^-128 to 10^126, is not checked).
func validNumber(s string) bool {
	if !numberRE.MatchString(s) {
		return false
	}
	mantissa, _, _ := strings.Cut(strings.ToLower(s), "e")
	digits := strings.TrimLeft(strings.NewReplacer(".", "", "+", "", "-", "").Replace(mantissa), "0")
	return len(digits) <= maxNumberDigits
}

// validText says whether s is text SQS carries: UTF-8 of #x9, #xA, #xD,
// #x20-#xD7FF, #xE000-#xFFFD and #x10000-#x10FFFF (XML's characters).
func validText(s string) bool {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if !sqsRune(r, n) {
			return false
		}
		i += n
	}
	return true
}

func sqsRune(r rune, size int) bool {
	switch {
	case r == utf8.RuneError && size <= 1:
		return false
	case r == 0x9 || r == 0xA || r == 0xD:
		return true
	case r < 0x20:
		return false
	case r <= 0xD7FF, r >= 0xE000 && r <= 0xFFFD, r >= 0x10000 && r <= 0x10FFFF:
		return true
	}
	return false
}

// sqsText is b as text SQS can carry: a message enqueued through another
// protocol may hold bytes SQS cannot (invalid UTF-8, control characters),
// which become U+FFFD; the reply's MD5OfBody is that of the text sent.
func sqsText(b []byte) string {
	s := string(b)
	if validText(s) {
		return s
	}
	var out strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if sqsRune(r, n) {
			out.WriteString(s[i : i+n])
		} else {
			out.WriteRune(utf8.RuneError)
		}
		i += n
	}
	return out.String()
}

type sendMessageInput struct {
	queueURLInput
	message
}

func (c *call) sendMessage() (any, error) {
	var in sendMessageInput
	q, err := c.decodeQueue(&in)
	if err != nil {
		return nil, err
	}
	rules := rulesOf(q)
	nm, r, _, err := c.h.prepare(in.message, c.h.maxMessageBytes(q), rules)
	if err != nil {
		return nil, err
	}
	ids, err := q.Enqueue([]queue.NewMessage{nm})
	if err != nil {
		return nil, err
	}
	r.MessageId = messageID(ids[0])
	if rules.fifo {
		r.SequenceNumber = sequenceNumber(ids[0])
	}
	return r, nil
}

// messageID is a spool message id as SQS's MessageId.
func messageID(id uint64) string { return strconv.FormatUint(id, 10) }

// batchError is a failed batch entry.
type batchError struct {
	Id          string
	SenderFault bool
	Code        string
	Message     string
}

// entryError is the failed entry id gets for err.
func entryError(id string, err error) batchError {
	e, _ := asAPIError(err)
	return batchError{Id: id, SenderFault: e.code.sender, Code: e.code.queryCode, Message: e.msg}
}

// checkBatch applies SQS's rules for a batch's entry ids.
func checkBatch(ids []string) error {
	switch {
	case len(ids) == 0:
		return fail(codeEmptyBatch, "there should be at least one entry in the request")
	case len(ids) > maxBatchEntries:
		return fail(codeTooManyEntries, "%d entries: a batch takes at most %d", len(ids), maxBatchEntries)
	}
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if !batchEntryIDRE.MatchString(id) {
			return fail(codeInvalidBatchEntryID, "batch entry id %q: use 1-80 of A-Z a-z 0-9 _ -", id)
		}
		if seen[id] {
			return fail(codeBatchIDsNotDistinct, "batch entry id %q appears twice", id)
		}
		seen[id] = true
	}
	return nil
}

type sendBatchEntry struct {
	Id string
	message
}

type sendBatchResultEntry struct {
	Id string
	sendReceipt
}

func (c *call) sendMessageBatch() (any, error) {
	var in struct {
		queueURLInput
		Entries []sendBatchEntry
	}
	q, err := c.decodeQueue(&in)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(in.Entries))
	for i, e := range in.Entries {
		ids[i] = e.Id
	}
	if err := checkBatch(ids); err != nil {
		return nil, err
	}
	res := struct {
		Successful []sendBatchResultEntry `xml:"SendMessageBatchResultEntry"`
		Failed     []batchError           `xml:"BatchResultErrorEntry"`
	}{Successful: []sendBatchResultEntry{}, Failed: []batchError{}}
	var msgs []queue.NewMessage
	var ok []sendBatchResultEntry
	total := 0
	maxBytes := c.h.maxMessageBytes(q)
	// A batch's total is bounded by the service's limit, as SQS bounds it,
	// not by the queue's MaximumMessageSize, which is per message.
	maxBatchBytes := min(c.h.cfg.MaxMessageBytes, maxMaximumMessageSize)
	rules := rulesOf(q)
	for _, e := range in.Entries {
		nm, r, size, err := c.h.prepare(e.message, maxBytes, rules)
		if err != nil {
			res.Failed = append(res.Failed, entryError(e.Id, err))
			continue
		}
		total += size
		msgs = append(msgs, nm)
		ok = append(ok, sendBatchResultEntry{Id: e.Id, sendReceipt: r})
	}
	if total > maxBatchBytes {
		return nil, fail(codeBatchRequestTooLong, "the batch's messages are %d bytes together, over the %d a batch takes", total, maxBatchBytes)
	}
	if len(msgs) > 0 {
		// One enqueue, so the batch shares one fsync.
		got, err := q.Enqueue(msgs)
		if err != nil {
			return nil, err
		}
		for i := range ok {
			ok[i].MessageId = messageID(got[i])
			if rules.fifo {
				ok[i].SequenceNumber = sequenceNumber(got[i])
			}
		}
		res.Successful = ok
	}
	return res, nil
}

type receivedMessage struct {
	MessageId              string
	ReceiptHandle          string
	MD5OfBody              string
	Body                   string
	Attributes             nameValues        `json:",omitempty" xml:"Attribute"`
	MD5OfMessageAttributes string            `json:",omitempty" xml:",omitempty"`
	MessageAttributes      messageAttributes `json:",omitempty" xml:"MessageAttribute"`
}

func (c *call) receiveMessage() (any, error) {
	var in struct {
		queueURLInput
		MaxNumberOfMessages         *number
		VisibilityTimeout           *number
		WaitTimeSeconds             *number
		AttributeNames              []string
		MessageSystemAttributeNames []string
		MessageAttributeNames       []string
		ReceiveRequestAttemptId     string
	}
	q, err := c.decodeQueue(&in)
	if err != nil {
		return nil, err
	}
	// The int64 is checked before it becomes an int: on a 32-bit build a
	// huge value would wrap into range.
	n := in.MaxNumberOfMessages.or(1)
	if n < 1 || n > maxReceiveMessages {
		return nil, fail(codeInvalidParameterValue, "MaxNumberOfMessages %d must be from 1 to %d", n, maxReceiveMessages)
	}
	o := queue.ReceiveOptions{Max: int(n)}
	if wait := in.WaitTimeSeconds.or(attrSetting(q.Attributes(), keyReceiveWait, 0)); wait < 0 || wait > maxWaitSeconds {
		return nil, fail(codeInvalidParameterValue, "WaitTimeSeconds %d must be from 0 to %d", wait, maxWaitSeconds)
	} else {
		o.Wait = min(time.Duration(wait)*time.Second, c.h.cfg.MaxWait)
	}
	if in.VisibilityTimeout != nil {
		v := in.VisibilityTimeout.v
		if v < 0 || v > maxVisibilitySeconds {
			return nil, fail(codeInvalidParameterValue, "VisibilityTimeout %d must be from 0 to %d", v, maxVisibilitySeconds)
		}
		o.Visibility = seconds(v)
	}
	ctx, cancel := context.WithCancel(c.r.Context())
	defer cancel()
	if c.h.cfg.Closing != nil {
		defer context.AfterFunc(c.h.cfg.Closing, cancel)()
	}
	serial, err := q.Serial()
	if err != nil {
		return nil, err
	}
	fifo := q.Ordered()
	msgs, err := q.Receive(ctx, o)
	if err != nil && !errors.Is(err, context.Canceled) {
		return nil, err
	}
	system := wanted(append(in.AttributeNames, in.MessageSystemAttributeNames...))
	user := wanted(in.MessageAttributeNames)
	out := make([]receivedMessage, 0, len(msgs))
	for _, m := range msgs {
		body := sqsText(m.Body)
		rm := receivedMessage{MessageId: messageID(m.ID), ReceiptHandle: receiptHandle(serial, m.Receipt), MD5OfBody: MD5OfBody([]byte(body)), Body: body}
		rm.Attributes = systemAttributes(m, system, fifo)
		rm.MessageAttributes, rm.MD5OfMessageAttributes = messageAttributesOf(m.Attributes, user)
		out = append(out, rm)
	}
	return struct {
		Messages []receivedMessage `json:",omitempty" xml:"Message"`
	}{out}, nil
}

// nameFilter is a receive's list of attribute names: All (or .*), names,
// and prefixes (name.*).
type nameFilter struct {
	all      bool
	names    map[string]bool
	prefixes []string
}

func wanted(names []string) nameFilter {
	f := nameFilter{names: map[string]bool{}}
	for _, n := range names {
		switch {
		case n == "All" || n == ".*":
			f.all = true
		case strings.HasSuffix(n, ".*"):
			f.prefixes = append(f.prefixes, strings.TrimSuffix(n, "*"))
		default:
			f.names[n] = true
		}
	}
	return f
}

func (f nameFilter) has(name string) bool {
	if f.all || f.names[name] {
		return true
	}
	for _, p := range f.prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// systemAttributes are the message's system attributes a receive asked
// for. spool keeps no first-receive time or sender, so those are left out.
func systemAttributes(m queue.Message, f nameFilter, fifo bool) nameValues {
	out := nameValues{}
	if fifo {
		if m.Group != "" && f.has("MessageGroupId") {
			out["MessageGroupId"] = m.Group
		}
		if m.DedupID != "" && f.has("MessageDeduplicationId") {
			out["MessageDeduplicationId"] = dedupIDOf(m.DedupID)
		}
		if f.has("SequenceNumber") {
			out["SequenceNumber"] = sequenceNumber(m.ID)
		}
	}
	if f.has("SentTimestamp") {
		out["SentTimestamp"] = strconv.FormatInt(m.EnqueuedAt.UnixMilli(), 10)
	}
	if f.has("ApproximateReceiveCount") {
		out["ApproximateReceiveCount"] = strconv.Itoa(m.Attempts)
	}
	if t, ok := m.Attributes[traceKey]; ok && f.has("AWSTraceHeader") {
		out["AWSTraceHeader"] = t
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// messageAttributesOf turns a message's spool attributes back into the
// SQS message attributes the filter asks for, with their digest.
func messageAttributesOf(attrs map[string]string, f nameFilter) (messageAttributes, string) {
	var out messageAttributes
	var digest []MessageAttribute
	for name, v := range attrs {
		if strings.HasPrefix(name, reservedPrefix) || !f.has(name) {
			continue
		}
		a := MessageAttribute{Name: name, DataType: "String", StringValue: sqsText([]byte(v))}
		if dt, ok := attrs[typeKeyPrefix+name]; ok {
			a.DataType = dt
			if isBinaryType(dt) {
				if b, err := base64.StdEncoding.DecodeString(v); err == nil {
					a.StringValue, a.BinaryValue = "", b
				} else {
					a.DataType = "String" // not what an SQS send kept: give it as text
				}
			}
		}
		if out == nil {
			out = messageAttributes{}
		}
		av := attributeValue{DataType: a.DataType, BinaryValue: a.BinaryValue}
		if a.BinaryValue == nil {
			av.StringValue = ptr(a.StringValue)
		}
		out[name] = av
		digest = append(digest, a)
	}
	return out, MD5OfMessageAttributes(digest)
}

// receiptHandle is a received message's ReceiptHandle: the queue's
// serial, a dash, then spool's receipt ("7-42.3"). The serial ties the
// handle to its queue: a bare id.attempt would name a message of whatever
// queue the request points at, and SQS refuses another queue's handle.
func receiptHandle(serial uint32, r queue.Receipt) string {
	return strconv.FormatUint(uint64(serial), 10) + "-" + r.String()
}

// receipt parses a ReceiptHandle given for q, refusing one that is
// malformed or was handed out by another queue.
func receipt(q *queue.Queue, handle string) (queue.Receipt, error) {
	if handle == "" {
		return queue.Receipt{}, fail(codeMissingParameter, "the request must contain the parameter ReceiptHandle")
	}
	invalid := fail(codeReceiptHandleIsInvalid, "the receipt handle %q is not valid for this queue", handle)
	serialText, rest, ok := strings.Cut(handle, "-")
	serial, err := strconv.ParseUint(serialText, 10, 32)
	if !ok || err != nil {
		return queue.Receipt{}, invalid
	}
	own, err := q.Serial()
	if err != nil {
		return queue.Receipt{}, err
	}
	r, err := queue.ParseReceipt(rest)
	if err != nil || uint32(serial) != own {
		return queue.Receipt{}, invalid
	}
	return r, nil
}

// ackOutcome maps one ack's result to SQS's: DeleteMessage succeeds for
// a message that is gone already, and for a receipt handle that is not the
// message's latest (received again since, or its lease ran out), without
// deleting it, as SQS documents ("the request succeeds, but the message
// will not be deleted"). Only a malformed handle is an error (receipt).
func ackOutcome(err error) error {
	if errors.Is(err, queue.ErrNotFound) || errors.Is(err, queue.ErrStaleReceipt) {
		return nil
	}
	return err
}

func (c *call) deleteMessage() (any, error) {
	var in struct {
		queueURLInput
		ReceiptHandle string
	}
	q, err := c.decodeQueue(&in)
	if err != nil {
		return nil, err
	}
	r, err := receipt(q, in.ReceiptHandle)
	if err != nil {
		return nil, err
	}
	errs, err := q.Ack([]queue.Receipt{r})
	if err != nil {
		return nil, err
	}
	return nil, ackOutcome(errs[0])
}

type idResult struct{ Id string }

type receiptEntry struct {
	Id, ReceiptHandle string
	VisibilityTimeout *number // ChangeMessageVisibilityBatch's only
}

// receiptBatch decodes a batch of receipt entries (DeleteMessageBatch's,
// ChangeMessageVisibilityBatch's) and checks them: the queue, the valid
// entries with their receipts, and a failure for each malformed handle.
func (c *call) receiptBatch() (q *queue.Queue, valid []receiptEntry, receipts []queue.Receipt, failed []batchError, err error) {
	var in struct {
		queueURLInput
		Entries []receiptEntry
	}
	if q, err = c.decodeQueue(&in); err != nil {
		return nil, nil, nil, nil, err
	}
	ids := make([]string, len(in.Entries))
	for i, e := range in.Entries {
		ids[i] = e.Id
	}
	if err := checkBatch(ids); err != nil {
		return nil, nil, nil, nil, err
	}
	failed = []batchError{}
	for _, e := range in.Entries {
		r, err := receipt(q, e.ReceiptHandle)
		var ae *apiError
		if errors.As(err, &ae) {
			failed = append(failed, entryError(e.Id, err))
			continue
		} else if err != nil {
			return nil, nil, nil, nil, err // the queue failed, not the entry
		}
		valid, receipts = append(valid, e), append(receipts, r)
	}
	return q, valid, receipts, failed, nil
}

func (c *call) deleteMessageBatch() (any, error) {
	q, valid, receipts, failed, err := c.receiptBatch()
	if err != nil {
		return nil, err
	}
	res := struct {
		Successful []idResult   `xml:"DeleteMessageBatchResultEntry"`
		Failed     []batchError `xml:"BatchResultErrorEntry"`
	}{Successful: []idResult{}, Failed: failed}
	if len(receipts) > 0 {
		// One ack, so the batch shares one fsync.
		errs, err := q.Ack(receipts)
		if err != nil {
			return nil, err
		}
		for i, e := range valid {
			if err := ackOutcome(errs[i]); err != nil {
				res.Failed = append(res.Failed, entryError(e.Id, err))
			} else {
				res.Successful = append(res.Successful, idResult{e.Id})
			}
		}
	}
	return res, nil
}

// changeVisibility sets one lease's visibility: extended to now + v, or
// with v = 0 ended, the message ready again at once (the front of the
// queue, as a lease that ends does).
func changeVisibility(q *queue.Queue, r queue.Receipt, handle string, v *number) error {
	if v == nil {
		return fail(codeMissingParameter, "the request must contain the parameter VisibilityTimeout")
	}
	if v.v < 0 || v.v > maxVisibilitySeconds {
		return fail(codeInvalidParameterValue, "VisibilityTimeout %d must be from 0 to %d", v.v, maxVisibilitySeconds)
	}
	var errs []error
	var err error
	if v.v == 0 {
		errs, err = q.Nack([]queue.Receipt{r}, queue.NackOptions{Front: true})
	} else {
		errs, err = q.Extend([]queue.Receipt{r}, time.Duration(v.v)*time.Second)
	}
	if err != nil {
		return err
	}
	if errors.Is(errs[0], queue.ErrNotFound) || errors.Is(errs[0], queue.ErrStaleReceipt) {
		return fail(codeMessageNotInflight, "the message of receipt handle %q is not in flight under it", handle)
	}
	return errs[0]
}

func (c *call) changeMessageVisibility() (any, error) {
	var in struct {
		queueURLInput
		ReceiptHandle     string
		VisibilityTimeout *number
	}
	q, err := c.decodeQueue(&in)
	if err != nil {
		return nil, err
	}
	r, err := receipt(q, in.ReceiptHandle)
	if err != nil {
		return nil, err
	}
	return nil, changeVisibility(q, r, in.ReceiptHandle, in.VisibilityTimeout)
}

func (c *call) changeMessageVisibilityBatch() (any, error) {
	q, valid, receipts, failed, err := c.receiptBatch()
	if err != nil {
		return nil, err
	}
	res := struct {
		Successful []idResult   `xml:"ChangeMessageVisibilityBatchResultEntry"`
		Failed     []batchError `xml:"BatchResultErrorEntry"`
	}{Successful: []idResult{}, Failed: failed}
	for i, e := range valid {
		if err := changeVisibility(q, receipts[i], e.ReceiptHandle, e.VisibilityTimeout); err != nil {
			var ae *apiError
			if !errors.As(err, &ae) {
				return nil, err // the queue failed, not the entry
			}
			res.Failed = append(res.Failed, entryError(e.Id, err))
			continue
		}
		res.Successful = append(res.Successful, idResult{e.Id})
	}
	return res, nil
}
