package sqs_test

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spoolq/spool/api/sqs"
	"github.com/spoolq/spool/queue"
)

// These tests speak SQS's query protocol the way botocore 1.29 (Debian's
// python3-boto3 1.26) does: a form POST with Action and Version, maps and
// lists flattened (Attribute.1.Name, AttributeName.1, MessageAttribute.1.
// Value.StringValue, SendMessageBatchRequestEntry.1.Id, ...), blobs in
// base64, numbers as decimal strings, and XML replies in the 2012-11-05
// namespace. They decode the replies with encoding/xml into the structs
// below, whose element names are those of SQS's query API.

const queryNS = "http://queue.amazonaws.com/doc/2012-11-05/"

type queryEnv struct {
	b   *queue.Broker
	srv *httptest.Server
}

func newQueryEnv(t *testing.T) *queryEnv {
	t.Helper()
	b, err := queue.Open(t.TempDir(), queue.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	h := sqs.NewHandler(sqs.Config{Broker: b, Logger: slog.New(slog.DiscardHandler)})
	srv := httptest.NewServer(h)
	t.Cleanup(func() { srv.Close(); b.Close() })
	return &queryEnv{b: b, srv: srv}
}

// queueURL is the QueueUrl spool gives the queue name.
func (e *queryEnv) queueURL(name string) string { return e.srv.URL + "/000000000000/" + name }

// form makes a request's parameters: Action, Version as botocore sends
// it, and the name/value pairs kv.
func form(action string, kv ...string) url.Values {
	v := url.Values{}
	if action != "" {
		v.Set("Action", action)
	}
	v.Set("Version", "2012-11-05")
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

// post sends body as a form POST to path and returns the reply.
func (e *queryEnv) post(t *testing.T, path, body string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8") // botocore's
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// requestIDRE is the UUID shape of SQS's request ids.
var requestIDRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// envelope is a success reply: <ActionResponse><ActionResult>..</ActionResult>
// <ResponseMetadata><RequestId/></ResponseMetadata></ActionResponse>.
type envelope[R any] struct {
	XMLName          xml.Name
	Result           R `xml:",any"`
	ResponseMetadata struct{ RequestId string }
}

// noResult are the actions whose reply has no Result element.
var noResult = map[string]bool{
	"DeleteQueue": true, "PurgeQueue": true, "SetQueueAttributes": true, "DeleteMessage": true, "ChangeMessageVisibility": true,
	"TagQueue": true, "UntagQueue": true,
}

// children returns the names of the root element's child elements, and
// the root's name.
func children(t *testing.T, body []byte) (xml.Name, []string) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(body))
	var root xml.Name
	var names []string
	depth := 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("the reply is not well-formed XML: %v\n%s", err, body)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				root = tok.Name
			} else if depth == 1 {
				names = append(names, tok.Name.Local)
			}
			depth++
		case xml.EndElement:
			depth--
		}
	}
	return root, names
}

// query posts action with kv to / and decodes its success reply into R
// (the Result element's content), checking the reply's shape.
func query[R any](t *testing.T, e *queryEnv, action string, kv ...string) R {
	t.Helper()
	return queryAt[R](t, e, "/", action, kv...)
}

func queryAt[R any](t *testing.T, e *queryEnv, path, action string, kv ...string) R {
	t.Helper()
	status, h, body := e.post(t, path, form(action, kv...).Encode())
	if status != http.StatusOK {
		t.Fatalf("%s: status %d: %s", action, status, body)
	}
	if ct := h.Get("Content-Type"); ct != "text/xml" {
		t.Errorf("%s: Content-Type %q, want text/xml", action, ct)
	}
	if !bytes.HasPrefix(body, []byte("<?xml")) {
		t.Errorf("%s: the reply has no XML declaration: %.60s", action, body)
	}
	root, kids := children(t, body)
	if want := (xml.Name{Space: queryNS, Local: action + "Response"}); root != want {
		t.Fatalf("%s: root element %v, want %v", action, root, want)
	}
	want := []string{action + "Result", "ResponseMetadata"}
	if noResult[action] {
		want = want[1:]
	}
	if !slices.Equal(kids, want) {
		t.Fatalf("%s: the reply's elements are %v, want %v\n%s", action, kids, want, body)
	}
	var env envelope[R]
	if err := xml.Unmarshal(body, &env); err != nil {
		t.Fatalf("%s: %v\n%s", action, err, body)
	}
	if !requestIDRE.MatchString(env.ResponseMetadata.RequestId) {
		t.Fatalf("%s: RequestId %q is not a UUID", action, env.ResponseMetadata.RequestId)
	}
	return env.Result
}

// errorReply is SQS's query-protocol error reply.
type errorReply struct {
	XMLName xml.Name `xml:"http://queue.amazonaws.com/doc/2012-11-05/ ErrorResponse"`
	Error   struct {
		Type    string
		Code    string
		Message string
		Detail  *struct{}
	}
	RequestId string
}

// queryError posts body to path and checks that the reply is an error of
// the given status and code ("": any code, where SQS's own is not known
// for certain); it returns the message.
func queryError(t *testing.T, e *queryEnv, path, body string, status int, code string) string {
	t.Helper()
	got, h, reply := e.post(t, path, body)
	if got != status {
		t.Fatalf("%s: status %d, want %d: %s", body, got, status, reply)
	}
	if ct := h.Get("Content-Type"); ct != "text/xml" {
		t.Errorf("%s: Content-Type %q, want text/xml", body, ct)
	}
	if root, kids := children(t, reply); root.Local != "ErrorResponse" || !slices.Equal(kids, []string{"Error", "RequestId"}) {
		t.Fatalf("%s: error reply %v %v, want ErrorResponse [Error RequestId]\n%s", body, root, kids, reply)
	}
	var er errorReply
	if err := xml.Unmarshal(reply, &er); err != nil {
		t.Fatalf("%s: %v\n%s", body, err, reply)
	}
	if (code != "" && er.Error.Code != code) || er.Error.Code == "" || er.Error.Type != "Sender" || er.Error.Message == "" {
		t.Fatalf("%s: error %+v, want code %q, type Sender and a message", body, er.Error, code)
	}
	if !requestIDRE.MatchString(er.RequestId) {
		t.Fatalf("%s: RequestId %q is not a UUID", body, er.RequestId)
	}
	return er.Error.Message
}

// The Result elements.

type queueURLReply struct{ QueueUrl string }

type queueURLsReply struct {
	QueueUrl  []string
	NextToken string
}

type nameValue struct{ Name, Value string }

type attributesReply struct{ Attribute []nameValue }

// attrMap turns the repeated Name/Value elements into a map, failing on a
// name that appears twice.
func attrMap(t *testing.T, nv []nameValue) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, a := range nv {
		if _, dup := m[a.Name]; dup {
			t.Fatalf("attribute %s appears twice in %v", a.Name, nv)
		}
		m[a.Name] = a.Value
	}
	return m
}

type sendReply struct {
	MessageId                    string
	MD5OfMessageBody             string
	MD5OfMessageAttributes       string
	MD5OfMessageSystemAttributes string
}

type batchErrorEntry struct {
	Id          string
	SenderFault string
	Code        string
	Message     string
}

type sendBatchReply struct {
	SendMessageBatchResultEntry []struct {
		Id string
		sendReply
	}
	BatchResultErrorEntry []batchErrorEntry
}

type idBatchReply struct {
	DeleteMessageBatchResultEntry           []struct{ Id string }
	ChangeMessageVisibilityBatchResultEntry []struct{ Id string }
	BatchResultErrorEntry                   []batchErrorEntry
}

type messageAttributeReply struct {
	Name  string
	Value struct {
		StringValue *string
		BinaryValue *string
		DataType    string
	}
}

type messageReply struct {
	MessageId              string
	ReceiptHandle          string
	MD5OfBody              string
	Body                   string
	Attribute              []nameValue
	MD5OfMessageAttributes string
	MessageAttribute       []messageAttributeReply
}

type receiveReply struct{ Message []messageReply }

type tagsReply struct{ Tag []struct{ Key, Value string } }

// count is one of GetQueueAttributes' numbers for the queue at u.
func count(t *testing.T, e *queryEnv, u, name string) string {
	t.Helper()
	r := query[attributesReply](t, e, "GetQueueAttributes", "QueueUrl", u, "AttributeName.1", name)
	if len(r.Attribute) != 1 || r.Attribute[0].Name != name {
		t.Fatalf("GetQueueAttributes %s: %v", name, r.Attribute)
	}
	return r.Attribute[0].Value
}

func TestQueryQueues(t *testing.T) {
	e := newQueryEnv(t)
	orders := e.queueURL("orders")

	r := query[queueURLReply](t, e, "CreateQueue", "QueueName", "orders",
		"Attribute.1.Name", "VisibilityTimeout", "Attribute.1.Value", "45",
		"Attribute.2.Name", "DelaySeconds", "Attribute.2.Value", "0")
	if r.QueueUrl != orders {
		t.Fatalf("CreateQueue QueueUrl %q, want %q", r.QueueUrl, orders)
	}
	if c := mustQueue(t, e, "orders").Config(); c.VisibilityTimeout != 45*time.Second || c.Retention != 4*24*time.Hour {
		t.Fatalf("spool config %+v", c)
	}
	// The same again: the same URL; other values: QueueAlreadyExists.
	if r := query[queueURLReply](t, e, "CreateQueue", "QueueName", "orders", "Attribute.1.Name", "VisibilityTimeout", "Attribute.1.Value", "45"); r.QueueUrl != orders {
		t.Fatalf("second CreateQueue: %q", r.QueueUrl)
	}
	queryError(t, e, "/", form("CreateQueue", "QueueName", "orders", "Attribute.1.Name", "VisibilityTimeout", "Attribute.1.Value", "46").Encode(), 400, "QueueAlreadyExists")

	if r := query[queueURLReply](t, e, "GetQueueUrl", "QueueName", "orders"); r.QueueUrl != orders {
		t.Fatalf("GetQueueUrl %q, want %q", r.QueueUrl, orders)
	}
	queryError(t, e, "/", form("GetQueueUrl", "QueueName", "nope").Encode(), 400, "AWS.SimpleQueueService.NonExistentQueue")

	all := attrMap(t, query[attributesReply](t, e, "GetQueueAttributes", "QueueUrl", orders, "AttributeName.1", "All").Attribute)
	want := map[string]string{
		"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0", "ApproximateNumberOfMessagesDelayed": "0",
		"VisibilityTimeout": "45", "DelaySeconds": "0", "MessageRetentionPeriod": "345600", "MaximumMessageSize": "262144",
		"ReceiveMessageWaitTimeSeconds": "0", "QueueArn": "arn:aws:sqs:us-east-1:000000000000:orders", "SqsManagedSseEnabled": "false",
	}
	if !maps.Equal(all, want) {
		t.Fatalf("GetQueueAttributes All:\n got %v\nwant %v", all, want)
	}
	two := query[attributesReply](t, e, "GetQueueAttributes", "QueueUrl", orders, "AttributeName.1", "QueueArn", "AttributeName.2", "VisibilityTimeout")
	if got := attrMap(t, two.Attribute); !maps.Equal(got, map[string]string{"QueueArn": "arn:aws:sqs:us-east-1:000000000000:orders", "VisibilityTimeout": "45"}) {
		t.Fatalf("GetQueueAttributes of two: %v", got)
	}
	// No AttributeName: no attributes, as SQS answers.
	if none := query[attributesReply](t, e, "GetQueueAttributes", "QueueUrl", orders); len(none.Attribute) != 0 {
		t.Fatalf("GetQueueAttributes without names: %v", none.Attribute)
	}
	queryError(t, e, "/", form("GetQueueAttributes", "QueueUrl", orders, "AttributeName.1", "Colour").Encode(), 400, "InvalidAttributeName")

	query[struct{}](t, e, "SetQueueAttributes", "QueueUrl", orders,
		"Attribute.1.Name", "VisibilityTimeout", "Attribute.1.Value", "60",
		"Attribute.2.Name", "DelaySeconds", "Attribute.2.Value", "5",
		"Attribute.3.Name", "MessageRetentionPeriod", "Attribute.3.Value", "3600")
	got := attrMap(t, query[attributesReply](t, e, "GetQueueAttributes", "QueueUrl", orders,
		"AttributeName.1", "VisibilityTimeout", "AttributeName.2", "DelaySeconds", "AttributeName.3", "MessageRetentionPeriod").Attribute)
	if !maps.Equal(got, map[string]string{"VisibilityTimeout": "60", "DelaySeconds": "5", "MessageRetentionPeriod": "3600"}) {
		t.Fatalf("after SetQueueAttributes: %v", got)
	}
	if c := mustQueue(t, e, "orders").Config(); c.VisibilityTimeout != 60*time.Second || c.Delay != 5*time.Second || c.Retention != time.Hour {
		t.Fatalf("spool config after SetQueueAttributes %+v", c)
	}
	for _, tc := range []struct {
		name, value, code string
	}{
		{"VisibilityTimeout", "43201", "InvalidAttributeValue"},
		{"DelaySeconds", "x", "InvalidAttributeValue"},
		{"Colour", "blue", "InvalidAttributeName"},
	} {
		queryError(t, e, "/", form("SetQueueAttributes", "QueueUrl", orders, "Attribute.1.Name", tc.name, "Attribute.1.Value", tc.value).Encode(), 400, tc.code)
	}
	if v := count(t, e, orders, "VisibilityTimeout"); v != "60" {
		t.Fatalf("a refused SetQueueAttributes changed VisibilityTimeout to %s", v)
	}

	// ListQueues: every queue, a prefix, pages.
	for _, n := range []string{"a1", "a2", "a3", "b1"} {
		query[queueURLReply](t, e, "CreateQueue", "QueueName", n)
	}
	lq := query[queueURLsReply](t, e, "ListQueues")
	if want := []string{e.queueURL("a1"), e.queueURL("a2"), e.queueURL("a3"), e.queueURL("b1"), orders}; !slices.Equal(lq.QueueUrl, want) || lq.NextToken != "" {
		t.Fatalf("ListQueues: %v %q, want %v", lq.QueueUrl, lq.NextToken, want)
	}
	lq = query[queueURLsReply](t, e, "ListQueues", "QueueNamePrefix", "a")
	if want := []string{e.queueURL("a1"), e.queueURL("a2"), e.queueURL("a3")}; !slices.Equal(lq.QueueUrl, want) || lq.NextToken != "" {
		t.Fatalf("ListQueues a: %v %q", lq.QueueUrl, lq.NextToken)
	}
	if lq := query[queueURLsReply](t, e, "ListQueues", "QueueNamePrefix", "zzz"); len(lq.QueueUrl) != 0 {
		t.Fatalf("ListQueues zzz: %v", lq.QueueUrl)
	}
	var paged []string
	token := ""
	for range 10 {
		kv := []string{"MaxResults", "2"}
		if token != "" {
			kv = append(kv, "NextToken", token)
		}
		lq := query[queueURLsReply](t, e, "ListQueues", kv...)
		if len(lq.QueueUrl) > 2 {
			t.Fatalf("a page of MaxResults 2 has %v", lq.QueueUrl)
		}
		paged = append(paged, lq.QueueUrl...)
		if token = lq.NextToken; token == "" {
			break
		}
	}
	if want := []string{e.queueURL("a1"), e.queueURL("a2"), e.queueURL("a3"), e.queueURL("b1"), orders}; !slices.Equal(paged, want) {
		t.Fatalf("paged ListQueues: %v, want %v", paged, want)
	}
	queryError(t, e, "/", form("ListQueues", "MaxResults", "0").Encode(), 400, "InvalidParameterValue")

	// A dead-letter queue and its sources.
	policy := `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:a1","maxReceiveCount":"3"}`
	query[struct{}](t, e, "SetQueueAttributes", "QueueUrl", e.queueURL("a2"), "Attribute.1.Name", "RedrivePolicy", "Attribute.1.Value", policy)
	query[struct{}](t, e, "SetQueueAttributes", "QueueUrl", orders, "Attribute.1.Name", "RedrivePolicy", "Attribute.1.Value", policy)
	if p := count(t, e, e.queueURL("a2"), "RedrivePolicy"); p != `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:a1","maxReceiveCount":3}` {
		t.Fatalf("RedrivePolicy %q", p)
	}
	// A queue cannot be its own dead-letter queue, and the refusal changes
	// nothing else the request asked for either.
	self := `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:a2","maxReceiveCount":"3"}`
	queryError(t, e, "/", form("SetQueueAttributes", "QueueUrl", e.queueURL("a2"),
		"Attribute.1.Name", "ReceiveMessageWaitTimeSeconds", "Attribute.1.Value", "15",
		"Attribute.2.Name", "RedrivePolicy", "Attribute.2.Value", self).Encode(), 400, "")
	if w := count(t, e, e.queueURL("a2"), "ReceiveMessageWaitTimeSeconds"); w != "0" {
		t.Fatalf("a refused SetQueueAttributes set ReceiveMessageWaitTimeSeconds to %s", w)
	}
	src := query[queueURLsReply](t, e, "ListDeadLetterSourceQueues", "QueueUrl", e.queueURL("a1"))
	if want := []string{e.queueURL("a2"), orders}; !slices.Equal(src.QueueUrl, want) || src.NextToken != "" {
		t.Fatalf("ListDeadLetterSourceQueues: %v %q, want %v", src.QueueUrl, src.NextToken, want)
	}
	if src := query[queueURLsReply](t, e, "ListDeadLetterSourceQueues", "QueueUrl", e.queueURL("b1")); len(src.QueueUrl) != 0 {
		t.Fatalf("ListDeadLetterSourceQueues of a queue no queue uses: %v", src.QueueUrl)
	}
	src = query[queueURLsReply](t, e, "ListDeadLetterSourceQueues", "QueueUrl", e.queueURL("a1"), "MaxResults", "1")
	if !slices.Equal(src.QueueUrl, []string{e.queueURL("a2")}) || src.NextToken == "" {
		t.Fatalf("ListDeadLetterSourceQueues MaxResults 1: %v %q", src.QueueUrl, src.NextToken)
	}
	queryError(t, e, "/", form("ListDeadLetterSourceQueues", "QueueUrl", e.queueURL("gone")).Encode(), 400, "AWS.SimpleQueueService.NonExistentQueue")

	if tags := query[tagsReply](t, e, "ListQueueTags", "QueueUrl", orders); len(tags.Tag) != 0 {
		t.Fatalf("ListQueueTags: %v", tags.Tag)
	}
	query[struct{}](t, e, "TagQueue", "QueueUrl", orders, "Tag.1.Key", "team", "Tag.1.Value", "x", "Tag.2.Key", "tier", "Tag.2.Value", "1")
	query[struct{}](t, e, "UntagQueue", "QueueUrl", orders, "TagKey.1", "tier")
	if tags := query[tagsReply](t, e, "ListQueueTags", "QueueUrl", orders); len(tags.Tag) != 1 || tags.Tag[0].Key != "team" || tags.Tag[0].Value != "x" {
		t.Fatalf("ListQueueTags after TagQueue and UntagQueue: %v", tags.Tag)
	}
	tagged := query[queueURLReply](t, e, "CreateQueue", "QueueName", "tagged", "Tag.1.Key", "team", "Tag.1.Value", "y").QueueUrl
	if tags := query[tagsReply](t, e, "ListQueueTags", "QueueUrl", tagged); len(tags.Tag) != 1 || tags.Tag[0].Value != "y" {
		t.Fatalf("CreateQueue's tags: %v", tags.Tag)
	}
	query[struct{}](t, e, "DeleteQueue", "QueueUrl", tagged)
	queryError(t, e, "/", form("TagQueue", "QueueUrl", orders).Encode(), 400, "MissingParameter")
	queryError(t, e, "/", form("CreateQueue", "QueueName", "has.dot").Encode(), 400, "InvalidParameterValue")
	queryError(t, e, "/", form("CreateQueue").Encode(), 400, "MissingParameter")

	// PurgeQueue empties the queue.
	for i := range 3 {
		query[sendReply](t, e, "SendMessage", "QueueUrl", e.queueURL("b1"), "MessageBody", "m"+strconv.Itoa(i))
	}
	if n := count(t, e, e.queueURL("b1"), "ApproximateNumberOfMessages"); n != "3" {
		t.Fatalf("before PurgeQueue: %s messages", n)
	}
	query[struct{}](t, e, "PurgeQueue", "QueueUrl", e.queueURL("b1"))
	if n := count(t, e, e.queueURL("b1"), "ApproximateNumberOfMessages"); n != "0" {
		t.Fatalf("after PurgeQueue: %s messages", n)
	}
	if rm := query[receiveReply](t, e, "ReceiveMessage", "QueueUrl", e.queueURL("b1"), "MaxNumberOfMessages", "10"); len(rm.Message) != 0 {
		t.Fatalf("received %d messages from a purged queue", len(rm.Message))
	}

	// DeleteQueue: gone for every action after.
	query[struct{}](t, e, "DeleteQueue", "QueueUrl", orders)
	for _, body := range []url.Values{
		form("GetQueueUrl", "QueueName", "orders"),
		form("GetQueueAttributes", "QueueUrl", orders, "AttributeName.1", "All"),
		form("SendMessage", "QueueUrl", orders, "MessageBody", "x"),
		form("DeleteQueue", "QueueUrl", orders),
		form("PurgeQueue", "QueueUrl", orders),
	} {
		queryError(t, e, "/", body.Encode(), 400, "AWS.SimpleQueueService.NonExistentQueue")
	}
	lq = query[queueURLsReply](t, e, "ListQueues")
	if slices.Contains(lq.QueueUrl, orders) || len(lq.QueueUrl) != 4 {
		t.Fatalf("ListQueues after DeleteQueue: %v", lq.QueueUrl)
	}
}

func mustQueue(t *testing.T, e *queryEnv, name string) *queue.Queue {
	t.Helper()
	q, err := e.b.Queue(name)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestQueryMessages(t *testing.T) {
	e := newQueryEnv(t)
	u := query[queueURLReply](t, e, "CreateQueue", "QueueName", "jobs").QueueUrl

	body := "héllo <world> & \"friends\" 'all'\r\n\ttab ]]> 日本 🎉"
	thumb := []byte{0, 1, 2, 0xfe, 0xff}
	sent := query[sendReply](t, e, "SendMessage", "QueueUrl", u, "MessageBody", body, "DelaySeconds", "0",
		"MessageAttribute.1.Name", "colour", "MessageAttribute.1.Value.DataType", "String", "MessageAttribute.1.Value.StringValue", "blue & <green>",
		"MessageAttribute.2.Name", "weight", "MessageAttribute.2.Value.DataType", "Number", "MessageAttribute.2.Value.StringValue", "12.5",
		"MessageAttribute.3.Name", "thumb", "MessageAttribute.3.Value.DataType", "Binary", "MessageAttribute.3.Value.BinaryValue", base64.StdEncoding.EncodeToString(thumb),
		"MessageAttribute.4.Name", "unit.label", "MessageAttribute.4.Value.DataType", "String.unit", "MessageAttribute.4.Value.StringValue", "kg",
		"MessageSystemAttribute.1.Name", "AWSTraceHeader", "MessageSystemAttribute.1.Value.DataType", "String", "MessageSystemAttribute.1.Value.StringValue", "Root=1-abc",
	)
	attrs := []sqs.MessageAttribute{
		{Name: "colour", DataType: "String", StringValue: "blue & <green>"},
		{Name: "weight", DataType: "Number", StringValue: "12.5"},
		{Name: "thumb", DataType: "Binary", BinaryValue: thumb},
		{Name: "unit.label", DataType: "String.unit", StringValue: "kg"},
	}
	wantSend := sendReply{
		MessageId:                    sent.MessageId,
		MD5OfMessageBody:             sqs.MD5OfBody([]byte(body)),
		MD5OfMessageAttributes:       sqs.MD5OfMessageAttributes(attrs),
		MD5OfMessageSystemAttributes: sqs.MD5OfMessageAttributes([]sqs.MessageAttribute{{Name: "AWSTraceHeader", DataType: "String", StringValue: "Root=1-abc"}}),
	}
	if sent != wantSend {
		t.Fatalf("SendMessage:\n got %+v\nwant %+v", sent, wantSend)
	}
	if _, err := strconv.ParseUint(sent.MessageId, 10, 64); err != nil {
		t.Fatalf("MessageId %q", sent.MessageId)
	}
	// Without attributes, the reply has no attribute digests.
	plain := query[sendReply](t, e, "SendMessage", "QueueUrl", u, "MessageBody", "plain")
	if plain.MD5OfMessageBody != sqs.MD5OfBody([]byte("plain")) || plain.MD5OfMessageAttributes != "" || plain.MD5OfMessageSystemAttributes != "" || plain.MessageId == sent.MessageId {
		t.Fatalf("SendMessage without attributes: %+v", plain)
	}

	rm := query[receiveReply](t, e, "ReceiveMessage", "QueueUrl", u, "MaxNumberOfMessages", "1",
		"AttributeName.1", "All", "MessageAttributeName.1", "All", "VisibilityTimeout", "30", "WaitTimeSeconds", "0")
	if len(rm.Message) != 1 {
		t.Fatalf("received %d messages, want 1", len(rm.Message))
	}
	m := rm.Message[0]
	if m.MessageId != sent.MessageId || m.Body != body || m.MD5OfBody != sqs.MD5OfBody([]byte(body)) || m.ReceiptHandle == "" {
		t.Fatalf("received %+v\nwant id %s body %q", m, sent.MessageId, body)
	}
	if m.MD5OfMessageAttributes != sqs.MD5OfMessageAttributes(attrs) {
		t.Fatalf("MD5OfMessageAttributes %s, want %s", m.MD5OfMessageAttributes, sqs.MD5OfMessageAttributes(attrs))
	}
	type av struct{ dt, str, bin string }
	gotAttrs := map[string]av{}
	for _, a := range m.MessageAttribute {
		v := av{dt: a.Value.DataType}
		if a.Value.StringValue != nil {
			v.str = "s:" + *a.Value.StringValue
		}
		if a.Value.BinaryValue != nil {
			v.bin = "b:" + *a.Value.BinaryValue
		}
		gotAttrs[a.Name] = v
	}
	wantAttrs := map[string]av{
		"colour":     {"String", "s:blue & <green>", ""},
		"weight":     {"Number", "s:12.5", ""},
		"thumb":      {"Binary", "", "b:" + base64.StdEncoding.EncodeToString(thumb)},
		"unit.label": {"String.unit", "s:kg", ""},
	}
	if !maps.Equal(gotAttrs, wantAttrs) || len(m.MessageAttribute) != len(wantAttrs) {
		t.Fatalf("message attributes:\n got %v\nwant %v", m.MessageAttribute, wantAttrs)
	}
	sys := attrMap(t, m.Attribute)
	if sys["ApproximateReceiveCount"] != "1" || sys["AWSTraceHeader"] != "Root=1-abc" {
		t.Fatalf("system attributes %v", sys)
	}
	if ts, err := strconv.ParseInt(sys["SentTimestamp"], 10, 64); err != nil || time.Since(time.UnixMilli(ts)).Abs() > time.Minute {
		t.Fatalf("SentTimestamp %q", sys["SentTimestamp"])
	}
	if n := count(t, e, u, "ApproximateNumberOfMessagesNotVisible"); n != "1" {
		t.Fatalf("%s messages in flight, want 1", n)
	}

	// ChangeMessageVisibility 0: visible at once, received again; the old
	// receipt is stale then.
	query[struct{}](t, e, "ChangeMessageVisibility", "QueueUrl", u, "ReceiptHandle", m.ReceiptHandle, "VisibilityTimeout", "0")
	queryError(t, e, "/", form("ChangeMessageVisibility", "QueueUrl", u, "ReceiptHandle", m.ReceiptHandle, "VisibilityTimeout", "10").Encode(), 400, "AWS.SimpleQueueService.MessageNotInflight")
	again := query[receiveReply](t, e, "ReceiveMessage", "QueueUrl", u, "MaxNumberOfMessages", "10",
		"AttributeName.1", "ApproximateReceiveCount", "MessageAttributeName.1", "colour", "MessageAttributeName.2", "unit.*")
	if len(again.Message) != 2 {
		t.Fatalf("second receive: %d messages, want 2", len(again.Message))
	}
	var m2 messageReply
	for _, x := range again.Message {
		if x.MessageId == sent.MessageId {
			m2 = x
		} else if x.MessageId != plain.MessageId || x.Body != "plain" || len(x.MessageAttribute) != 0 || x.MD5OfMessageAttributes != "" {
			t.Fatalf("second receive: %+v", x)
		}
	}
	if got := attrMap(t, m2.Attribute); !maps.Equal(got, map[string]string{"ApproximateReceiveCount": "2"}) {
		t.Fatalf("second receive's system attributes %v", got)
	}
	var names []string
	for _, a := range m2.MessageAttribute {
		names = append(names, a.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"colour", "unit.label"}) {
		t.Fatalf("receive of colour and unit.*: attributes %v", names)
	}
	if want := sqs.MD5OfMessageAttributes([]sqs.MessageAttribute{attrs[0], attrs[3]}); m2.MD5OfMessageAttributes != want {
		t.Fatalf("MD5OfMessageAttributes of a subset %s, want %s", m2.MD5OfMessageAttributes, want)
	}

	// ChangeMessageVisibility to a later time keeps the message hidden.
	query[struct{}](t, e, "ChangeMessageVisibility", "QueueUrl", u, "ReceiptHandle", m2.ReceiptHandle, "VisibilityTimeout", "600")
	queryError(t, e, "/", form("ChangeMessageVisibility", "QueueUrl", u, "ReceiptHandle", m2.ReceiptHandle, "VisibilityTimeout", "43201").Encode(), 400, "InvalidParameterValue")
	queryError(t, e, "/", form("ChangeMessageVisibility", "QueueUrl", u, "ReceiptHandle", m2.ReceiptHandle).Encode(), 400, "MissingParameter")

	// DeleteMessage: the stale receipt succeeds and deletes nothing (as
	// SQS documents), the fresh one deletes, twice over; a malformed one
	// is refused.
	query[struct{}](t, e, "DeleteMessage", "QueueUrl", u, "ReceiptHandle", m.ReceiptHandle)
	if n := count(t, e, u, "ApproximateNumberOfMessagesNotVisible"); n != "2" {
		t.Fatalf("a delete with a stale receipt deleted a message: %s in flight, want 2", n)
	}
	for range 2 {
		query[struct{}](t, e, "DeleteMessage", "QueueUrl", u, "ReceiptHandle", m2.ReceiptHandle)
	}
	queryError(t, e, "/", form("DeleteMessage", "QueueUrl", u, "ReceiptHandle", "not-a-handle").Encode(), 404, "ReceiptHandleIsInvalid")
	queryError(t, e, "/", form("DeleteMessage", "QueueUrl", u).Encode(), 400, "MissingParameter")
	if n := count(t, e, u, "ApproximateNumberOfMessagesNotVisible"); n != "1" { // "plain" is still leased
		t.Fatalf("after DeleteMessage: %s in flight, want 1", n)
	}
	if _, err := mustQueue(t, e, "jobs").Get(mustUint(t, sent.MessageId)); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("the deleted message is still there: %v", err)
	}

	// Bad sends are refused and enqueue nothing.
	before := count(t, e, u, "ApproximateNumberOfMessages")
	for _, tc := range []struct {
		name string
		kv   []string
		code string
	}{
		{"no body", nil, "MissingParameter"},
		{"control character", []string{"MessageBody", "a\x00b"}, "InvalidMessageContents"},
		{"delay too long", []string{"MessageBody", "x", "DelaySeconds", "901"}, "InvalidParameterValue"},
		{"reserved attribute name", []string{"MessageBody", "x", "MessageAttribute.1.Name", "AWS.x", "MessageAttribute.1.Value.DataType", "String", "MessageAttribute.1.Value.StringValue", "v"}, "InvalidParameterValue"},
		{"bad number", []string{"MessageBody", "x", "MessageAttribute.1.Name", "n", "MessageAttribute.1.Value.DataType", "Number", "MessageAttribute.1.Value.StringValue", "twelve"}, "InvalidParameterValue"},
		{"attribute without a value", []string{"MessageBody", "x", "MessageAttribute.1.Name", "n", "MessageAttribute.1.Value.DataType", "String"}, "InvalidParameterValue"},
		{"attribute without Value", []string{"MessageBody", "x", "MessageAttribute.1.Name", "n"}, ""},
		{"dedup id", []string{"MessageBody", "x", "MessageDeduplicationId", "d"}, "InvalidParameterValue"},
		{"too large", []string{"MessageBody", strings.Repeat("x", 256<<10+1)}, "InvalidParameterValue"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			queryError(t, e, "/", form("SendMessage", append([]string{"QueueUrl", u}, tc.kv...)...).Encode(), 400, tc.code)
		})
	}
	if n := count(t, e, u, "ApproximateNumberOfMessages"); n != before {
		t.Fatalf("refused sends enqueued: %s messages, %s before", n, before)
	}
	for _, tc := range []struct{ kv []string }{
		{[]string{"MaxNumberOfMessages", "11"}},
		{[]string{"MaxNumberOfMessages", "0"}},
		{[]string{"WaitTimeSeconds", "21"}},
		{[]string{"VisibilityTimeout", "-1"}},
	} {
		queryError(t, e, "/", form("ReceiveMessage", append([]string{"QueueUrl", u}, tc.kv...)...).Encode(), 400, "InvalidParameterValue")
	}
}

func mustUint(t *testing.T, s string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Bodies and attribute values come back byte for byte through the XML,
// however many of its special characters they hold.
func TestQueryBodyRoundTrip(t *testing.T) {
	e := newQueryEnv(t)
	u := query[queueURLReply](t, e, "CreateQueue", "QueueName", "text").QueueUrl
	for _, body := range []string{
		"<tag attr=\"v\">a & b</tag>",
		`"double" and 'single' quotes`,
		"cr\ronly", "lf\nonly", "crlf\r\nboth", "\r", "\n\n", "\r\n\r\n",
		"\ttab\t", "  spaces at both ends  ",
		"a+b c%20d&e=f;g",
		"]]>", "<![CDATA[x]]>", "&amp; &lt; &#xD; stays literal",
		"héllo wörld — 日本語 🎉 \u00a0\u2028\u2029",
		"\uE000\uFFFD\U0010FFFF",
		strings.Repeat("<&>\r\n", 1000),
	} {
		sent := query[sendReply](t, e, "SendMessage", "QueueUrl", u, "MessageBody", body,
			"MessageAttribute.1.Name", "a", "MessageAttribute.1.Value.DataType", "String", "MessageAttribute.1.Value.StringValue", body)
		if sent.MD5OfMessageBody != sqs.MD5OfBody([]byte(body)) {
			t.Errorf("%q: MD5OfMessageBody %s", body, sent.MD5OfMessageBody)
		}
		rm := query[receiveReply](t, e, "ReceiveMessage", "QueueUrl", u, "MessageAttributeName.1", "All")
		if len(rm.Message) != 1 {
			t.Fatalf("%q: received %d messages", body, len(rm.Message))
		}
		m := rm.Message[0]
		if m.Body != body || m.MD5OfBody != sqs.MD5OfBody([]byte(body)) {
			t.Errorf("sent %q, received %q (MD5OfBody %s)", body, m.Body, m.MD5OfBody)
		}
		if len(m.MessageAttribute) != 1 || m.MessageAttribute[0].Value.StringValue == nil || *m.MessageAttribute[0].Value.StringValue != body {
			t.Errorf("attribute value %q came back as %+v", body, m.MessageAttribute)
		}
		query[struct{}](t, e, "DeleteMessage", "QueueUrl", u, "ReceiptHandle", m.ReceiptHandle)
	}

	// A message enqueued natively with bytes SQS cannot carry reaches an
	// SQS client as text: each bad byte U+FFFD, the digest that of what
	// it got.
	q := mustQueue(t, e, "text")
	if _, err := q.Enqueue([]queue.NewMessage{{Body: []byte{'a', 0xff, 0, 'b'}}}); err != nil {
		t.Fatal(err)
	}
	rm := query[receiveReply](t, e, "ReceiveMessage", "QueueUrl", u)
	if len(rm.Message) != 1 || rm.Message[0].Body != "a\uFFFD\uFFFDb" || rm.Message[0].MD5OfBody != sqs.MD5OfBody([]byte("a\uFFFD\uFFFDb")) {
		t.Fatalf("a native message with bad bytes: %+v", rm.Message)
	}
}

func TestQueryBatches(t *testing.T) {
	e := newQueryEnv(t)
	u := query[queueURLReply](t, e, "CreateQueue", "QueueName", "batch").QueueUrl

	sb := query[sendBatchReply](t, e, "SendMessageBatch", "QueueUrl", u,
		"SendMessageBatchRequestEntry.1.Id", "a", "SendMessageBatchRequestEntry.1.MessageBody", "body a",
		"SendMessageBatchRequestEntry.2.Id", "b", "SendMessageBatchRequestEntry.2.MessageBody", "body <b>",
		"SendMessageBatchRequestEntry.2.MessageAttribute.1.Name", "k",
		"SendMessageBatchRequestEntry.2.MessageAttribute.1.Value.DataType", "String",
		"SendMessageBatchRequestEntry.2.MessageAttribute.1.Value.StringValue", "v",
		"SendMessageBatchRequestEntry.3.Id", "bad", "SendMessageBatchRequestEntry.3.MessageBody", "bad\x01",
		"SendMessageBatchRequestEntry.4.Id", "late", "SendMessageBatchRequestEntry.4.MessageBody", "later", "SendMessageBatchRequestEntry.4.DelaySeconds", "600",
		"SendMessageBatchRequestEntry.5.Id", "nobody",
	)
	type okEntry struct{ id, md5Body, md5Attrs string }
	var ok []okEntry
	ids := map[string]string{}
	for _, s := range sb.SendMessageBatchResultEntry {
		ok = append(ok, okEntry{s.Id, s.MD5OfMessageBody, s.MD5OfMessageAttributes})
		if _, err := strconv.ParseUint(s.MessageId, 10, 64); err != nil {
			t.Fatalf("entry %s: MessageId %q", s.Id, s.MessageId)
		}
		ids[s.Id] = s.MessageId
	}
	wantOK := []okEntry{
		{"a", sqs.MD5OfBody([]byte("body a")), ""},
		{"b", sqs.MD5OfBody([]byte("body <b>")), sqs.MD5OfMessageAttributes([]sqs.MessageAttribute{{Name: "k", DataType: "String", StringValue: "v"}})},
		{"late", sqs.MD5OfBody([]byte("later")), ""},
	}
	if !slices.Equal(ok, wantOK) {
		t.Fatalf("SendMessageBatchResultEntry:\n got %+v\nwant %+v", ok, wantOK)
	}
	if len(ids) != 3 || ids["a"] == ids["b"] || ids["b"] == ids["late"] {
		t.Fatalf("message ids %v", ids)
	}
	var failed []batchErrorEntry
	for _, f := range sb.BatchResultErrorEntry {
		if f.Message == "" {
			t.Errorf("failed entry %s has no message", f.Id)
		}
		f.Message = ""
		failed = append(failed, f)
	}
	if want := []batchErrorEntry{{"bad", "true", "InvalidMessageContents", ""}, {"nobody", "true", "MissingParameter", ""}}; !slices.Equal(failed, want) {
		t.Fatalf("BatchResultErrorEntry:\n got %+v\nwant %+v", failed, want)
	}
	if n, d := count(t, e, u, "ApproximateNumberOfMessages"), count(t, e, u, "ApproximateNumberOfMessagesDelayed"); n != "2" || d != "1" {
		t.Fatalf("after the batch: %s ready, %s delayed", n, d)
	}

	// Batch-level errors refuse the whole batch.
	eleven := []string{"QueueUrl", u}
	for i := 1; i <= 11; i++ {
		n := strconv.Itoa(i)
		eleven = append(eleven, "SendMessageBatchRequestEntry."+n+".Id", "m"+n, "SendMessageBatchRequestEntry."+n+".MessageBody", "x")
	}
	for _, tc := range []struct {
		name string
		body string
		code string
	}{
		// botocore sends an empty list as the bare member name.
		{"empty batch as botocore sends it", form("SendMessageBatch", "QueueUrl", u, "SendMessageBatchRequestEntry", "").Encode(), "AWS.SimpleQueueService.EmptyBatchRequest"},
		{"no entries at all", form("SendMessageBatch", "QueueUrl", u).Encode(), "AWS.SimpleQueueService.EmptyBatchRequest"},
		{"empty batch under its JSON name", form("SendMessageBatch", "QueueUrl", u, "Entries", "").Encode(), "AWS.SimpleQueueService.EmptyBatchRequest"},
		{"eleven entries", form("SendMessageBatch", eleven...).Encode(), "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"},
		{"ids not distinct", form("SendMessageBatch", "QueueUrl", u,
			"SendMessageBatchRequestEntry.1.Id", "a", "SendMessageBatchRequestEntry.1.MessageBody", "x",
			"SendMessageBatchRequestEntry.2.Id", "a", "SendMessageBatchRequestEntry.2.MessageBody", "y").Encode(), "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"},
		{"invalid id", form("SendMessageBatch", "QueueUrl", u,
			"SendMessageBatchRequestEntry.1.Id", "a b", "SendMessageBatchRequestEntry.1.MessageBody", "x").Encode(), "AWS.SimpleQueueService.InvalidBatchEntryId"},
		{"too long together", form("SendMessageBatch", "QueueUrl", u,
			"SendMessageBatchRequestEntry.1.Id", "a", "SendMessageBatchRequestEntry.1.MessageBody", strings.Repeat("x", 200<<10),
			"SendMessageBatchRequestEntry.2.Id", "b", "SendMessageBatchRequestEntry.2.MessageBody", strings.Repeat("y", 100<<10)).Encode(), "AWS.SimpleQueueService.BatchRequestTooLong"},
		{"empty delete batch", form("DeleteMessageBatch", "QueueUrl", u, "DeleteMessageBatchRequestEntry", "").Encode(), "AWS.SimpleQueueService.EmptyBatchRequest"},
		{"empty visibility batch", form("ChangeMessageVisibilityBatch", "QueueUrl", u, "ChangeMessageVisibilityBatchRequestEntry", "").Encode(), "AWS.SimpleQueueService.EmptyBatchRequest"},
	} {
		t.Run(tc.name, func(t *testing.T) { queryError(t, e, "/", tc.body, 400, tc.code) })
	}
	if n := count(t, e, u, "ApproximateNumberOfMessages"); n != "2" {
		t.Fatalf("refused batches enqueued: %s messages", n)
	}
	// An empty list of names, as botocore sends it: no attributes.
	if r := query[attributesReply](t, e, "GetQueueAttributes", "QueueUrl", u, "AttributeNames", ""); len(r.Attribute) != 0 {
		t.Fatalf("GetQueueAttributes with AttributeNames= gave %v", r.Attribute)
	}

	rm := query[receiveReply](t, e, "ReceiveMessage", "QueueUrl", u, "MaxNumberOfMessages", "10")
	if len(rm.Message) != 2 {
		t.Fatalf("received %d messages, want 2", len(rm.Message))
	}
	bodies := map[string]string{}
	for _, m := range rm.Message {
		bodies[m.MessageId] = m.Body
	}
	if !maps.Equal(bodies, map[string]string{ids["a"]: "body a", ids["b"]: "body <b>"}) {
		t.Fatalf("received %v", bodies)
	}

	// ChangeMessageVisibilityBatch: one made visible again, one garbage.
	cv := query[idBatchReply](t, e, "ChangeMessageVisibilityBatch", "QueueUrl", u,
		"ChangeMessageVisibilityBatchRequestEntry.1.Id", "v1", "ChangeMessageVisibilityBatchRequestEntry.1.ReceiptHandle", rm.Message[0].ReceiptHandle,
		"ChangeMessageVisibilityBatchRequestEntry.1.VisibilityTimeout", "0",
		"ChangeMessageVisibilityBatchRequestEntry.2.Id", "v2", "ChangeMessageVisibilityBatchRequestEntry.2.ReceiptHandle", "garbage",
		"ChangeMessageVisibilityBatchRequestEntry.2.VisibilityTimeout", "5")
	if len(cv.ChangeMessageVisibilityBatchResultEntry) != 1 || cv.ChangeMessageVisibilityBatchResultEntry[0].Id != "v1" ||
		len(cv.BatchResultErrorEntry) != 1 || cv.BatchResultErrorEntry[0].Id != "v2" || cv.BatchResultErrorEntry[0].Code != "ReceiptHandleIsInvalid" ||
		cv.BatchResultErrorEntry[0].SenderFault != "true" || len(cv.DeleteMessageBatchResultEntry) != 0 {
		t.Fatalf("ChangeMessageVisibilityBatch: %+v", cv)
	}

	// DeleteMessageBatch: a live receipt, a stale one (its message was
	// made visible again: the entry succeeds and deletes nothing), a
	// malformed one.
	dm := query[idBatchReply](t, e, "DeleteMessageBatch", "QueueUrl", u,
		"DeleteMessageBatchRequestEntry.1.Id", "live", "DeleteMessageBatchRequestEntry.1.ReceiptHandle", rm.Message[1].ReceiptHandle,
		"DeleteMessageBatchRequestEntry.2.Id", "stale", "DeleteMessageBatchRequestEntry.2.ReceiptHandle", rm.Message[0].ReceiptHandle,
		"DeleteMessageBatchRequestEntry.3.Id", "junk", "DeleteMessageBatchRequestEntry.3.ReceiptHandle", "junk")
	if len(dm.DeleteMessageBatchResultEntry) != 2 || dm.DeleteMessageBatchResultEntry[0].Id != "live" || dm.DeleteMessageBatchResultEntry[1].Id != "stale" ||
		len(dm.ChangeMessageVisibilityBatchResultEntry) != 0 {
		t.Fatalf("DeleteMessageBatchResultEntry: %+v", dm.DeleteMessageBatchResultEntry)
	}
	codes := map[string]string{}
	for _, f := range dm.BatchResultErrorEntry {
		codes[f.Id] = f.Code + " " + f.SenderFault
	}
	if !maps.Equal(codes, map[string]string{"junk": "ReceiptHandleIsInvalid true"}) {
		t.Fatalf("DeleteMessageBatch failures: %v", codes)
	}
	if n, v := count(t, e, u, "ApproximateNumberOfMessages"), count(t, e, u, "ApproximateNumberOfMessagesNotVisible"); n != "1" || v != "0" {
		t.Fatalf("after the batches: %s ready, %s in flight", n, v)
	}
}

// spool keeps at most queue.MaxAttributeBytes (16 KiB) of attributes with
// a message, where SQS counts them only against the message's 256 KiB (the
// README says so): a send over it is refused with a clear error, and a
// batch entry over it fails alone.
func TestQueryLargeMessageAttributes(t *testing.T) {
	e := newQueryEnv(t)
	u := query[queueURLReply](t, e, "CreateQueue", "QueueName", "big").QueueUrl
	big := strings.Repeat("v", 20000)
	queryError(t, e, "/", form("SendMessage", "QueueUrl", u, "MessageBody", "x",
		"MessageAttribute.1.Name", "a", "MessageAttribute.1.Value.DataType", "String", "MessageAttribute.1.Value.StringValue", big).Encode(),
		400, "InvalidParameterValue")
	sb := query[sendBatchReply](t, e, "SendMessageBatch", "QueueUrl", u,
		"SendMessageBatchRequestEntry.1.Id", "small", "SendMessageBatchRequestEntry.1.MessageBody", "fine",
		"SendMessageBatchRequestEntry.2.Id", "big", "SendMessageBatchRequestEntry.2.MessageBody", "x",
		"SendMessageBatchRequestEntry.2.MessageAttribute.1.Name", "a",
		"SendMessageBatchRequestEntry.2.MessageAttribute.1.Value.DataType", "String",
		"SendMessageBatchRequestEntry.2.MessageAttribute.1.Value.StringValue", big)
	if len(sb.SendMessageBatchResultEntry) != 1 || sb.SendMessageBatchResultEntry[0].Id != "small" ||
		len(sb.BatchResultErrorEntry) != 1 || sb.BatchResultErrorEntry[0].Id != "big" || sb.BatchResultErrorEntry[0].Code != "InvalidParameterValue" {
		t.Fatalf("SendMessageBatch: %+v", sb)
	}
	rm := query[receiveReply](t, e, "ReceiveMessage", "QueueUrl", u, "MaxNumberOfMessages", "10", "MessageAttributeName.1", "All")
	if len(rm.Message) != 1 || rm.Message[0].Body != "fine" {
		t.Fatalf("received %+v, want the one small message", rm.Message)
	}
}

// The attribute limit counts the AWSTraceHeader spool keeps beside the
// message attributes: an entry whose two together are over it fails
// alone, not the enqueue of the whole batch.
func TestQueryTraceHeaderCountsAgainstTheAttributeLimit(t *testing.T) {
	e := newQueryEnv(t)
	u := query[queueURLReply](t, e, "CreateQueue", "QueueName", "traced").QueueUrl
	near := strings.Repeat("v", queue.MaxAttributeBytes-100) // fits alone
	sb := query[sendBatchReply](t, e, "SendMessageBatch", "QueueUrl", u,
		"SendMessageBatchRequestEntry.1.Id", "small", "SendMessageBatchRequestEntry.1.MessageBody", "fine",
		"SendMessageBatchRequestEntry.2.Id", "traced", "SendMessageBatchRequestEntry.2.MessageBody", "x",
		"SendMessageBatchRequestEntry.2.MessageAttribute.1.Name", "a",
		"SendMessageBatchRequestEntry.2.MessageAttribute.1.Value.DataType", "String",
		"SendMessageBatchRequestEntry.2.MessageAttribute.1.Value.StringValue", near,
		"SendMessageBatchRequestEntry.2.MessageSystemAttribute.1.Name", "AWSTraceHeader",
		"SendMessageBatchRequestEntry.2.MessageSystemAttribute.1.Value.DataType", "String",
		"SendMessageBatchRequestEntry.2.MessageSystemAttribute.1.Value.StringValue", strings.Repeat("t", 200))
	if len(sb.SendMessageBatchResultEntry) != 1 || sb.SendMessageBatchResultEntry[0].Id != "small" ||
		len(sb.BatchResultErrorEntry) != 1 || sb.BatchResultErrorEntry[0].Id != "traced" || sb.BatchResultErrorEntry[0].Code != "InvalidParameterValue" {
		t.Fatalf("SendMessageBatch: %+v", sb)
	}
	// Without the trace header the same attribute fits.
	query[sendReply](t, e, "SendMessage", "QueueUrl", u, "MessageBody", "x",
		"MessageAttribute.1.Name", "a", "MessageAttribute.1.Value.DataType", "String", "MessageAttribute.1.Value.StringValue", near)
	if n := count(t, e, u, "ApproximateNumberOfMessages"); n != "2" {
		t.Fatalf("the queue holds %s messages, want 2", n)
	}
}

// A queue's MaximumMessageSize bounds each message of a batch, not the
// batch: messages that fit it one by one go together even when their
// total is over it.
func TestQueryBatchTotalIsNotTheQueueMessageSize(t *testing.T) {
	e := newQueryEnv(t)
	u := query[queueURLReply](t, e, "CreateQueue", "QueueName", "small", "Attribute.1.Name", "MaximumMessageSize", "Attribute.1.Value", "1024").QueueUrl
	kv := []string{"QueueUrl", u}
	for i := 1; i <= 3; i++ {
		kv = append(kv, fmt.Sprintf("SendMessageBatchRequestEntry.%d.Id", i), fmt.Sprint("m", i),
			fmt.Sprintf("SendMessageBatchRequestEntry.%d.MessageBody", i), strings.Repeat("x", 1000))
	}
	sb := query[sendBatchReply](t, e, "SendMessageBatch", kv...)
	if len(sb.SendMessageBatchResultEntry) != 3 || len(sb.BatchResultErrorEntry) != 0 {
		t.Fatalf("a batch of three 1000-byte messages on a queue of MaximumMessageSize 1024: %+v", sb)
	}
	queryError(t, e, "/", form("SendMessage", "QueueUrl", u, "MessageBody", strings.Repeat("x", 1025)).Encode(), 400, "InvalidParameterValue")
}

// A query request posted to a queue's URL may leave QueueUrl out, as boto2
// and older SDKs do.
func TestQueryQueueURLPath(t *testing.T) {
	e := newQueryEnv(t)
	query[queueURLReply](t, e, "CreateQueue", "QueueName", "pathq")
	query[queueURLReply](t, e, "CreateQueue", "QueueName", "other")
	const path = "/000000000000/pathq"

	sent := queryAt[sendReply](t, e, path, "SendMessage", "MessageBody", "by path")
	if sent.MD5OfMessageBody != sqs.MD5OfBody([]byte("by path")) {
		t.Fatalf("SendMessage by path: %+v", sent)
	}
	if n := count(t, e, e.queueURL("pathq"), "ApproximateNumberOfMessages"); n != "1" {
		t.Fatalf("pathq holds %s messages, want 1", n)
	}
	if n := count(t, e, e.queueURL("other"), "ApproximateNumberOfMessages"); n != "0" {
		t.Fatalf("other holds %s messages, want 0", n)
	}
	a := attrMap(t, queryAt[attributesReply](t, e, path, "GetQueueAttributes", "AttributeName.1", "QueueArn").Attribute)
	if a["QueueArn"] != "arn:aws:sqs:us-east-1:000000000000:pathq" || len(a) != 1 {
		t.Fatalf("GetQueueAttributes by path: %v", a)
	}
	rm := queryAt[receiveReply](t, e, path, "ReceiveMessage")
	if len(rm.Message) != 1 || rm.Message[0].Body != "by path" || rm.Message[0].MessageId != sent.MessageId {
		t.Fatalf("ReceiveMessage by path: %+v", rm.Message)
	}
	queryAt[struct{}](t, e, path, "DeleteMessage", "ReceiptHandle", rm.Message[0].ReceiptHandle)
	// QueueUrl, when given, wins over the path.
	queryAt[sendReply](t, e, path, "SendMessage", "QueueUrl", e.queueURL("other"), "MessageBody", "x")
	if n := count(t, e, e.queueURL("other"), "ApproximateNumberOfMessages"); n != "1" {
		t.Fatalf("other holds %s messages, want 1", n)
	}
	queryAt[struct{}](t, e, path, "PurgeQueue")
	queryAt[struct{}](t, e, path, "DeleteQueue")
	if _, err := e.b.Queue("pathq"); !errors.Is(err, queue.ErrQueueNotFound) {
		t.Fatalf("DeleteQueue by path left the queue: %v", err)
	}
	queryError(t, e, "/000000000000/missing", form("SendMessage", "MessageBody", "x").Encode(), 400, "AWS.SimpleQueueService.NonExistentQueue")
	// At / without QueueUrl there is no queue to act on.
	queryError(t, e, "/", form("SendMessage", "MessageBody", "x").Encode(), 400, "MissingParameter")
}

// CreateQueue calls racing for one name with different attributes: one
// makes the queue, the others are refused, and the queue is the winner's
// (a check-then-update create would let several succeed, the last one's
// attributes kept).
func TestQueryCreateQueueRace(t *testing.T) {
	e := newQueryEnv(t)
	const n = 8
	statuses := make(chan [2]int, n)
	for i := range n {
		go func() {
			body := form("CreateQueue", "QueueName", "race", "Attribute.1.Name", "VisibilityTimeout", "Attribute.1.Value", strconv.Itoa(100+i)).Encode()
			resp, err := e.srv.Client().Post(e.srv.URL+"/", "application/x-www-form-urlencoded", strings.NewReader(body))
			if err != nil {
				statuses <- [2]int{i, 0}
				return
			}
			resp.Body.Close()
			statuses <- [2]int{i, resp.StatusCode}
		}()
	}
	winner := -1
	for range n {
		s := <-statuses
		switch s[1] {
		case http.StatusOK:
			if winner >= 0 {
				t.Fatalf("CreateQueue %d and %d both succeeded with different attributes", winner, s[0])
			}
			winner = s[0]
		case http.StatusBadRequest:
		default:
			t.Fatalf("CreateQueue %d: status %d", s[0], s[1])
		}
	}
	if winner < 0 {
		t.Fatal("no CreateQueue succeeded")
	}
	if v := count(t, e, e.queueURL("race"), "VisibilityTimeout"); v != strconv.Itoa(100+winner) {
		t.Fatalf("the queue's VisibilityTimeout is %s, want the winner's %d", v, 100+winner)
	}
}

// A receipt handle names its queue: given for another queue, both with
// one message of the same id, it is refused and touches neither.
func TestQueryReceiptOfAnotherQueue(t *testing.T) {
	e := newQueryEnv(t)
	a := query[queueURLReply](t, e, "CreateQueue", "QueueName", "a").QueueUrl
	b := query[queueURLReply](t, e, "CreateQueue", "QueueName", "b").QueueUrl
	for _, u := range []string{a, b} {
		query[sendReply](t, e, "SendMessage", "QueueUrl", u, "MessageBody", "x")
	}
	ra := query[receiveReply](t, e, "ReceiveMessage", "QueueUrl", a, "VisibilityTimeout", "600").Message
	rb := query[receiveReply](t, e, "ReceiveMessage", "QueueUrl", b, "VisibilityTimeout", "600").Message
	if len(ra) != 1 || len(rb) != 1 || ra[0].MessageId != rb[0].MessageId || ra[0].ReceiptHandle == rb[0].ReceiptHandle {
		t.Fatalf("received %+v and %+v: want one message each, same id, different handles", ra, rb)
	}
	queryError(t, e, "/", form("DeleteMessage", "QueueUrl", b, "ReceiptHandle", ra[0].ReceiptHandle).Encode(), 404, "ReceiptHandleIsInvalid")
	queryError(t, e, "/", form("ChangeMessageVisibility", "QueueUrl", b, "ReceiptHandle", ra[0].ReceiptHandle, "VisibilityTimeout", "0").Encode(), 404, "ReceiptHandleIsInvalid")
	batch := query[idBatchReply](t, e, "DeleteMessageBatch", "QueueUrl", b,
		"DeleteMessageBatchRequestEntry.1.Id", "a", "DeleteMessageBatchRequestEntry.1.ReceiptHandle", ra[0].ReceiptHandle)
	if len(batch.BatchResultErrorEntry) != 1 || batch.BatchResultErrorEntry[0].Code != "ReceiptHandleIsInvalid" || len(batch.DeleteMessageBatchResultEntry) != 0 {
		t.Fatalf("DeleteMessageBatch with a's handle on b: %+v", batch)
	}
	for _, u := range []string{a, b} {
		if n := count(t, e, u, "ApproximateNumberOfMessagesNotVisible"); n != "1" {
			t.Fatalf("%s has %s messages in flight, want 1", u, n)
		}
	}
	// Each handle works on its own queue.
	query[struct{}](t, e, "DeleteMessage", "QueueUrl", a, "ReceiptHandle", ra[0].ReceiptHandle)
	if n := count(t, e, a, "ApproximateNumberOfMessagesNotVisible"); n != "0" {
		t.Fatalf("a has %s messages in flight after its delete, want 0", n)
	}
}

func TestQueryErrors(t *testing.T) {
	e := newQueryEnv(t)
	u := query[queueURLReply](t, e, "CreateQueue", "QueueName", "q").QueueUrl
	sq, err := e.b.Queue("q")
	if err != nil {
		t.Fatal(err)
	}
	serial, err := sq.Serial()
	if err != nil {
		t.Fatal(err)
	}
	handle := func(r string) string { return fmt.Sprint(serial) + "-" + r }
	for _, tc := range []struct {
		name   string
		body   string
		status int
		code   string
	}{
		{"no action", "Version=2012-11-05&QueueName=q", 400, "MissingParameter"},
		{"empty body", "", 400, "MissingParameter"},
		{"empty action", "Action=&Version=2012-11-05", 400, "MissingParameter"},
		{"unknown action", "Action=FlyToTheMoon&Version=2012-11-05", 400, "InvalidAction"},
		{"action in the wrong case", "Action=listqueues&Version=2012-11-05", 400, "InvalidAction"},
		{"unsupported action", form("AddPermission", "QueueUrl", u).Encode(), 400, "AWS.SimpleQueueService.UnsupportedOperation"},
		{"missing queue", form("GetQueueAttributes", "QueueUrl", e.queueURL("nope"), "AttributeName.1", "All").Encode(), 400, "AWS.SimpleQueueService.NonExistentQueue"},
		{"queue name not valid", form("SendMessage", "QueueUrl", e.queueURL("bad%20name"), "MessageBody", "x").Encode(), 400, "AWS.SimpleQueueService.NonExistentQueue"},
		{"no QueueUrl", form("PurgeQueue").Encode(), 400, "MissingParameter"},
		{"GetQueueUrl of a name no queue can have", form("GetQueueUrl", "QueueName", "bad name!").Encode(), 400, "AWS.SimpleQueueService.NonExistentQueue"},
		{"malformed receipt", form("DeleteMessage", "QueueUrl", u, "ReceiptHandle", "AQEBzbVv...").Encode(), 404, "ReceiptHandleIsInvalid"},
		{"receipt with attempt 0", form("ChangeMessageVisibility", "QueueUrl", u, "ReceiptHandle", handle("1.0"), "VisibilityTimeout", "5").Encode(), 404, "ReceiptHandleIsInvalid"},
		{"receipt without its queue", form("DeleteMessage", "QueueUrl", u, "ReceiptHandle", "1.1").Encode(), 404, "ReceiptHandleIsInvalid"},
		{"receipt of a queue number too big", form("DeleteMessage", "QueueUrl", u, "ReceiptHandle", "4294967297-1.1").Encode(), 404, "ReceiptHandleIsInvalid"},
		{"receipt of no message", form("ChangeMessageVisibility", "QueueUrl", u, "ReceiptHandle", handle("999.1"), "VisibilityTimeout", "5").Encode(), 400, "AWS.SimpleQueueService.MessageNotInflight"},
		// Malformed forms: a 400 of some code (SQS's own code for each is not
		// pinned down here).
		{"index not a number", form("SetQueueAttributes", "QueueUrl", u, "Attribute.x.Name", "DelaySeconds", "Attribute.x.Value", "1").Encode(), 400, ""},
		{"index 0", form("GetQueueAttributes", "QueueUrl", u, "AttributeName.0", "All").Encode(), 400, ""},
		{"negative index", form("SendMessageBatch", "QueueUrl", u, "SendMessageBatchRequestEntry.-1.Id", "a", "SendMessageBatchRequestEntry.-1.MessageBody", "x").Encode(), 400, ""},
		{"nine dotted parts", form("SetQueueAttributes", "QueueUrl", u, "Attribute.1.Name.a.b.c.d.e.f", "DelaySeconds").Encode(), 400, "MalformedQueryString"},
		{"a key of dots", form("ListQueues", strings.Repeat(".", 10000), "x").Encode(), 400, "MalformedQueryString"},
		{"empty dotted part", form("SetQueueAttributes", "QueueUrl", u, "Attribute..Name", "DelaySeconds").Encode(), 400, ""},
		{"map entry without Value", form("SetQueueAttributes", "QueueUrl", u, "Attribute.1.Name", "DelaySeconds").Encode(), 400, ""},
		{"number not a number", form("ReceiveMessage", "QueueUrl", u, "MaxNumberOfMessages", "ten").Encode(), 400, ""},
		{"bad percent escape", "Action=ListQueues&QueueNamePrefix=%zz", 400, ""},
		{"semicolon separator", "Action=ListQueues;Version=2012-11-05", 400, ""},
		{"bad base64 blob", form("SendMessage", "QueueUrl", u, "MessageBody", "x", "MessageAttribute.1.Name", "b",
			"MessageAttribute.1.Value.DataType", "Binary", "MessageAttribute.1.Value.BinaryValue", "!!not base64!!").Encode(), 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) { queryError(t, e, "/", tc.body, tc.status, tc.code) })
	}

	// The error reply is SQS's, element for element.
	_, _, reply := e.post(t, "/", form("GetQueueUrl", "QueueName", "nope").Encode())
	var er errorReply
	if err := xml.Unmarshal(reply, &er); err != nil {
		t.Fatal(err)
	}
	if er.Error.Type != "Sender" || er.Error.Code != "AWS.SimpleQueueService.NonExistentQueue" || er.Error.Message != "The specified queue does not exist." || er.Error.Detail == nil {
		t.Fatalf("error reply %+v\n%s", er, reply)
	}

	// Every reply has its own request id.
	seen := map[string]bool{}
	for range 5 {
		_, _, b := e.post(t, "/", form("ListQueues").Encode())
		var env envelope[queueURLsReply]
		if err := xml.Unmarshal(b, &env); err != nil {
			t.Fatal(err)
		}
		if seen[env.ResponseMetadata.RequestId] {
			t.Fatalf("request id %s given twice", env.ResponseMetadata.RequestId)
		}
		seen[env.ResponseMetadata.RequestId] = true
	}
}

func TestIsRequest(t *testing.T) {
	const formType = "application/x-www-form-urlencoded"
	for _, tc := range []struct {
		name         string
		method, path string
		header       map[string]string
		want         bool
	}{
		{"JSON target", "POST", "/", map[string]string{"X-Amz-Target": "AmazonSQS.SendMessage", "Content-Type": "application/x-amz-json-1.0"}, true},
		{"JSON target at a queue path", "POST", "/000000000000/q", map[string]string{"X-Amz-Target": "AmazonSQS.ReceiveMessage"}, true},
		{"another service's target", "POST", "/", map[string]string{"X-Amz-Target": "DynamoDB_20120810.GetItem", "Content-Type": "application/x-amz-json-1.0"}, false},
		{"form POST to /", "POST", "/", map[string]string{"Content-Type": formType}, true},
		{"form POST with a charset", "POST", "/", map[string]string{"Content-Type": formType + "; charset=utf-8"}, true},
		{"form type in capitals", "POST", "/", map[string]string{"Content-Type": "Application/X-WWW-Form-URLEncoded"}, true},
		{"form POST to a queue path", "POST", "/000000000000/orders", map[string]string{"Content-Type": formType}, true},
		{"form POST to another account's queue", "POST", "/123456789012/orders", map[string]string{"Content-Type": formType}, true},
		{"form POST to a deeper path", "POST", "/000000000000/orders/x", map[string]string{"Content-Type": formType}, false},
		{"form POST to /acct/", "POST", "/000000000000/", map[string]string{"Content-Type": formType}, false},
		{"form POST to /acct", "POST", "/000000000000", map[string]string{"Content-Type": formType}, false},
		{"form POST to /v1/queues", "POST", "/v1/queues", map[string]string{"Content-Type": formType}, false},
		{"form POST to /v1/queues/q/messages", "POST", "/v1/queues/q/messages", map[string]string{"Content-Type": formType}, false},
		{"GET of /", "GET", "/", map[string]string{"Content-Type": formType}, false},
		{"GET with a target", "GET", "/", map[string]string{"X-Amz-Target": "AmazonSQS.ListQueues"}, false},
		{"JSON body to /", "POST", "/", map[string]string{"Content-Type": "application/json"}, false},
		{"multipart form to /", "POST", "/", map[string]string{"Content-Type": "multipart/form-data; boundary=x"}, false},
		{"no content type", "POST", "/", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.path, nil)
			for k, v := range tc.header {
				r.Header.Set(k, v)
			}
			if got := sqs.IsRequest(r); got != tc.want {
				t.Fatalf("IsRequest(%s %s %v) = %v, want %v", tc.method, tc.path, tc.header, got, tc.want)
			}
		})
	}
}
