package sqs_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/spoolq/spool/api/sqs"
	"github.com/spoolq/spool/queue"
)

// These tests drive the endpoint with aws-sdk-go-v2's SQS client, which
// speaks AWS JSON 1.0 and checks every MD5 the replies carry.

type sdkEnv struct {
	b      *queue.Broker
	client *awssqs.Client
	url    string
	// receiving gets a value as each ReceiveMessage reaches the server.
	receiving chan struct{}
	// close stops the server and closes the broker (a restart's first half).
	close func()
}

// newSDKEnv serves the endpoint over a fresh broker; keys nil accepts any
// signature. The client signs with creds.
func newSDKEnv(t *testing.T, keys sqs.Keys, creds aws.Credentials) *sdkEnv {
	t.Helper()
	return newSDKEnvAt(t, t.TempDir(), keys, creds)
}

// newSDKEnvAt is newSDKEnv over the data directory dir.
func newSDKEnvAt(t *testing.T, dir string, keys sqs.Keys, creds aws.Credentials) *sdkEnv {
	t.Helper()
	b, err := queue.Open(dir, queue.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	closing, stop := context.WithCancel(context.Background())
	h := sqs.NewHandler(sqs.Config{Broker: b, Keys: keys, Closing: closing, Logger: slog.New(slog.DiscardHandler)})
	receiving := make(chan struct{}, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Amz-Target") == "AmazonSQS.ReceiveMessage" {
			receiving <- struct{}{}
		}
		h.ServeHTTP(w, r)
	}))
	var once sync.Once
	closeAll := func() { once.Do(func() { stop(); srv.Close(); b.Close() }) }
	t.Cleanup(closeAll)
	client := awssqs.New(awssqs.Options{
		Region:           "eu-west-1",
		BaseEndpoint:     aws.String(srv.URL),
		RetryMaxAttempts: 1,
		Credentials:      aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return creds, nil }),
	})
	return &sdkEnv{b: b, client: client, url: srv.URL, receiving: receiving, close: closeAll}
}

var testCreds = aws.Credentials{AccessKeyID: "AKIDTEST", SecretAccessKey: "secret"}

func (e *sdkEnv) create(t *testing.T, name string, attrs map[string]string) string {
	t.Helper()
	out, err := e.client.CreateQueue(context.Background(), &awssqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if err != nil {
		t.Fatalf("CreateQueue %s: %v", name, err)
	}
	return *out.QueueUrl
}

func (e *sdkEnv) attrs(t *testing.T, url string) map[string]string {
	t.Helper()
	out, err := e.client.GetQueueAttributes(context.Background(), &awssqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url), AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameAll}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Attributes
}

// wantCode asserts err is the SDK's error with the given code.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("got %v, want the API error %s", err, code)
	}
	if ae.ErrorCode() != code {
		t.Fatalf("got error code %s (%s), want %s", ae.ErrorCode(), ae.ErrorMessage(), code)
	}
}

func TestSDKQueues(t *testing.T) {
	ctx := context.Background()
	e := newSDKEnv(t, nil, testCreds)
	url := e.create(t, "orders", map[string]string{"VisibilityTimeout": "45", "DelaySeconds": "0"})
	if want := e.url + "/000000000000/orders"; url != want {
		t.Fatalf("QueueUrl %s, want %s", url, want)
	}
	// The same attributes again: the same URL; others: QueueNameExists.
	if again := e.create(t, "orders", map[string]string{"VisibilityTimeout": "45"}); again != url {
		t.Fatalf("second CreateQueue gave %s, want %s", again, url)
	}
	_, err := e.client.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String("orders"), Attributes: map[string]string{"VisibilityTimeout": "46"}})
	wantCode(t, err, "QueueAlreadyExists")

	got, err := e.client.GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: aws.String("orders")})
	if err != nil || *got.QueueUrl != url {
		t.Fatalf("GetQueueUrl: %v %v", got, err)
	}
	_, err = e.client.GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: aws.String("nope")})
	var notExist *types.QueueDoesNotExist
	if !errors.As(err, &notExist) {
		t.Fatalf("GetQueueUrl of a missing queue: %v, want QueueDoesNotExist", err)
	}

	a := e.attrs(t, url)
	for k, v := range map[string]string{
		"VisibilityTimeout": "45", "DelaySeconds": "0", "MessageRetentionPeriod": "345600", "MaximumMessageSize": "262144",
		"ReceiveMessageWaitTimeSeconds": "0", "QueueArn": "arn:aws:sqs:us-east-1:000000000000:orders",
		"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0", "ApproximateNumberOfMessagesDelayed": "0",
	} {
		if a[k] != v {
			t.Errorf("attribute %s = %q, want %q", k, a[k], v)
		}
	}
	if _, ok := a["RedrivePolicy"]; ok {
		t.Errorf("a queue with no dead-letter queue reports RedrivePolicy %q", a["RedrivePolicy"])
	}
	// A queue made over SQS retries until messages expire, as SQS does.
	q, _ := e.b.Queue("orders")
	if c := q.Config(); c.MaxAttempts != queue.MaxMaxAttempts || c.VisibilityTimeout != 45*time.Second {
		t.Fatalf("spool config %+v", c)
	}

	if _, err := e.client.SetQueueAttributes(ctx, &awssqs.SetQueueAttributesInput{QueueUrl: aws.String(url),
		Attributes: map[string]string{"DelaySeconds": "7", "MessageRetentionPeriod": "3600"}}); err != nil {
		t.Fatal(err)
	}
	if a := e.attrs(t, url); a["DelaySeconds"] != "7" || a["MessageRetentionPeriod"] != "3600" {
		t.Fatalf("after SetQueueAttributes: %v", a)
	}
	// Bad attributes change nothing.
	for _, tc := range []struct {
		attrs map[string]string
		code  string
	}{
		{map[string]string{"VisibilityTimeout": "43201"}, "InvalidAttributeValue"},
		{map[string]string{"DelaySeconds": "x"}, "InvalidAttributeValue"},
		{map[string]string{"MessageRetentionPeriod": "59"}, "InvalidAttributeValue"},
		{map[string]string{"Colour": "blue"}, "InvalidAttributeName"},
		{map[string]string{"DelaySeconds": "1", "RedrivePolicy": `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:missing","maxReceiveCount":3}`}, "InvalidAttributeValue"},
		{map[string]string{"ReceiveMessageWaitTimeSeconds": "21"}, "InvalidAttributeValue"},
		{map[string]string{"MaximumMessageSize": "1023"}, "InvalidAttributeValue"},
	} {
		_, err := e.client.SetQueueAttributes(ctx, &awssqs.SetQueueAttributesInput{QueueUrl: aws.String(url), Attributes: tc.attrs})
		wantCode(t, err, tc.code)
	}
	if a := e.attrs(t, url); a["DelaySeconds"] != "7" || a["VisibilityTimeout"] != "45" {
		t.Fatalf("a refused SetQueueAttributes changed the queue: %v", a)
	}
	_, err = e.client.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []types.QueueAttributeName{"Colour"}})
	wantCode(t, err, "InvalidAttributeName")

	// ListQueues: a prefix, and pages.
	for _, n := range []string{"a1", "a2", "a3", "b1"} {
		e.create(t, n, nil)
	}
	lq, err := e.client.ListQueues(ctx, &awssqs.ListQueuesInput{QueueNamePrefix: aws.String("a")})
	if err != nil || len(lq.QueueUrls) != 3 || lq.NextToken != nil {
		t.Fatalf("ListQueues a: %v %v", lq, err)
	}
	var paged []string
	in := &awssqs.ListQueuesInput{MaxResults: aws.Int32(2)}
	for {
		lq, err := e.client.ListQueues(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, lq.QueueUrls...)
		if lq.NextToken == nil {
			break
		}
		in.NextToken = lq.NextToken
	}
	var names []string
	for _, u := range paged {
		names = append(names, u[strings.LastIndexByte(u, '/')+1:])
	}
	if want := []string{"a1", "a2", "a3", "b1", "orders"}; !slices.Equal(names, want) {
		t.Fatalf("paged ListQueues: %v, want %v", names, want)
	}

	// Bad names and bad tags are refused and create nothing.
	for _, tc := range []struct {
		in   awssqs.CreateQueueInput
		code string
	}{
		{awssqs.CreateQueueInput{QueueName: aws.String("has.dot")}, "InvalidParameterValue"},
		{awssqs.CreateQueueInput{QueueName: aws.String(strings.Repeat("x", 81))}, "InvalidParameterValue"},
		{awssqs.CreateQueueInput{QueueName: aws.String("jobs.fifo")}, "InvalidParameterValue"}, // a FIFO name without FifoQueue
		{awssqs.CreateQueueInput{QueueName: aws.String("tagged"), Tags: map[string]string{strings.Repeat("k", 129): "x"}}, "InvalidParameterValue"},
		{awssqs.CreateQueueInput{QueueName: aws.String("tagged"), Tags: map[string]string{"team": strings.Repeat("v", 257)}}, "InvalidParameterValue"},
	} {
		_, err := e.client.CreateQueue(ctx, &tc.in)
		wantCode(t, err, tc.code)
	}
	if n := len(e.b.List()); n != 5 {
		t.Fatalf("%d queues after refused creates, want 5", n)
	}
	// Tags: kept with the queue, through a restart (TestSDKQueueSettingsSurvive).
	tagsOf := func(u string) map[string]string {
		t.Helper()
		out, err := e.client.ListQueueTags(ctx, &awssqs.ListQueueTagsInput{QueueUrl: aws.String(u)})
		if err != nil {
			t.Fatal(err)
		}
		return out.Tags
	}
	if tags := tagsOf(url); len(tags) != 0 {
		t.Fatalf("a new queue's tags: %v", tags)
	}
	for _, tags := range []map[string]string{{"team": "ops", "tier": "1"}, {"tier": "2", "cost": ""}} {
		if _, err := e.client.TagQueue(ctx, &awssqs.TagQueueInput{QueueUrl: aws.String(url), Tags: tags}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.client.UntagQueue(ctx, &awssqs.UntagQueueInput{QueueUrl: aws.String(url), TagKeys: []string{"team", "absent"}}); err != nil {
		t.Fatal(err)
	}
	if tags := tagsOf(url); !maps.Equal(tags, map[string]string{"tier": "2", "cost": ""}) {
		t.Fatalf("tags after TagQueue and UntagQueue: %v", tags)
	}
	many := map[string]string{}
	for i := range 49 {
		many[fmt.Sprint("k", i)] = "v"
	}
	_, err = e.client.TagQueue(ctx, &awssqs.TagQueueInput{QueueUrl: aws.String(url), Tags: many}) // 51 in all
	wantCode(t, err, "InvalidParameterValue")
	if tags := tagsOf(url); len(tags) != 2 {
		t.Fatalf("a refused TagQueue changed the tags: %v", tags)
	}
	tagged := e.create(t, "tagged", nil)
	if _, err := e.client.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String("born-tagged"), Tags: map[string]string{"team": "x"}}); err != nil {
		t.Fatal(err)
	}
	if tags := tagsOf(e.url + "/000000000000/born-tagged"); !maps.Equal(tags, map[string]string{"team": "x"}) {
		t.Fatalf("CreateQueue's tags: %v", tags)
	}
	_, err = e.client.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String("tagged"), Tags: map[string]string{"team": "x"}})
	wantCode(t, err, "QueueAlreadyExists") // other tags than the queue has
	for _, u := range []string{tagged, e.url + "/000000000000/born-tagged"} {
		if _, err := e.client.DeleteQueue(ctx, &awssqs.DeleteQueueInput{QueueUrl: aws.String(u)}); err != nil {
			t.Fatal(err)
		}
	}

	if _, err := e.client.DeleteQueue(ctx, &awssqs.DeleteQueueInput{QueueUrl: aws.String(url)}); err != nil {
		t.Fatal(err)
	}
	_, err = e.client.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: aws.String(url)})
	wantCode(t, err, "AWS.SimpleQueueService.NonExistentQueue")
}

// TestSDKQueueSettingsSurvive: what spool keeps with a queue for SQS (tags,
// the default wait, a lower MaximumMessageSize) is used, and survives a
// restart.
func TestSDKQueueSettingsSurvive(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e := newSDKEnvAt(t, dir, nil, testCreds)
	url := e.create(t, "slow", map[string]string{"ReceiveMessageWaitTimeSeconds": "1", "MaximumMessageSize": "1024"})
	if _, err := e.client.TagQueue(ctx, &awssqs.TagQueueInput{QueueUrl: aws.String(url), Tags: map[string]string{"team": "ops"}}); err != nil {
		t.Fatal(err)
	}
	_, err := e.client.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(strings.Repeat("x", 1025))})
	wantCode(t, err, "InvalidParameterValue") // over the queue's MaximumMessageSize
	e.close()

	e = newSDKEnvAt(t, dir, nil, testCreds)
	a := e.attrs(t, url)
	if a["ReceiveMessageWaitTimeSeconds"] != "1" || a["MaximumMessageSize"] != "1024" {
		t.Fatalf("after a restart: %v", a)
	}
	tags, err := e.client.ListQueueTags(ctx, &awssqs.ListQueueTagsInput{QueueUrl: aws.String(url)})
	if err != nil || !maps.Equal(tags.Tags, map[string]string{"team": "ops"}) {
		t.Fatalf("tags after a restart: %v %v", tags, err)
	}
	// A receive that gives no WaitTimeSeconds long-polls the queue's 1 s.
	got := make(chan int, 1)
	go func() {
		out, err := e.client.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: aws.String(url)})
		if err != nil {
			t.Error(err)
		}
		got <- len(out.Messages)
	}()
	<-e.receiving
	if _, err := e.client.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("late")}); err != nil {
		t.Fatal(err)
	}
	if n := <-got; n != 1 {
		t.Fatalf("the default long poll got %d messages, want 1", n)
	}
	// Back to the defaults: the attributes are removed, not kept as 0.
	if _, err := e.client.SetQueueAttributes(ctx, &awssqs.SetQueueAttributesInput{QueueUrl: aws.String(url),
		Attributes: map[string]string{"ReceiveMessageWaitTimeSeconds": "0", "MaximumMessageSize": "1048576"}}); err != nil {
		t.Fatal(err)
	}
	q, _ := e.b.Queue("slow")
	if got := q.Attributes(); !maps.Equal(got, map[string]string{"sqs:tag:team": "ops"}) {
		t.Fatalf("kept attributes at the defaults: %v", got)
	}
	if a := e.attrs(t, url); a["ReceiveMessageWaitTimeSeconds"] != "0" || a["MaximumMessageSize"] != "262144" {
		t.Fatalf("at the defaults: %v", a)
	}
}

func TestSDKMessages(t *testing.T) {
	ctx := context.Background()
	e := newSDKEnv(t, nil, testCreds)
	url := e.create(t, "jobs", nil)

	attrs := map[string]types.MessageAttributeValue{
		"colour":     {DataType: aws.String("String"), StringValue: aws.String("blue")},
		"weight":     {DataType: aws.String("Number"), StringValue: aws.String("12.5")},
		"thumb":      {DataType: aws.String("Binary"), BinaryValue: []byte{0, 1, 2, 0xff}},
		"unit.label": {DataType: aws.String("String.unit"), StringValue: aws.String("kg")},
	}
	body := "héllo <world> & \"friends\"\n\ttab"
	sent, err := e.client.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(body), MessageAttributes: attrs,
		MessageSystemAttributes: map[string]types.MessageSystemAttributeValue{"AWSTraceHeader": {DataType: aws.String("String"), StringValue: aws.String("Root=1-abc")}}})
	if err != nil {
		t.Fatal(err) // the SDK checks MD5OfMessageBody and MD5OfMessageAttributes itself
	}
	if *sent.MD5OfMessageBody != sqs.MD5OfBody([]byte(body)) || sent.MD5OfMessageAttributes == nil || sent.MD5OfMessageSystemAttributes == nil {
		t.Fatalf("SendMessage reply %+v", sent)
	}

	recv, err := e.client.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10,
		MessageAttributeNames: []string{"All"}, MessageSystemAttributeNames: []types.MessageSystemAttributeName{"All"}})
	if err != nil {
		t.Fatal(err) // MD5OfBody and MD5OfMessageAttributes are checked here too
	}
	if len(recv.Messages) != 1 {
		t.Fatalf("received %d messages, want 1", len(recv.Messages))
	}
	m := recv.Messages[0]
	if *m.Body != body || *m.MessageId != *sent.MessageId {
		t.Fatalf("received %q id %s, sent %q id %s", *m.Body, *m.MessageId, body, *sent.MessageId)
	}
	if len(m.MessageAttributes) != len(attrs) {
		t.Fatalf("received attributes %v", m.MessageAttributes)
	}
	for k, want := range attrs {
		got := m.MessageAttributes[k]
		if *got.DataType != *want.DataType || aws.ToString(got.StringValue) != aws.ToString(want.StringValue) || string(got.BinaryValue) != string(want.BinaryValue) {
			t.Errorf("attribute %s: got %+v, want %+v", k, got, want)
		}
	}
	if m.Attributes["ApproximateReceiveCount"] != "1" || m.Attributes["AWSTraceHeader"] != "Root=1-abc" {
		t.Fatalf("system attributes %v", m.Attributes)
	}
	if ts, err := strconv.ParseInt(m.Attributes["SentTimestamp"], 10, 64); err != nil || time.Since(time.UnixMilli(ts)) > time.Minute {
		t.Fatalf("SentTimestamp %q", m.Attributes["SentTimestamp"])
	}
	if a := e.attrs(t, url); a["ApproximateNumberOfMessagesNotVisible"] != "1" || a["ApproximateNumberOfMessages"] != "0" {
		t.Fatalf("while leased: %v", a)
	}

	// Visibility 0 makes it visible at once; the old receipt is then stale.
	if _, err := e.client.ChangeMessageVisibility(ctx, &awssqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0}); err != nil {
		t.Fatal(err)
	}
	_, err = e.client.ChangeMessageVisibility(ctx, &awssqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 10})
	wantCode(t, err, "AWS.SimpleQueueService.MessageNotInflight")
	again, err := e.client.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: aws.String(url), MessageSystemAttributeNames: []types.MessageSystemAttributeName{"ApproximateReceiveCount"}})
	if err != nil || len(again.Messages) != 1 || again.Messages[0].Attributes["ApproximateReceiveCount"] != "2" {
		t.Fatalf("second receive: %+v %v", again, err)
	}
	if len(again.Messages[0].MessageAttributes) != 0 {
		t.Fatalf("a receive that named no message attributes got %v", again.Messages[0].MessageAttributes)
	}
	// A handle that is not the latest (received again since): the delete
	// succeeds and deletes nothing, as SQS documents.
	if _, err := e.client.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle}); err != nil {
		t.Fatal(err)
	}
	if a := e.attrs(t, url); a["ApproximateNumberOfMessagesNotVisible"] != "1" {
		t.Fatalf("a delete with an old receipt handle deleted the message: %v", a)
	}
	// Deleting twice is fine, as in SQS.
	for range 2 {
		if _, err := e.client.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: again.Messages[0].ReceiptHandle}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = e.client.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: aws.String("not-a-handle")})
	wantCode(t, err, "ReceiptHandleIsInvalid")

	// Bad sends are refused and enqueue nothing.
	for _, tc := range []struct {
		name string
		in   awssqs.SendMessageInput
		code string
	}{
		{"control character", awssqs.SendMessageInput{MessageBody: aws.String("a\x00b")}, "InvalidMessageContents"},
		{"delay too long", awssqs.SendMessageInput{MessageBody: aws.String("x"), DelaySeconds: 901}, "InvalidParameterValue"},
		{"reserved attribute name", awssqs.SendMessageInput{MessageBody: aws.String("x"), MessageAttributes: map[string]types.MessageAttributeValue{
			"AWS.thing": {DataType: aws.String("String"), StringValue: aws.String("v")}}}, "InvalidParameterValue"},
		{"bad number", awssqs.SendMessageInput{MessageBody: aws.String("x"), MessageAttributes: map[string]types.MessageAttributeValue{
			"n": {DataType: aws.String("Number"), StringValue: aws.String("twelve")}}}, "InvalidParameterValue"},
		{"bad data type", awssqs.SendMessageInput{MessageBody: aws.String("x"), MessageAttributes: map[string]types.MessageAttributeValue{
			"n": {DataType: aws.String("Integer"), StringValue: aws.String("1")}}}, "InvalidParameterValue"},
		{"too large", awssqs.SendMessageInput{MessageBody: aws.String(strings.Repeat("x", 256<<10+1))}, "InvalidParameterValue"},
		{"dedup id on a standard queue", awssqs.SendMessageInput{MessageBody: aws.String("x"), MessageDeduplicationId: aws.String("d")}, "InvalidParameterValue"},
	} {
		tc.in.QueueUrl = aws.String(url)
		_, err := e.client.SendMessage(ctx, &tc.in)
		if err == nil {
			t.Errorf("%s: sent", tc.name)
			continue
		}
		wantCode(t, err, tc.code)
	}
	if a := e.attrs(t, url); a["ApproximateNumberOfMessages"] != "0" {
		t.Fatalf("refused sends enqueued: %v", a)
	}
	_, err = e.client.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: aws.String(e.url + "/000000000000/nope"), MessageBody: aws.String("x")})
	wantCode(t, err, "AWS.SimpleQueueService.NonExistentQueue")
	_, err = e.client.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 11})
	wantCode(t, err, "InvalidParameterValue")
	_, err = e.client.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: aws.String(url), WaitTimeSeconds: 21})
	wantCode(t, err, "InvalidParameterValue")
}

func TestSDKBatches(t *testing.T) {
	ctx := context.Background()
	e := newSDKEnv(t, nil, testCreds)
	url := e.create(t, "batch", nil)

	var entries []types.SendMessageBatchRequestEntry
	for i := range 10 {
		entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String("m" + strconv.Itoa(i)), MessageBody: aws.String("body " + strconv.Itoa(i))})
	}
	entries[3].MessageBody = aws.String("bad\x01") // fails alone
	entries[7].DelaySeconds = 600                  // delayed
	out, err := e.client.SendMessageBatch(ctx, &awssqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Successful) != 9 || len(out.Failed) != 1 || *out.Failed[0].Id != "m3" || *out.Failed[0].Code != "InvalidMessageContents" || !out.Failed[0].SenderFault {
		t.Fatalf("SendMessageBatch: %d ok, failed %+v", len(out.Successful), out.Failed)
	}
	if a := e.attrs(t, url); a["ApproximateNumberOfMessages"] != "8" || a["ApproximateNumberOfMessagesDelayed"] != "1" {
		t.Fatalf("after the batch: %v", a)
	}

	// Batch-level errors.
	for _, tc := range []struct {
		entries []types.SendMessageBatchRequestEntry
		code    string
	}{
		{append(slices.Clone(entries), types.SendMessageBatchRequestEntry{Id: aws.String("m10"), MessageBody: aws.String("x")}), "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"},
		{[]types.SendMessageBatchRequestEntry{{Id: aws.String("a"), MessageBody: aws.String("x")}, {Id: aws.String("a"), MessageBody: aws.String("y")}}, "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"},
		{[]types.SendMessageBatchRequestEntry{{Id: aws.String("a b"), MessageBody: aws.String("x")}}, "AWS.SimpleQueueService.InvalidBatchEntryId"},
		{[]types.SendMessageBatchRequestEntry{{Id: aws.String("a"), MessageBody: aws.String(strings.Repeat("x", 200<<10))}, {Id: aws.String("b"), MessageBody: aws.String(strings.Repeat("x", 100<<10))}}, "AWS.SimpleQueueService.BatchRequestTooLong"},
	} {
		_, err := e.client.SendMessageBatch(ctx, &awssqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: tc.entries})
		wantCode(t, err, tc.code)
	}
	if a := e.attrs(t, url); a["ApproximateNumberOfMessages"] != "8" {
		t.Fatalf("refused batches enqueued: %v", a)
	}

	recv, err := e.client.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10})
	if err != nil || len(recv.Messages) != 8 {
		t.Fatalf("receive: %d messages, %v", len(recv.Messages), err)
	}
	var vis []types.ChangeMessageVisibilityBatchRequestEntry
	var del []types.DeleteMessageBatchRequestEntry
	for i, m := range recv.Messages {
		if i < 2 {
			vis = append(vis, types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String("v" + strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0})
		} else {
			del = append(del, types.DeleteMessageBatchRequestEntry{Id: aws.String("d" + strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle})
		}
	}
	vis = append(vis, types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String("bad"), ReceiptHandle: aws.String("garbage"), VisibilityTimeout: 5})
	cv, err := e.client.ChangeMessageVisibilityBatch(ctx, &awssqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(url), Entries: vis})
	if err != nil || len(cv.Successful) != 2 || len(cv.Failed) != 1 || *cv.Failed[0].Code != "ReceiptHandleIsInvalid" {
		t.Fatalf("ChangeMessageVisibilityBatch: %+v %v", cv, err)
	}
	del = append(del, types.DeleteMessageBatchRequestEntry{Id: aws.String("stale"), ReceiptHandle: vis[0].ReceiptHandle})
	dm, err := e.client.DeleteMessageBatch(ctx, &awssqs.DeleteMessageBatchInput{QueueUrl: aws.String(url), Entries: del})
	if err != nil || len(dm.Successful) != 7 || len(dm.Failed) != 0 { // the stale entry succeeds and deletes nothing
		t.Fatalf("DeleteMessageBatch: %+v %v", dm, err)
	}
	if a := e.attrs(t, url); a["ApproximateNumberOfMessages"] != "2" || a["ApproximateNumberOfMessagesNotVisible"] != "0" {
		t.Fatalf("after the batches: %v", a)
	}
}

func TestSDKRedriveAndLongPoll(t *testing.T) {
	ctx := context.Background()
	e := newSDKEnv(t, nil, testCreds)
	dlq := e.create(t, "dead", nil)
	src := e.create(t, "work", map[string]string{"RedrivePolicy": `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dead","maxReceiveCount":"1"}`})
	if p := e.attrs(t, src)["RedrivePolicy"]; p != `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dead","maxReceiveCount":1}` {
		t.Fatalf("RedrivePolicy %q", p)
	}
	srcs, err := e.client.ListDeadLetterSourceQueues(ctx, &awssqs.ListDeadLetterSourceQueuesInput{QueueUrl: aws.String(dlq)})
	if err != nil || !slices.Equal(srcs.QueueUrls, []string{src}) {
		t.Fatalf("ListDeadLetterSourceQueues: %v %v", srcs, err)
	}

	// A long poll is answered by the send that comes while it waits.
	got := make(chan *awssqs.ReceiveMessageOutput, 1)
	go func() {
		out, err := e.client.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: aws.String(src), WaitTimeSeconds: 20})
		if err != nil {
			t.Error(err)
		}
		got <- out
	}()
	q, _ := e.b.Queue("work")
	<-e.receiving // the receive reached the server (it may or may not be parked yet: both must deliver)
	if _, err := e.client.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: aws.String(src), MessageBody: aws.String("poison")}); err != nil {
		t.Fatal(err)
	}
	out := <-got
	if out == nil || len(out.Messages) != 1 || *out.Messages[0].Body != "poison" {
		t.Fatalf("long poll got %+v", out)
	}
	// Its one receive used, making it visible again sends it to the DLQ.
	if _, err := e.client.ChangeMessageVisibility(ctx, &awssqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(src), ReceiptHandle: out.Messages[0].ReceiptHandle}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return e.attrs(t, dlq)["ApproximateNumberOfMessages"] == "1" })

	// Removing the policy: no dead-letter queue, retried until expiry.
	if _, err := e.client.SetQueueAttributes(ctx, &awssqs.SetQueueAttributesInput{QueueUrl: aws.String(src), Attributes: map[string]string{"RedrivePolicy": ""}}); err != nil {
		t.Fatal(err)
	}
	if c := q.Config(); c.DeadLetterQueue != "" || c.MaxAttempts != queue.MaxMaxAttempts {
		t.Fatalf("after removing the policy: %+v", c)
	}
}

func TestSDKSignatures(t *testing.T) {
	keys := sqs.StaticKeys{"AKIDGOOD": "good-secret"}
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		creds aws.Credentials
		code  string
	}{
		{"right key", aws.Credentials{AccessKeyID: "AKIDGOOD", SecretAccessKey: "good-secret"}, ""},
		{"wrong secret", aws.Credentials{AccessKeyID: "AKIDGOOD", SecretAccessKey: "guess"}, "SignatureDoesNotMatch"},
		{"unknown key", aws.Credentials{AccessKeyID: "AKIDWHO", SecretAccessKey: "good-secret"}, "InvalidClientTokenId"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newSDKEnv(t, keys, tc.creds)
			_, err := e.client.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String("q")})
			if tc.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantCode(t, err, tc.code)
			if n := len(e.b.List()); n != 0 {
				t.Fatalf("an unauthenticated CreateQueue made %d queues", n)
			}
		})
	}
}

// waitFor polls cond until it holds, failing the test after a deadline.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
