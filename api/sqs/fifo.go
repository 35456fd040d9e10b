package sqs

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"

	"github.com/spoolq/spool/queue"
)

// FIFO queues are spool's ordered queues (queue.CreateOptions.Ordered):
// a message's MessageGroupId is its group, so a group's messages are
// received in order and none while one of the group is in flight, and
// its deduplication id is the queue's deduplication key, remembered for
// queue.DedupWindow (SQS's five minutes) across restarts. With
// DeduplicationScope messageGroup the key is the group, a newline, then
// the id (neither can hold a newline), so equal ids of two groups differ.
// ContentBasedDeduplication makes the id the SHA-256 of the body, as
// SQS does. SequenceNumber is the message id, zero-padded to 20 digits:
// it grows within a group, as SQS's does, and a duplicate gets the
// first's. FifoThroughputLimit is kept and reported, and changes nothing
// (spool has no throughput quotas). ReceiveRequestAttemptId is accepted
// and not used: a retried receive gets whatever is available then.

// The FIFO attributes, and what spool keeps of them in the queue's
// attributes (each absent at its default).
const (
	attrContentBasedDedup  = "ContentBasedDeduplication"
	attrDeduplicationScope = "DeduplicationScope"
	attrFifoThroughput     = "FifoThroughputLimit"

	keyContentBasedDedup  = reservedPrefix + attrContentBasedDedup
	keyDeduplicationScope = reservedPrefix + attrDeduplicationScope
	keyFifoThroughput     = reservedPrefix + attrFifoThroughput

	fifoSuffix      = ".fifo"
	maxFifoIDLength = 128
)

// fifoIDRE is what a MessageGroupId or MessageDeduplicationId may hold:
// letters, digits and punctuation.
var fifoIDRE = regexp.MustCompile("^[A-Za-z0-9!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~]{1,128}$")

// fifoAttributes are the FIFO attributes: the attribute key spool keeps
// each under, and the two values it may take, its default first (the
// queue keeps none while it is at the default).
var fifoAttributes = map[string]struct {
	key    string
	values [2]string
}{
	attrContentBasedDedup:  {keyContentBasedDedup, [2]string{"false", "true"}},
	attrDeduplicationScope: {keyDeduplicationScope, [2]string{"queue", "messageGroup"}},
	attrFifoThroughput:     {keyFifoThroughput, [2]string{"perQueue", "perMessageGroupId"}},
}

// fifoSetting applies one FIFO attribute to st: only a FIFO queue has
// them.
func (st *settings) fifoSetting(name, v string, fifo bool) error {
	if !fifo {
		return fail(codeInvalidAttributeName, "%s is a FIFO queue's attribute", name)
	}
	a := fifoAttributes[name]
	switch v {
	case a.values[0]:
		st.remove = append(st.remove, a.key)
	case a.values[1]:
		st.set[a.key] = v
	default:
		return fail(codeInvalidAttributeValue, "invalid value for the parameter %s: %q (%s or %s)", name, v, a.values[0], a.values[1])
	}
	return nil
}

// fifoAttribute is a FIFO queue's value of a FIFO attribute.
func fifoAttribute(attrs map[string]string, name string) string {
	a := fifoAttributes[name]
	if v, ok := attrs[a.key]; ok {
		return v
	}
	return a.values[0]
}

// fifoName says whether name is a FIFO queue's (ends in .fifo) and checks
// it as SQS does: 1-80 characters, of A-Z a-z 0-9 _ - before the suffix.
func fifoName(name string) (fifo bool, ok bool) {
	base, fifo := strings.CutSuffix(name, fifoSuffix)
	return fifo, len(name) <= queue.MaxNameLength && sqsNameRE.MatchString(base)
}

// sendRules are what a send to one queue checks and does beyond SQS's
// common rules: a FIFO queue's group and deduplication.
type sendRules struct {
	fifo, contentDedup, groupScope bool
}

func rulesOf(q *queue.Queue) sendRules {
	if !q.Ordered() {
		return sendRules{}
	}
	attrs := q.Attributes()
	return sendRules{
		fifo:         true,
		contentDedup: fifoAttribute(attrs, attrContentBasedDedup) == "true",
		groupScope:   fifoAttribute(attrs, attrDeduplicationScope) == "messageGroup",
	}
}

// apply checks m against the rules and sets nm's group and key.
func (r sendRules) apply(m message, nm *queue.NewMessage) error {
	if !r.fifo {
		if m.MessageDeduplicationId != "" {
			return fail(codeInvalidParameterValue, "MessageDeduplicationId is for FIFO queues; this is a standard queue")
		}
		return nil // a MessageGroupId is accepted (SQS's fair queues) and not kept
	}
	switch {
	case m.MessageGroupId == "":
		return fail(codeMissingParameter, "the request must contain the parameter MessageGroupId")
	case !fifoIDRE.MatchString(m.MessageGroupId):
		return fail(codeInvalidParameterValue, "MessageGroupId %q: 1-%d letters, digits and punctuation", m.MessageGroupId, maxFifoIDLength)
	case m.MessageDeduplicationId != "" && !fifoIDRE.MatchString(m.MessageDeduplicationId):
		return fail(codeInvalidParameterValue, "MessageDeduplicationId %q: 1-%d letters, digits and punctuation", m.MessageDeduplicationId, maxFifoIDLength)
	case m.DelaySeconds != nil && m.DelaySeconds.v != 0:
		return fail(codeInvalidParameterValue, "DelaySeconds %d: a FIFO queue's messages take the queue's delay, not their own", m.DelaySeconds.v)
	}
	dedup := m.MessageDeduplicationId
	if dedup == "" {
		if !r.contentDedup {
			return fail(codeInvalidParameterValue, "the queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly")
		}
		sum := sha256.Sum256(nm.Body)
		dedup = hex.EncodeToString(sum[:])
	}
	nm.Delay = nil // the queue's
	nm.Group, nm.DedupID = m.MessageGroupId, dedup
	if r.groupScope {
		nm.DedupID = m.MessageGroupId + "\n" + dedup
	}
	return nil
}

// dedupIDOf is the MessageDeduplicationId a key was made from.
func dedupIDOf(key string) string {
	if i := strings.LastIndexByte(key, '\n'); i >= 0 {
		return key[i+1:]
	}
	return key
}

// sequenceNumber is a FIFO message's SequenceNumber.
func sequenceNumber(id uint64) string { return fmt.Sprintf("%020d", id) }
