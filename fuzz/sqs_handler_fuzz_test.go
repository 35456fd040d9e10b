package fuzz

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spoolq/spool/api/sqs"
	"github.com/spoolq/spool/queue"
)

// sqsFuzzMaxMessageBytes is the SQS endpoint's message limit under
// fuzzing: small, so that mutations reach the size checks and a request
// body stays cheap.
const sqsFuzzMaxMessageBytes = 4 << 10

// sqsTarget is the SQS endpoint over one broker for every input of a
// fuzz target's process (a broker per input would spend the budget on
// directories and fsyncs). The broker lives in f.TempDir() and is closed
// by f.Cleanup. Every input finds the queues "q" and "dlq" (recreated if
// an input deleted them), with a few messages in q.
type sqsTarget struct {
	b *queue.Broker
	h *sqs.Handler
}

func newSQSTarget(f *testing.F) *sqsTarget {
	f.Helper()
	b, err := queue.Open(f.TempDir(), queue.Options{
		Sync: queue.SyncNone, MaintenanceInterval: -1, SegmentSize: 64 << 10,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { b.Close() })
	h := sqs.NewHandler(sqs.Config{
		Broker:          b,
		MaxMessageBytes: sqsFuzzMaxMessageBytes,
		// A receive's WaitTimeSeconds is bounded by this: no input waits
		// longer.
		MaxWait: time.Millisecond,
		Logger:  slog.New(slog.DiscardHandler),
	})
	s := &sqsTarget{b: b, h: h}
	if err := s.reset(); err != nil {
		f.Fatal(err)
	}
	return s
}

// sqsFuzzMaxQueues bounds the queues inputs may leave behind, and
// sqsFuzzMaxMessages the messages in q, so the cost of an input does not
// grow with the inputs before it.
const (
	sqsFuzzMaxQueues   = 16
	sqsFuzzMaxMessages = 256
)

// reset brings the broker back to what every input expects to find.
func (s *sqsTarget) reset() error {
	infos := s.b.List()
	if len(infos) > sqsFuzzMaxQueues {
		for _, info := range infos {
			if info.Name != "q" && info.Name != "dlq" {
				if err := s.b.Delete(info.Name); err != nil && !errors.Is(err, queue.ErrQueueNotFound) {
					return err
				}
			}
		}
	}
	for _, name := range []string{"dlq", "q"} {
		if _, err := s.b.Queue(name); errors.Is(err, queue.ErrQueueNotFound) {
			if _, _, err := s.b.Create(name, queue.ConfigUpdate{}); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
	}
	q, err := s.b.Queue("q")
	if err != nil {
		return err
	}
	info, err := q.Info()
	if err != nil {
		return err
	}
	if info.Counts.Total > sqsFuzzMaxMessages {
		if err := q.Purge(); err != nil {
			return err
		}
		info.Counts.Ready = 0
	}
	if info.Counts.Ready < 2 {
		// Ready messages for receives, one with SQS attributes and one
		// with bytes SQS cannot carry.
		_, err := q.Enqueue([]queue.NewMessage{
			{Body: []byte("hello <sqs> & co"), Attributes: map[string]string{"colour": "blue", "n": "12.5", "sqs:type:n": "Number", "bin": "AAE=", "sqs:type:bin": "Binary"}},
			{Body: []byte{'a', 0xff, 0, 'b'}},
		})
		return err
	}
	return nil
}

// serve runs one request through the endpoint.
func (s *sqsTarget) serve(t *testing.T, r *http.Request) *httptest.ResponseRecorder {
	if err := s.reset(); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	s.h.ServeHTTP(rec, r)
	return rec
}

// checkSQSStatus fails on a status the endpoint must never answer with:
// anything but 200, a 4xx, or the 503 of a broker going away. A 500 is
// InternalFailure, a failure the client is not told the detail of: no
// input should cause one.
func checkSQSStatus(t *testing.T, rec *httptest.ResponseRecorder, req string) {
	t.Helper()
	switch c := rec.Code; {
	case c == http.StatusOK, c >= 400 && c < 500, c == http.StatusServiceUnavailable:
	default:
		t.Fatalf("%s: status %d: %s", req, c, rec.Body.Bytes())
	}
}

// checkQueryErrorHeader checks the x-amzn-query-error header of a JSON
// error: "<query code>;Sender" or ";Receiver".
func checkQueryErrorHeader(t *testing.T, h http.Header, req string) {
	t.Helper()
	code, fault, ok := strings.Cut(h.Get("x-amzn-query-error"), ";")
	if !ok || code == "" || (fault != "Sender" && fault != "Receiver") {
		t.Fatalf("%s: x-amzn-query-error %q, want <code>;Sender|Receiver", req, h.Get("x-amzn-query-error"))
	}
}

// xmlElements checks that b is one well-formed XML document and returns
// its root element and the names of the root's children.
func xmlElements(b []byte) (root xml.Name, kids []string, err error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	depth, roots := 0, 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return root, kids, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			switch depth {
			case 0:
				root = tok.Name
				roots++
			case 1:
				kids = append(kids, tok.Name.Local)
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 && len(bytes.TrimSpace(tok)) > 0 {
				return root, kids, errors.New("text outside the root element")
			}
		}
	}
	if roots != 1 || depth != 0 {
		return root, kids, errors.New("not exactly one root element")
	}
	return root, kids, nil
}

const sqsXMLNamespace = "http://queue.amazonaws.com/doc/2012-11-05/"

// sqsQuerySeeds are the f.Add seeds of FuzzSQSQuery: every action, as
// botocore's query serializer sends it. testdata/fuzz/FuzzSQSQuery holds
// more.
var sqsQuerySeeds = []struct{ path, body string }{
	{"/", "Action=CreateQueue&Version=2012-11-05&QueueName=orders&Attribute.1.Name=VisibilityTimeout&Attribute.1.Value=45&Attribute.2.Name=DelaySeconds&Attribute.2.Value=0"},
	{"/", "Action=CreateQueue&Version=2012-11-05&QueueName=src&Attribute.1.Name=RedrivePolicy&Attribute.1.Value=%7B%22deadLetterTargetArn%22%3A%22arn%3Aaws%3Asqs%3Aus-east-1%3A000000000000%3Adlq%22%2C%22maxReceiveCount%22%3A%223%22%7D"},
	{"/", "Action=GetQueueUrl&Version=2012-11-05&QueueName=q"},
	{"/", "Action=ListQueues&Version=2012-11-05&QueueNamePrefix=q&MaxResults=1"},
	{"/", "Action=GetQueueAttributes&Version=2012-11-05&QueueUrl=http%3A%2F%2Fsqs.test%2F000000000000%2Fq&AttributeName.1=All"},
	{"/", "Action=SetQueueAttributes&Version=2012-11-05&QueueUrl=http%3A%2F%2Fsqs.test%2F000000000000%2Fq&Attribute.1.Name=VisibilityTimeout&Attribute.1.Value=60"},
	{"/", "Action=SendMessage&Version=2012-11-05&QueueUrl=http%3A%2F%2Fsqs.test%2F000000000000%2Fq&MessageBody=a%3Cb%3E%26%0D%0A&MessageAttribute.1.Name=n&MessageAttribute.1.Value.DataType=String&MessageAttribute.1.Value.StringValue=v"},
	{"/", "Action=SendMessageBatch&Version=2012-11-05&QueueUrl=http%3A%2F%2Fsqs.test%2F000000000000%2Fq&SendMessageBatchRequestEntry.1.Id=a&SendMessageBatchRequestEntry.1.MessageBody=x&SendMessageBatchRequestEntry.2.Id=b&SendMessageBatchRequestEntry.2.MessageBody=y&SendMessageBatchRequestEntry.2.DelaySeconds=1"},
	{"/", "Action=ReceiveMessage&Version=2012-11-05&QueueUrl=http%3A%2F%2Fsqs.test%2F000000000000%2Fq&MaxNumberOfMessages=10&AttributeName.1=All&MessageAttributeName.1=All&WaitTimeSeconds=20&VisibilityTimeout=0"},
	{"/", "Action=DeleteMessage&Version=2012-11-05&QueueUrl=http%3A%2F%2Fsqs.test%2F000000000000%2Fq&ReceiptHandle=1.1"},
	{"/", "Action=DeleteMessageBatch&Version=2012-11-05&QueueUrl=http%3A%2F%2Fsqs.test%2F000000000000%2Fq&DeleteMessageBatchRequestEntry.1.Id=a&DeleteMessageBatchRequestEntry.1.ReceiptHandle=1.1&DeleteMessageBatchRequestEntry.2.Id=b&DeleteMessageBatchRequestEntry.2.ReceiptHandle=junk"},
	{"/", "Action=ChangeMessageVisibility&Version=2012-11-05&QueueUrl=http%3A%2F%2Fsqs.test%2F000000000000%2Fq&ReceiptHandle=2.1&VisibilityTimeout=0"},
	{"/", "Action=ChangeMessageVisibilityBatch&Version=2012-11-05&QueueUrl=http%3A%2F%2Fsqs.test%2F000000000000%2Fq&ChangeMessageVisibilityBatchRequestEntry.1.Id=a&ChangeMessageVisibilityBatchRequestEntry.1.ReceiptHandle=1.1&ChangeMessageVisibilityBatchRequestEntry.1.VisibilityTimeout=30"},
	{"/", "Action=PurgeQueue&Version=2012-11-05&QueueUrl=http%3A%2F%2Fsqs.test%2F000000000000%2Fq"},
	{"/", "Action=DeleteQueue&Version=2012-11-05&QueueUrl=http%3A%2F%2Fsqs.test%2F000000000000%2Forders"},
	{"/", "Action=ListDeadLetterSourceQueues&Version=2012-11-05&QueueUrl=http%3A%2F%2Fsqs.test%2F000000000000%2Fdlq"},
	{"/", "Action=ListQueueTags&Version=2012-11-05&QueueUrl=http%3A%2F%2Fsqs.test%2F000000000000%2Fq"},
	{"/000000000000/q", "Action=SendMessage&Version=2012-11-05&MessageBody=by+path"},
	{"/", "Action=TagQueue&Version=2012-11-05&QueueUrl=q&Tag.1.Key=k&Tag.1.Value=v"},
	{"/", "Version=2012-11-05&Attribute.x.Name=a&%zz"},
}

// FuzzSQSQuery posts arbitrary forms, as the query protocol, to the SQS
// endpoint. Whatever the input: no panic; 200, a 4xx or 503; a 200 is one
// well-formed XML document, <ActionResponse> in SQS's namespace ending
// with its ResponseMetadata and RequestId; an error is SQS's
// <ErrorResponse> with a Type and a Code.
func FuzzSQSQuery(f *testing.F) {
	for _, s := range sqsQuerySeeds {
		f.Add(s.path, s.body)
	}
	s := newSQSTarget(f)
	f.Fuzz(func(t *testing.T, path, body string) {
		if len(body) > 1<<20 || len(path) > 1024 {
			return
		}
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		r, err := http.NewRequest(http.MethodPost, "http://sqs.test"+path, strings.NewReader(body))
		if err != nil {
			return // not a request a client could send
		}
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		rec := s.serve(t, r)
		req := "POST " + path + " " + body
		checkSQSStatus(t, rec, req)
		if ct := rec.Header().Get("Content-Type"); ct != "text/xml" {
			t.Fatalf("%s: Content-Type %q, want text/xml", req, ct)
		}
		reply := rec.Body.Bytes()
		if !bytes.HasPrefix(reply, []byte(xml.Header)) {
			t.Fatalf("%s: the reply has no XML declaration: %q", req, reply)
		}
		root, kids, err := xmlElements(reply)
		if err != nil {
			t.Fatalf("%s: status %d: the reply is not well-formed XML (%v): %q", req, rec.Code, err, reply)
		}
		if rec.Code != http.StatusOK {
			var e struct {
				XMLName   xml.Name `xml:"http://queue.amazonaws.com/doc/2012-11-05/ ErrorResponse"`
				Error     struct{ Type, Code, Message string }
				RequestId string
			}
			if err := xml.Unmarshal(reply, &e); err != nil || e.Error.Code == "" || e.RequestId == "" ||
				(e.Error.Type != "Sender" && e.Error.Type != "Receiver") {
				t.Fatalf("%s: status %d without SQS's ErrorResponse (%v): %q", req, rec.Code, err, reply)
			}
			return
		}
		// A 200 means the form parsed and named an action: the reply is
		// that action's.
		v, _ := url.ParseQuery(body)
		action := v.Get("Action")
		okKids := slices.Equal(kids, []string{action + "Result", "ResponseMetadata"}) || slices.Equal(kids, []string{"ResponseMetadata"})
		if root != (xml.Name{Space: sqsXMLNamespace, Local: action + "Response"}) || !okKids {
			t.Fatalf("%s: reply root %v with children %v: %q", req, root, kids, reply)
		}
		var env struct {
			ResponseMetadata struct{ RequestId string }
		}
		if err := xml.Unmarshal(reply, &env); err != nil || env.ResponseMetadata.RequestId == "" {
			t.Fatalf("%s: reply without a RequestId (%v): %q", req, err, reply)
		}
	})
}

// sqsJSONSeeds are the f.Add seeds of FuzzSQSJSON: every action, as the
// SDKs send it in AWS JSON 1.0. testdata/fuzz/FuzzSQSJSON holds more.
var sqsJSONSeeds = []struct{ action, body string }{
	{"CreateQueue", `{"QueueName":"orders","Attributes":{"VisibilityTimeout":"45","MessageRetentionPeriod":"3600"}}`},
	{"CreateQueue", `{"QueueName":"t","tags":{"team":"x"}}`},
	{"GetQueueUrl", `{"QueueName":"q"}`},
	{"CreateQueue", `{"QueueName":"f.fifo","Attributes":{"FifoQueue":"true","ContentBasedDeduplication":"true","DeduplicationScope":"messageGroup"}}`},
	{"SendMessage", `{"QueueUrl":"http://sqs.test/000000000000/f.fifo","MessageBody":"x","MessageGroupId":"g","MessageDeduplicationId":"d"}`},
	{"SendMessageBatch", `{"QueueUrl":"http://sqs.test/000000000000/f.fifo","Entries":[{"Id":"a","MessageBody":"x","MessageGroupId":"g"},{"Id":"b","MessageBody":"x","MessageGroupId":"g"}]}`},
	{"DeleteMessage", `{"QueueUrl":"http://sqs.test/000000000000/q","ReceiptHandle":"1-1.1"}`},
	{"ListQueues", `{"QueueNamePrefix":"q","MaxResults":1}`},
	{"GetQueueAttributes", `{"QueueUrl":"http://sqs.test/000000000000/q","AttributeNames":["All"]}`},
	{"SetQueueAttributes", `{"QueueUrl":"http://sqs.test/000000000000/q","Attributes":{"RedrivePolicy":"{\"deadLetterTargetArn\":\"arn:aws:sqs:us-east-1:000000000000:dlq\",\"maxReceiveCount\":3}"}}`},
	{"SendMessage", `{"QueueUrl":"http://sqs.test/000000000000/q","MessageBody":"a<b>","DelaySeconds":0,"MessageAttributes":{"n":{"DataType":"Number","StringValue":"1.5"},"b":{"DataType":"Binary","BinaryValue":"AAE="}},"MessageSystemAttributes":{"AWSTraceHeader":{"DataType":"String","StringValue":"Root=1-a"}}}`},
	{"SendMessageBatch", `{"QueueUrl":"http://sqs.test/000000000000/q","Entries":[{"Id":"a","MessageBody":"x"},{"Id":"b","MessageBody":"y","DelaySeconds":1}]}`},
	{"ReceiveMessage", `{"QueueUrl":"http://sqs.test/000000000000/q","MaxNumberOfMessages":10,"WaitTimeSeconds":20,"VisibilityTimeout":0,"MessageSystemAttributeNames":["All"],"MessageAttributeNames":["All"]}`},
	{"DeleteMessage", `{"QueueUrl":"http://sqs.test/000000000000/q","ReceiptHandle":"1.1"}`},
	{"DeleteMessageBatch", `{"QueueUrl":"http://sqs.test/000000000000/q","Entries":[{"Id":"a","ReceiptHandle":"1.1"},{"Id":"b","ReceiptHandle":"x"}]}`},
	{"ChangeMessageVisibility", `{"QueueUrl":"http://sqs.test/000000000000/q","ReceiptHandle":"2.1","VisibilityTimeout":0}`},
	{"ChangeMessageVisibilityBatch", `{"QueueUrl":"http://sqs.test/000000000000/q","Entries":[{"Id":"a","ReceiptHandle":"1.1","VisibilityTimeout":30}]}`},
	{"PurgeQueue", `{"QueueUrl":"http://sqs.test/000000000000/q"}`},
	{"DeleteQueue", `{"QueueUrl":"http://sqs.test/000000000000/orders"}`},
	{"ListDeadLetterSourceQueues", `{"QueueUrl":"http://sqs.test/000000000000/dlq","MaxResults":10}`},
	{"ListQueueTags", `{"QueueUrl":"http://sqs.test/000000000000/q"}`},
	{"TagQueue", `{"QueueUrl":"http://sqs.test/000000000000/q","Tags":{"a":"b"}}`},
	{"Nope", `[]`},
}

// FuzzSQSJSON sends arbitrary actions and bodies, as AWS JSON 1.0, to the
// SQS endpoint. Whatever the input: no panic; 200, a 4xx or 503; a 200 is
// a JSON object; an error is a JSON object whose __type names an SQS
// shape (com.amazonaws.sqs#...) with an x-amzn-query-error header.
func FuzzSQSJSON(f *testing.F) {
	for _, s := range sqsJSONSeeds {
		f.Add(s.action, []byte(s.body))
	}
	s := newSQSTarget(f)
	f.Fuzz(func(t *testing.T, action string, body []byte) {
		if len(body) > 1<<20 || len(action) > 1024 {
			return
		}
		r, err := http.NewRequest(http.MethodPost, "http://sqs.test/", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("X-Amz-Target", "AmazonSQS."+action)
		r.Header.Set("Content-Type", "application/x-amz-json-1.0")
		rec := s.serve(t, r)
		req := action + " " + string(body)
		checkSQSStatus(t, rec, req)
		if ct := rec.Header().Get("Content-Type"); ct != "application/x-amz-json-1.0" {
			t.Fatalf("%s: Content-Type %q", req, ct)
		}
		if rec.Header().Get("x-amzn-RequestId") == "" {
			t.Fatalf("%s: no x-amzn-RequestId", req)
		}
		reply := rec.Body.Bytes()
		if !json.Valid(reply) {
			t.Fatalf("%s: status %d: the reply is not JSON: %q", req, rec.Code, reply)
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(reply, &obj); err != nil {
			t.Fatalf("%s: status %d: the reply is not a JSON object: %q", req, rec.Code, reply)
		}
		if rec.Code == http.StatusOK {
			return
		}
		var e struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal(reply, &e); err != nil || !strings.HasPrefix(e.Type, "com.amazonaws.sqs#") || len(e.Type) == len("com.amazonaws.sqs#") {
			t.Fatalf("%s: status %d: error reply %q", req, rec.Code, reply)
		}
		checkQueryErrorHeader(t, rec.Header(), req)
	})
}
