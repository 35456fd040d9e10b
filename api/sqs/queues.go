package sqs

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spoolq/spool/queue"
)

// actions are the operations spool serves, by SQS action name.
var actions = map[string]func(*call) (any, error){
	"CreateQueue":                  (*call).createQueue,
	"DeleteQueue":                  (*call).deleteQueue,
	"GetQueueUrl":                  (*call).getQueueURL,
	"ListQueues":                   (*call).listQueues,
	"PurgeQueue":                   (*call).purgeQueue,
	"GetQueueAttributes":           (*call).getQueueAttributes,
	"SetQueueAttributes":           (*call).setQueueAttributes,
	"ListDeadLetterSourceQueues":   (*call).listDeadLetterSourceQueues,
	"ListQueueTags":                (*call).listQueueTags,
	"TagQueue":                     (*call).tagQueue,
	"UntagQueue":                   (*call).untagQueue,
	"StartMessageMoveTask":         (*call).startMessageMoveTask,
	"ListMessageMoveTasks":         (*call).listMessageMoveTasks,
	"CancelMessageMoveTask":        (*call).cancelMessageMoveTask,
	"SendMessage":                  (*call).sendMessage,
	"SendMessageBatch":             (*call).sendMessageBatch,
	"ReceiveMessage":               (*call).receiveMessage,
	"DeleteMessage":                (*call).deleteMessage,
	"DeleteMessageBatch":           (*call).deleteMessageBatch,
	"ChangeMessageVisibility":      (*call).changeMessageVisibility,
	"ChangeMessageVisibilityBatch": (*call).changeMessageVisibilityBatch,
}

// unsupported are SQS actions spool knows of and does not serve (yet):
// they are refused with UnsupportedOperation rather than InvalidAction.
var unsupported = map[string]bool{
	"AddPermission": true, "RemovePermission": true, // no IAM
}

// sqsNameRE is SQS's rule for a new queue's name (spool's own rule also
// allows dots, so every SQS name is a spool name).
var sqsNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)

// defaultRetention is SQS's MessageRetentionPeriod when a CreateQueue
// gives none: 4 days.
const defaultRetention = 4 * 24 * time.Hour

// queueURL is the URL clients use for the queue named name.
func (c *call) queueURL(name string) string {
	scheme := "http"
	if c.r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + c.r.Host + "/" + c.h.cfg.AccountID + "/" + name
}

// arn is the queue's ARN, as QueueArn and RedrivePolicy name it.
func (h *Handler) arn(name string) string {
	return "arn:aws:sqs:" + h.cfg.Region + ":" + h.cfg.AccountID + ":" + name
}

// queueName reads the queue a QueueUrl names: the last part of its path.
// A query-protocol request posted to the queue's URL may leave QueueUrl
// out.
func (c *call) queueName(queueURL string) (string, error) {
	if queueURL == "" && c.proto == protoQuery && c.r.URL.Path != "/" {
		queueURL = c.r.URL.Path
	}
	if queueURL == "" {
		return "", fail(codeMissingParameter, "the request must contain the parameter QueueUrl")
	}
	u, err := url.Parse(queueURL)
	if err != nil {
		return "", fail(codeInvalidAddress, "QueueUrl %q is not a URL", queueURL)
	}
	name := u.Path[strings.LastIndexByte(u.Path, '/')+1:]
	if !queue.ValidName(name) {
		return "", fail(codeQueueDoesNotExist, "The specified queue does not exist: %q names none", queueURL)
	}
	return name, nil
}

// queue returns the queue a QueueUrl names.
func (c *call) queue(queueURL string) (*queue.Queue, error) {
	name, err := c.queueName(queueURL)
	if err != nil {
		return nil, err
	}
	return c.h.cfg.Broker.Queue(name)
}

// queueURLInput is the QueueUrl of an action's parameters; embedded in
// them, it lets decodeQueue find the queue.
type queueURLInput struct{ QueueUrl string }

func (in *queueURLInput) queueURLOf() string { return in.QueueUrl }

// decodeQueue decodes the action's parameters into in and returns the
// queue their QueueUrl names.
func (c *call) decodeQueue(in interface{ queueURLOf() string }) (*queue.Queue, error) {
	if err := c.decode(in); err != nil {
		return nil, err
	}
	return c.queue(in.queueURLOf())
}

type queueURLResult struct{ QueueUrl string }

type createQueueInput struct {
	QueueName  string
	Attributes map[string]string
	Tags       map[string]string `json:"tags"`
}

func (c *call) createQueue() (any, error) {
	var in createQueueInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	fifo, nameOK := fifoName(in.QueueName)
	switch fifoAttr := in.Attributes[attrFifoQueue]; {
	case in.QueueName == "":
		return nil, fail(codeMissingParameter, "the request must contain the parameter QueueName")
	case !nameOK:
		return nil, fail(codeInvalidParameterValue, "queue name %q: use 1-80 of A-Z a-z 0-9 _ -, and a FIFO queue's ends in .fifo", in.QueueName)
	case fifoAttr != "" && fifoAttr != "true" && fifoAttr != "false":
		return nil, fail(codeInvalidAttributeValue, "invalid value for the parameter FifoQueue: %q (true or false)", fifoAttr)
	case fifo != (fifoAttr == "true"):
		return nil, fail(codeInvalidParameterValue, "a FIFO queue has FifoQueue true and a name ending in .fifo, a standard queue neither (%q, FifoQueue %q)", in.QueueName, fifoAttr)
	}
	st, err := c.h.settings(in.Attributes, fifo)
	if err != nil {
		return nil, err
	}
	tags, err := tagAttributes(in.Tags)
	if err != nil {
		return nil, err
	}
	maps.Copy(st.set, tags)
	u := st.u
	// What SQS gives a queue created without them: messages retried until
	// they expire (no redrive policy) and kept 4 days.
	if u.MaxAttempts == nil {
		u.MaxAttempts = ptr(queue.MaxMaxAttempts)
	}
	if u.Retention == nil {
		u.Retention = ptr(defaultRetention)
	}
	// Create-only, the attributes in the same queue.json: an existing
	// queue is answered for only if it matches what was asked (compared
	// against st, not the defaults), and is never changed.
	q, err := c.h.cfg.Broker.CreateNew(in.QueueName, u, queue.CreateOptions{Attributes: st.set, Ordered: fifo})
	if errors.Is(err, queue.ErrQueueExists) {
		if q.Ordered() != fifo || st.differ(q) {
			return nil, fail(codeQueueNameExists, "a queue named %q exists with other attribute values", in.QueueName)
		}
		err = nil
	}
	if err != nil {
		return nil, err
	}
	return queueURLResult{c.queueURL(in.QueueName)}, nil
}

// settings are what CreateQueue's or SetQueueAttributes' attributes
// change: the queue's config, and the attributes spool keeps for SQS with
// the queue (set, and removed where set back to the default).
type settings struct {
	u      queue.ConfigUpdate
	set    map[string]string
	remove []string
}

// differ says whether applying st would change q.
func (st settings) differ(q *queue.Queue) bool {
	cfg, u := q.Config(), st.u
	ne := func(p *time.Duration, v time.Duration) bool { return p != nil && *p != v }
	if ne(u.VisibilityTimeout, cfg.VisibilityTimeout) || ne(u.Delay, cfg.Delay) || ne(u.Retention, cfg.Retention) ||
		(u.MaxAttempts != nil && *u.MaxAttempts != cfg.MaxAttempts) ||
		(u.DeadLetterQueue != nil && *u.DeadLetterQueue != cfg.DeadLetterQueue) {
		return true
	}
	have := q.Attributes()
	for k, v := range st.set {
		if have[k] != v {
			return true
		}
	}
	for _, k := range st.remove {
		if _, ok := have[k]; ok {
			return true
		}
	}
	return false
}

func ptr[T any](v T) *T { return &v }

func (c *call) deleteQueue() (any, error) {
	var in queueURLInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	name, err := c.queueName(in.QueueUrl)
	if err != nil {
		return nil, err
	}
	return nil, c.h.cfg.Broker.Delete(name)
}

func (c *call) getQueueURL() (any, error) {
	var in struct{ QueueName, QueueOwnerAWSAccountId string }
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	switch {
	case in.QueueName == "":
		return nil, fail(codeMissingParameter, "the request must contain the parameter QueueName")
	case !queue.ValidName(in.QueueName):
		// No queue can have the name, so none has it: SQS's answer, not
		// spool's invalid-name error.
		return nil, fail(codeQueueDoesNotExist, "The specified queue does not exist: no queue can be named %q", in.QueueName)
	}
	if _, err := c.h.cfg.Broker.Queue(in.QueueName); err != nil {
		return nil, err
	}
	return queueURLResult{c.queueURL(in.QueueName)}, nil
}

func (c *call) purgeQueue() (any, error) {
	var in queueURLInput
	q, err := c.decodeQueue(&in)
	if err != nil {
		return nil, err
	}
	return nil, q.Purge()
}

// maxListResults is SQS's most queues in one ListQueues reply.
const maxListResults = 1000

type listQueuesInput struct {
	QueueNamePrefix string
	MaxResults      *number
	NextToken       string
}

type listQueuesResult struct {
	QueueUrls []string `json:",omitempty" xml:"QueueUrl"`
	NextToken string   `json:",omitempty" xml:",omitempty"`
}

func (c *call) listQueues() (any, error) {
	var in listQueuesInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	var names []string
	for _, info := range c.h.cfg.Broker.List() {
		if strings.HasPrefix(info.Name, in.QueueNamePrefix) {
			names = append(names, info.Name)
		}
	}
	return c.page(names, in.MaxResults, in.NextToken)
}

// page returns a page of queue URLs from sorted names: MaxResults of them
// after NextToken (the last name of the page before), with a NextToken
// when more follow. Without MaxResults it is the first 1000, as SQS does.
func (c *call) page(names []string, maxResults *number, token string) (listQueuesResult, error) {
	slices.Sort(names)
	limit := maxResults.or(maxListResults)
	if limit < 1 || limit > maxListResults {
		return listQueuesResult{}, fail(codeInvalidParameterValue, "MaxResults %d must be between 1 and %d", limit, maxListResults)
	}
	if maxResults == nil && token != "" {
		return listQueuesResult{}, fail(codeInvalidParameterValue, "NextToken needs MaxResults")
	}
	if token != "" {
		after, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil {
			return listQueuesResult{}, fail(codeInvalidParameterValue, "NextToken %q is not one spool gave", token)
		}
		i, _ := slices.BinarySearch(names, string(after)+"\x00")
		names = names[i:]
	}
	var res listQueuesResult
	for _, n := range names[:min(int64(len(names)), limit)] {
		res.QueueUrls = append(res.QueueUrls, c.queueURL(n))
	}
	if maxResults != nil && int64(len(names)) > limit {
		res.NextToken = base64.RawURLEncoding.EncodeToString([]byte(names[limit-1]))
	}
	return res, nil
}

func (c *call) listDeadLetterSourceQueues() (any, error) {
	var in struct {
		queueURLInput
		MaxResults *number
		NextToken  string
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	name, err := c.queueName(in.QueueUrl)
	if err != nil {
		return nil, err
	}
	if _, err := c.h.cfg.Broker.Queue(name); err != nil {
		return nil, err
	}
	var names []string
	for _, info := range c.h.cfg.Broker.List() {
		if info.Err == nil && info.Config.DeadLetterQueue == name {
			names = append(names, info.Name)
		}
	}
	res, err := c.page(names, in.MaxResults, in.NextToken)
	if err != nil {
		return nil, err
	}
	return struct {
		QueueUrls []string `json:"queueUrls" xml:"QueueUrl"`
		NextToken string   `json:",omitempty" xml:",omitempty"`
	}{cmpSlice(res.QueueUrls), res.NextToken}, nil
}

// cmpSlice returns s, or an empty slice for nil (a member SQS always
// sends).
func cmpSlice(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (c *call) listQueueTags() (any, error) {
	var in queueURLInput
	q, err := c.decodeQueue(&in)
	if err != nil {
		return nil, err
	}
	return struct {
		Tags keyValues `json:",omitempty" xml:"Tag"`
	}{tagsOf(q.Attributes())}, nil
}

// Queue attributes. Those spool keeps map onto the queue's config; the
// ones it has no use for (access policies, encryption) are accepted and
// not kept, as the README says.
const (
	attrVisibilityTimeout      = "VisibilityTimeout"
	attrDelaySeconds           = "DelaySeconds"
	attrMessageRetentionPeriod = "MessageRetentionPeriod"
	attrMaximumMessageSize     = "MaximumMessageSize"
	attrReceiveWaitTimeSeconds = "ReceiveMessageWaitTimeSeconds"
	attrRedrivePolicy          = "RedrivePolicy"
	attrQueueArn               = "QueueArn"
	attrApproxMessages         = "ApproximateNumberOfMessages"
	attrApproxMessagesNotVis   = "ApproximateNumberOfMessagesNotVisible"
	attrApproxMessagesDelayed  = "ApproximateNumberOfMessagesDelayed"
	attrSqsManagedSseEnabled   = "SqsManagedSseEnabled"
	attrFifoQueue              = "FifoQueue"
	maxVisibilitySeconds       = 12 * 60 * 60
	maxDelaySeconds            = 15 * 60
	minRetentionSeconds        = 60
	maxRetentionSeconds        = 14 * 24 * 60 * 60
	minMaximumMessageSize      = 1024
	maxMaximumMessageSize      = 1 << 20
	maxWaitSeconds             = 20
	maxWait                    = maxWaitSeconds * time.Second
	visibilityZero             = time.Millisecond
)

// unkeptAttributes are accepted by Create/SetQueueAttributes and not kept.
var unkeptAttributes = map[string]bool{
	"Policy": true, "RedriveAllowPolicy": true, "KmsMasterKeyId": true, "KmsDataKeyReusePeriodSeconds": true,
	attrSqsManagedSseEnabled: true,
}

// settings turns CreateQueue's or SetQueueAttributes' attributes into the
// changes they make, checking each as SQS does.
// fifo says whether they are a FIFO queue's.
func (h *Handler) settings(attrs map[string]string, fifo bool) (settings, error) {
	st := settings{set: map[string]string{}}
	u := &st.u
	for name, v := range attrs {
		switch name {
		case attrVisibilityTimeout:
			s, err := attrInt(name, v, 0, maxVisibilitySeconds)
			if err != nil {
				return st, err
			}
			u.VisibilityTimeout = ptr(seconds(s))
		case attrDelaySeconds:
			s, err := attrInt(name, v, 0, maxDelaySeconds)
			if err != nil {
				return st, err
			}
			u.Delay = ptr(time.Duration(s) * time.Second)
		case attrMessageRetentionPeriod:
			s, err := attrInt(name, v, minRetentionSeconds, maxRetentionSeconds)
			if err != nil {
				return st, err
			}
			u.Retention = ptr(time.Duration(s) * time.Second)
		case attrMaximumMessageSize:
			n, err := attrInt(name, v, minMaximumMessageSize, maxMaximumMessageSize)
			if err != nil {
				return st, err
			}
			st.keep(keyMaximumMessageSize, n, maxMaximumMessageSize)
		case attrReceiveWaitTimeSeconds:
			s, err := attrInt(name, v, 0, maxWaitSeconds)
			if err != nil {
				return st, err
			}
			st.keep(keyReceiveWait, s, 0)
		case attrRedrivePolicy:
			dlq, maxReceive, err := h.parseRedrivePolicy(v, fifo)
			if err != nil {
				return st, err
			}
			u.DeadLetterQueue, u.MaxAttempts = &dlq, &maxReceive
		case attrFifoQueue:
			// CreateQueue checked it against the name; afterwards it can
			// only be said again.
			if v != strconv.FormatBool(fifo) {
				return st, fail(codeInvalidAttributeValue, "FifoQueue is %t and cannot change", fifo)
			}
		case attrContentBasedDedup, attrDeduplicationScope, attrFifoThroughput:
			if err := st.fifoSetting(name, v, fifo); err != nil {
				return st, err
			}
		default:
			if !unkeptAttributes[name] {
				return st, fail(codeInvalidAttributeName, "unknown attribute %s", name)
			}
		}
	}
	return st, nil
}

// The attributes spool keeps with a queue for SQS (queue.SetAttributes):
// settings its config has no field for, each absent while at its default,
// and the queue's tags.
const (
	keyMaximumMessageSize = reservedPrefix + "MaximumMessageSize"
	keyReceiveWait        = reservedPrefix + "ReceiveMessageWaitTimeSeconds"
	tagKeyPrefix          = reservedPrefix + "tag:"
)

// keep sets key to n, or removes it when n is its default.
func (st *settings) keep(key string, n, def int64) {
	if n == def {
		st.remove = append(st.remove, key)
		return
	}
	st.set[key] = strconv.FormatInt(n, 10)
}

// SQS's limits on a queue's tags.
const (
	maxTags        = 50
	maxTagKeyLen   = 128
	maxTagValueLen = 256
)

// tagAttributes checks tags as SQS does and returns them as the queue
// attributes that keep them.
func tagAttributes(tags map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(tags))
	for k, v := range tags {
		if k == "" || len(k) > maxTagKeyLen || len(v) > maxTagValueLen || !utf8.ValidString(k) || !utf8.ValidString(v) {
			return nil, fail(codeInvalidParameterValue, "tag %q: a key of 1-%d bytes and a value of at most %d, UTF-8", k, maxTagKeyLen, maxTagValueLen)
		}
		out[tagKeyPrefix+k] = v
	}
	if len(out) > maxTags {
		return nil, fail(codeInvalidParameterValue, "%d tags: a queue has at most %d", len(out), maxTags)
	}
	return out, nil
}

// tagsOf returns the queue's tags, from its attributes.
func tagsOf(attrs map[string]string) keyValues {
	tags := keyValues{}
	for k, v := range attrs {
		if name, ok := strings.CutPrefix(k, tagKeyPrefix); ok {
			tags[name] = v
		}
	}
	return tags
}

// attrSetting reads one of the settings kept in the queue's attributes,
// def when it has none.
func attrSetting(attrs map[string]string, key string, def int64) int64 {
	if n, err := strconv.ParseInt(attrs[key], 10, 64); err == nil {
		return n
	}
	return def
}

// maxMessageBytes is the largest message q takes: the server's limit, or
// the queue's MaximumMessageSize when that is lower.
func (h *Handler) maxMessageBytes(q *queue.Queue) int {
	return int(min(int64(h.cfg.MaxMessageBytes), attrSetting(q.Attributes(), keyMaximumMessageSize, maxMaximumMessageSize)))
}

func (c *call) tagQueue() (any, error) {
	var in struct {
		queueURLInput
		Tags map[string]string
	}
	q, err := c.decodeQueue(&in)
	if err != nil {
		return nil, err
	}
	if len(in.Tags) == 0 {
		return nil, fail(codeMissingParameter, "the request must contain the parameter Tags")
	}
	set, err := tagAttributes(in.Tags)
	if err != nil {
		return nil, err
	}
	all := tagsOf(q.Attributes())
	maps.Copy(all, in.Tags)
	if len(all) > maxTags {
		return nil, fail(codeInvalidParameterValue, "the queue would have %d tags, at most %d", len(all), maxTags)
	}
	return nil, q.SetAttributes(set, nil)
}

func (c *call) untagQueue() (any, error) {
	var in struct {
		queueURLInput
		TagKeys []string
	}
	q, err := c.decodeQueue(&in)
	if err != nil {
		return nil, err
	}
	if len(in.TagKeys) == 0 {
		return nil, fail(codeMissingParameter, "the request must contain the parameter TagKeys")
	}
	remove := make([]string, len(in.TagKeys))
	for i, k := range in.TagKeys {
		remove[i] = tagKeyPrefix + k
	}
	return nil, q.SetAttributes(nil, remove)
}

// seconds is an SQS visibility timeout as a lease length: 0 (visible again
// at once) is the shortest lease spool has.
func seconds(s int64) time.Duration {
	if s == 0 {
		return visibilityZero
	}
	return time.Duration(s) * time.Second
}

// attrInt parses an integer attribute within [lo, hi].
func attrInt(name, v string, lo, hi int64) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, fail(codeInvalidAttributeValue, "invalid value for the parameter %s: %q (an integer from %d to %d)", name, v, lo, hi)
	}
	return n, nil
}

// redrivePolicy is the JSON RedrivePolicy attribute.
type redrivePolicy struct {
	DeadLetterTargetArn string          `json:"deadLetterTargetArn"`
	MaxReceiveCount     json.RawMessage `json:"maxReceiveCount"` // a number or a string holding one
}

// parseRedrivePolicy reads a RedrivePolicy: its dead-letter queue's name
// and maxReceiveCount. "" removes the policy: no dead-letter queue, and
// messages retried until they expire.
// A FIFO queue's dead-letter queue is a FIFO queue, a standard one's
// standard, as SQS has it.
func (h *Handler) parseRedrivePolicy(v string, fifo bool) (dlq string, maxReceive int, err error) {
	if v == "" {
		return "", queue.MaxMaxAttempts, nil
	}
	var p redrivePolicy
	if err := json.Unmarshal([]byte(v), &p); err != nil {
		return "", 0, fail(codeInvalidAttributeValue, "RedrivePolicy is not JSON: %v", err)
	}
	count := strings.Trim(string(p.MaxReceiveCount), `"`)
	n, err := strconv.Atoi(count)
	if err != nil || n < 1 || n > queue.MaxMaxAttempts {
		return "", 0, fail(codeInvalidAttributeValue, "RedrivePolicy's maxReceiveCount %s must be from 1 to %d", p.MaxReceiveCount, queue.MaxMaxAttempts)
	}
	parts := strings.Split(p.DeadLetterTargetArn, ":")
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "sqs" {
		return "", 0, fail(codeInvalidAttributeValue, "RedrivePolicy's deadLetterTargetArn %q is not an SQS queue ARN", p.DeadLetterTargetArn)
	}
	dlq = parts[5]
	dq, err := h.cfg.Broker.Queue(dlq)
	if err != nil {
		if errors.Is(err, queue.ErrQueueNotFound) {
			return "", 0, fail(codeInvalidAttributeValue, "RedrivePolicy's dead-letter queue %q does not exist", dlq)
		}
		return "", 0, err
	}
	if dq.Ordered() != fifo {
		return "", 0, fail(codeInvalidParameterValue, "the dead-letter queue of a FIFO queue must be a FIFO queue, and of a standard queue a standard queue (%q)", dlq)
	}
	return dlq, n, nil
}

func (c *call) setQueueAttributes() (any, error) {
	var in struct {
		queueURLInput
		Attributes map[string]string
	}
	q, err := c.decodeQueue(&in)
	if err != nil {
		return nil, err
	}
	st, err := c.h.settings(in.Attributes, q.Ordered())
	if err != nil {
		return nil, err
	}
	// One change, checked whole before queue.json is written: a refused
	// value (the queue as its own dead-letter queue, say) changes nothing.
	return nil, q.Change(queue.Change{Config: st.u, SetAttributes: st.set, RemoveAttributes: st.remove})
}

// fifoGettable are the attributes GetQueueAttributes reports for a FIFO
// queue only.
var fifoGettable = []string{attrFifoQueue, attrContentBasedDedup, attrDeduplicationScope, attrFifoThroughput}

// gettableAttributes are the attributes GetQueueAttributes reports, in
// the order "All" lists them.
var gettableAttributes = []string{
	attrApproxMessages, attrApproxMessagesNotVis, attrApproxMessagesDelayed, attrVisibilityTimeout, attrDelaySeconds,
	attrMessageRetentionPeriod, attrMaximumMessageSize, attrReceiveWaitTimeSeconds, attrQueueArn, attrRedrivePolicy,
	attrSqsManagedSseEnabled,
}

func (c *call) getQueueAttributes() (any, error) {
	var in struct {
		queueURLInput
		AttributeNames []string
	}
	q, err := c.decodeQueue(&in)
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, n := range in.AttributeNames {
		switch {
		case n == "All":
			for _, a := range gettableAttributes {
				want[a] = true
			}
			for _, a := range fifoGettable {
				want[a] = true
			}
		case slices.Contains(gettableAttributes, n) || slices.Contains(fifoGettable, n):
			want[n] = true
		case unkeptAttributes[n] || n == "CreatedTimestamp" || n == "LastModifiedTimestamp":
			// Known to SQS; spool keeps no value for it, so it is left out,
			// as SQS leaves out an attribute a queue has none of.
		default:
			return nil, fail(codeInvalidAttributeName, "unknown attribute %s", n)
		}
	}
	info, err := q.Info()
	if err != nil {
		return nil, err
	}
	cfg := info.Config
	out := nameValues{}
	put := func(name, v string) {
		if want[name] {
			out[name] = v
		}
	}
	itoa := func(n int64) string { return strconv.FormatInt(n, 10) }
	put(attrApproxMessages, itoa(int64(info.Counts.Ready)))
	put(attrApproxMessagesNotVis, itoa(int64(info.Counts.Leased)))
	put(attrApproxMessagesDelayed, itoa(int64(info.Counts.Delayed)))
	put(attrVisibilityTimeout, itoa(int64(cfg.VisibilityTimeout/time.Second)))
	put(attrDelaySeconds, itoa(int64(cfg.Delay/time.Second)))
	put(attrMessageRetentionPeriod, itoa(int64(cfg.Retention/time.Second)))
	put(attrMaximumMessageSize, itoa(int64(c.h.maxMessageBytes(q))))
	put(attrReceiveWaitTimeSeconds, itoa(attrSetting(q.Attributes(), keyReceiveWait, 0)))
	put(attrQueueArn, c.h.arn(q.Name()))
	put(attrSqsManagedSseEnabled, "false")
	if info.Ordered { // a standard queue has none of these, as in SQS
		put(attrFifoQueue, "true")
		attrs := q.Attributes()
		for _, name := range fifoGettable[1:] {
			put(name, fifoAttribute(attrs, name))
		}
	}
	if cfg.DeadLetterQueue != "" {
		b, _ := json.Marshal(struct {
			DeadLetterTargetArn string `json:"deadLetterTargetArn"`
			MaxReceiveCount     int    `json:"maxReceiveCount"`
		}{c.h.arn(cfg.DeadLetterQueue), cfg.MaxAttempts})
		put(attrRedrivePolicy, string(b))
	}
	return struct {
		Attributes nameValues `json:",omitempty" xml:"Attribute"`
	}{out}, nil
}
