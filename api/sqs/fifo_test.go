package sqs_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// FIFO queues through aws-sdk-go-v2: creation rules, group order, one
// group in flight at a time, deduplication (explicit, content-based,
// per group, and across a restart), SequenceNumber and the errors.

func TestSDKFIFOCreate(t *testing.T) {
	ctx := context.Background()
	e := newSDKEnv(t, nil, testCreds)
	url := e.create(t, "jobs.fifo", map[string]string{"FifoQueue": "true", "ContentBasedDeduplication": "true"})
	a := e.attrs(t, url)
	if a["FifoQueue"] != "true" || a["ContentBasedDeduplication"] != "true" || a["DeduplicationScope"] != "queue" || a["FifoThroughputLimit"] != "perQueue" {
		t.Fatalf("a FIFO queue's attributes: %v", a)
	}
	if std := e.attrs(t, e.create(t, "plain", nil)); std["FifoQueue"] != "" || std["ContentBasedDeduplication"] != "" {
		t.Fatalf("a standard queue reports FIFO attributes: %v", std)
	}
	// The same create again answers with the URL; another kind is refused.
	if again := e.create(t, "jobs.fifo", map[string]string{"FifoQueue": "true", "ContentBasedDeduplication": "true"}); again != url {
		t.Fatalf("CreateQueue again: %s, want %s", again, url)
	}
	if _, err := e.client.SetQueueAttributes(ctx, &awssqs.SetQueueAttributesInput{QueueUrl: aws.String(url),
		Attributes: map[string]string{"DeduplicationScope": "messageGroup", "FifoThroughputLimit": "perMessageGroupId"}}); err != nil {
		t.Fatal(err)
	}
	if a := e.attrs(t, url); a["DeduplicationScope"] != "messageGroup" || a["FifoThroughputLimit"] != "perMessageGroupId" {
		t.Fatalf("after SetQueueAttributes: %v", a)
	}
	e.create(t, "dead.fifo", map[string]string{"FifoQueue": "true"})
	if _, err := e.client.SetQueueAttributes(ctx, &awssqs.SetQueueAttributesInput{QueueUrl: aws.String(url),
		Attributes: map[string]string{"RedrivePolicy": `{"deadLetterTargetArn":"` + arnPrefix + `dead.fifo","maxReceiveCount":2}`}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		attrs map[string]string
		code  string
	}{
		{"jobs2.fifo", nil, "InvalidParameterValue"},                                                                      // a .fifo name needs FifoQueue true
		{"jobs2", map[string]string{"FifoQueue": "true"}, "InvalidParameterValue"},                                        // FifoQueue true needs the suffix
		{"jobs.fifo", map[string]string{"FifoQueue": "true", "ContentBasedDeduplication": "false"}, "QueueAlreadyExists"}, // other values than the queue's
		{"plain.fifo", map[string]string{"FifoQueue": "yes"}, "InvalidAttributeValue"},                                    //
		{"plain2", map[string]string{"ContentBasedDeduplication": "true"}, "InvalidAttributeName"},                        // a FIFO attribute on a standard queue
		{"x.fifo", map[string]string{"FifoQueue": "true", "DeduplicationScope": "group"}, "InvalidAttributeValue"},
		{"y.fifo", map[string]string{"FifoQueue": "true", "RedrivePolicy": `{"deadLetterTargetArn":"` + arnPrefix + `plain","maxReceiveCount":2}`}, "InvalidParameterValue"},
	} {
		_, err := e.client.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String(tc.name), Attributes: tc.attrs})
		wantCode(t, err, tc.code)
	}
	_, err := e.client.SetQueueAttributes(ctx, &awssqs.SetQueueAttributesInput{QueueUrl: aws.String(url), Attributes: map[string]string{"FifoQueue": "false"}})
	wantCode(t, err, "InvalidAttributeValue")
}

func sendFIFO(t *testing.T, e *sdkEnv, url, group, body, dedup string) *awssqs.SendMessageOutput {
	t.Helper()
	in := &awssqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(body), MessageGroupId: aws.String(group)}
	if dedup != "" {
		in.MessageDeduplicationId = aws.String(dedup)
	}
	out, err := e.client.SendMessage(context.Background(), in)
	if err != nil {
		t.Fatalf("SendMessage %s/%s: %v", group, body, err)
	}
	return out
}

func receiveFIFO(t *testing.T, e *sdkEnv, url string, max int32) []types.Message {
	t.Helper()
	out, err := e.client.ReceiveMessage(context.Background(), &awssqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: max,
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll}, ReceiveRequestAttemptId: aws.String("attempt-1")})
	if err != nil {
		t.Fatal(err)
	}
	return out.Messages
}

func bodiesOf(msgs []types.Message) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, aws.ToString(m.Body))
	}
	return out
}

func TestSDKFIFOGroupsAndDedup(t *testing.T) {
	ctx := context.Background()
	e := newSDKEnv(t, nil, testCreds)
	url := e.create(t, "orders.fifo", map[string]string{"FifoQueue": "true"})
	var seqs []string
	for _, gb := range [][2]string{{"a", "a1"}, {"b", "b1"}, {"a", "a2"}, {"b", "b2"}, {"a", "a3"}} {
		out := sendFIFO(t, e, url, gb[0], gb[1], "d-"+gb[1])
		seqs = append(seqs, aws.ToString(out.SequenceNumber))
	}
	if !slices.IsSorted(seqs) || len(slices.Compact(slices.Clone(seqs))) != 5 {
		t.Fatalf("SequenceNumbers %v: want five, increasing", seqs)
	}
	// A duplicate is accepted with the first's id and sequence number, and
	// not delivered again.
	dup := sendFIFO(t, e, url, "a", "a1 again", "d-a1")
	if aws.ToString(dup.SequenceNumber) != seqs[0] {
		t.Fatalf("a duplicate's SequenceNumber %s, want the first's %s", aws.ToString(dup.SequenceNumber), seqs[0])
	}

	// One receive takes both groups' heads in order; then both are held.
	first := receiveFIFO(t, e, url, 2)
	if got := bodiesOf(first); !slices.Equal(got, []string{"a1", "a2"}) && !slices.Equal(got, []string{"a1", "b1"}) {
		t.Fatalf("first receive: %v", got)
	}
	m := first[0]
	if m.Attributes["MessageGroupId"] != "a" || m.Attributes["MessageDeduplicationId"] != "d-a1" || m.Attributes["SequenceNumber"] != seqs[0] {
		t.Fatalf("a FIFO message's system attributes: %v", m.Attributes)
	}
	var all []types.Message
	all = append(all, first...)
	for len(all) < 5 {
		got := receiveFIFO(t, e, url, 10)
		for _, m := range got {
			group := m.Attributes["MessageGroupId"]
			for _, held := range all {
				if held.Attributes["MessageGroupId"] == group && held.ReceiptHandle != nil {
					t.Fatalf("%s received while %s of its group is in flight", aws.ToString(m.Body), aws.ToString(held.Body))
				}
			}
		}
		all = append(all, got...)
		if len(got) == 0 {
			// Everything ready is held: delete what is in flight, in order.
			deleted := 0
			for i := range all {
				if all[i].ReceiptHandle != nil {
					if _, err := e.client.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: all[i].ReceiptHandle}); err != nil {
						t.Fatal(err)
					}
					all[i].ReceiptHandle = nil
					deleted++
				}
			}
			if deleted == 0 {
				t.Fatalf("nothing in flight and nothing received after %v", bodiesOf(all))
			}
		}
	}
	var a, b []string
	for _, m := range all {
		if m.Attributes["MessageGroupId"] == "a" {
			a = append(a, aws.ToString(m.Body))
		} else {
			b = append(b, aws.ToString(m.Body))
		}
	}
	if !slices.Equal(a, []string{"a1", "a2", "a3"}) || !slices.Equal(b, []string{"b1", "b2"}) {
		t.Fatalf("received a %v and b %v: each group in order, each message once", a, b)
	}

	// The errors of a send to a FIFO queue.
	for _, tc := range []struct {
		in   awssqs.SendMessageInput
		code string
	}{
		{awssqs.SendMessageInput{MessageBody: aws.String("x"), MessageDeduplicationId: aws.String("d")}, "MissingParameter"},
		{awssqs.SendMessageInput{MessageBody: aws.String("x"), MessageGroupId: aws.String("g")}, "InvalidParameterValue"}, // no id, no content dedup
		{awssqs.SendMessageInput{MessageBody: aws.String("x"), MessageGroupId: aws.String("g"), MessageDeduplicationId: aws.String("d"), DelaySeconds: 5}, "InvalidParameterValue"},
		{awssqs.SendMessageInput{MessageBody: aws.String("x"), MessageGroupId: aws.String("g g"), MessageDeduplicationId: aws.String("d")}, "InvalidParameterValue"},
	} {
		tc.in.QueueUrl = aws.String(url)
		_, err := e.client.SendMessage(ctx, &tc.in)
		wantCode(t, err, tc.code)
	}
	// A standard queue refuses a deduplication id.
	plain := e.create(t, "plain", nil)
	_, err := e.client.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: aws.String(plain), MessageBody: aws.String("x"), MessageDeduplicationId: aws.String("d")})
	wantCode(t, err, "InvalidParameterValue")
}

func TestSDKFIFOContentDedupAndScope(t *testing.T) {
	ctx := context.Background()
	e := newSDKEnv(t, nil, testCreds)
	url := e.create(t, "c.fifo", map[string]string{"FifoQueue": "true", "ContentBasedDeduplication": "true", "DeduplicationScope": "messageGroup"})
	first := sendFIFO(t, e, url, "g1", "same body", "")
	if again := sendFIFO(t, e, url, "g1", "same body", ""); aws.ToString(again.MessageId) != aws.ToString(first.MessageId) {
		t.Fatalf("the same body in the same group: ids %s and %s", aws.ToString(first.MessageId), aws.ToString(again.MessageId))
	}
	// Scope messageGroup: the same body in another group is another message.
	other := sendFIFO(t, e, url, "g2", "same body", "")
	if aws.ToString(other.MessageId) == aws.ToString(first.MessageId) {
		t.Fatal("the same body in another group was taken as a duplicate under DeduplicationScope messageGroup")
	}
	// A batch: entries keep their order within a group, duplicates included.
	out, err := e.client.SendMessageBatch(ctx, &awssqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: []types.SendMessageBatchRequestEntry{
		{Id: aws.String("1"), MessageBody: aws.String("b1"), MessageGroupId: aws.String("g3")},
		{Id: aws.String("2"), MessageBody: aws.String("b2"), MessageGroupId: aws.String("g3")},
		{Id: aws.String("3"), MessageBody: aws.String("b1"), MessageGroupId: aws.String("g3")}, // a duplicate of 1
	}})
	if err != nil || len(out.Successful) != 3 {
		t.Fatalf("SendMessageBatch: %+v %v", out, err)
	}
	if aws.ToString(out.Successful[2].MessageId) != aws.ToString(out.Successful[0].MessageId) || aws.ToString(out.Successful[0].SequenceNumber) == "" {
		t.Fatalf("batch results: %+v", out.Successful)
	}
	got := receiveFIFO(t, e, url, 10)
	sum := sha256.Sum256([]byte("same body"))
	var bodies []string
	for _, m := range got {
		bodies = append(bodies, m.Attributes["MessageGroupId"]+":"+aws.ToString(m.Body))
		if aws.ToString(m.Body) == "same body" && m.Attributes["MessageDeduplicationId"] != hex.EncodeToString(sum[:]) {
			t.Fatalf("content-based MessageDeduplicationId %q", m.Attributes["MessageDeduplicationId"])
		}
	}
	if !slices.Equal(bodies, []string{"g1:same body", "g2:same body", "g3:b1", "g3:b2"}) {
		t.Fatalf("received %v", bodies)
	}
}

// The deduplication window and a group's hold survive a restart.
func TestSDKFIFORestart(t *testing.T) {
	dir := t.TempDir()
	e := newSDKEnvAt(t, dir, nil, testCreds)
	url := e.create(t, "r.fifo", map[string]string{"FifoQueue": "true", "VisibilityTimeout": "600"})
	first := sendFIFO(t, e, url, "g", "one", "k1")
	sendFIFO(t, e, url, "g", "two", "k2")
	if got := bodiesOf(receiveFIFO(t, e, url, 1)); !slices.Equal(got, []string{"one"}) {
		t.Fatalf("before the restart: %v", got)
	}
	e.close()

	e = newSDKEnvAt(t, dir, nil, testCreds)
	url = e.url + "/000000000000/r.fifo"
	if dup := sendFIFO(t, e, url, "g", "one again", "k1"); aws.ToString(dup.MessageId) != aws.ToString(first.MessageId) {
		t.Fatalf("after the restart a duplicate got id %s, want %s", aws.ToString(dup.MessageId), aws.ToString(first.MessageId))
	}
	if got := receiveFIFO(t, e, url, 10); len(got) != 0 {
		t.Fatalf("after the restart the group's held message let %v through", bodiesOf(got))
	}
	if a := e.attrs(t, url); a["ApproximateNumberOfMessages"] != "1" || a["ApproximateNumberOfMessagesNotVisible"] != "1" {
		t.Fatalf("after the restart: %v", a)
	}
}
