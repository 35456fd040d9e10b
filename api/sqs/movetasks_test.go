package sqs_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

const arnPrefix = "arn:aws:sqs:us-east-1:000000000000:"

// deadLetter fills the dead-letter queue "dead" of the queue "work" with n
// messages: each is received once from work (maxReceiveCount 1) and made
// visible, which moves it to dead.
func deadLetter(t *testing.T, e *sdkEnv, n int) (work, dead string) {
	t.Helper()
	dead = e.create(t, "dead", nil)
	work = e.create(t, "work", map[string]string{"RedrivePolicy": `{"deadLetterTargetArn":"` + arnPrefix + `dead","maxReceiveCount":1}`})
	deadLetterMore(t, e, work, 0, n)
	waitFor(t, func() bool { return e.attrs(t, dead)["ApproximateNumberOfMessages"] == fmt.Sprint(n) })
	return work, dead
}

// deadLetterMore sends n messages to work, numbered from "job <from>",
// and makes each go to work's dead-letter queue.
func deadLetterMore(t *testing.T, e *sdkEnv, work string, from, n int) {
	t.Helper()
	ctx := context.Background()
	for i := from; i < from+n; i++ {
		if _, err := e.client.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: aws.String(work), MessageBody: aws.String(fmt.Sprint("job ", i)),
			MessageAttributes: map[string]types.MessageAttributeValue{"n": {DataType: aws.String("Number"), StringValue: aws.String(fmt.Sprint(i))}}}); err != nil {
			t.Fatal(err)
		}
		out, err := e.client.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: aws.String(work)})
		if err != nil || len(out.Messages) != 1 {
			t.Fatalf("receive: %v %v", out, err)
		}
		if _, err := e.client.ChangeMessageVisibility(ctx, &awssqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(work), ReceiptHandle: out.Messages[0].ReceiptHandle}); err != nil {
			t.Fatal(err)
		}
	}
}

// task is the latest move task of the queue named source.
func (e *sdkEnv) task(t *testing.T, source string) types.ListMessageMoveTasksResultEntry {
	t.Helper()
	out, err := e.client.ListMessageMoveTasks(context.Background(), &awssqs.ListMessageMoveTasksInput{SourceArn: aws.String(arnPrefix + source)})
	if err != nil || len(out.Results) != 1 {
		t.Fatalf("ListMessageMoveTasks: %+v %v", out, err)
	}
	return out.Results[0]
}

func TestSDKMessageMoveTaskToTheOrigin(t *testing.T) {
	ctx := context.Background()
	e := newSDKEnv(t, nil, testCreds)
	work, dead := deadLetter(t, e, 25)
	started, err := e.client.StartMessageMoveTask(ctx, &awssqs.StartMessageMoveTaskInput{SourceArn: aws.String(arnPrefix + "dead")})
	if err != nil || aws.ToString(started.TaskHandle) == "" {
		t.Fatalf("StartMessageMoveTask: %v %v", started, err)
	}
	waitFor(t, func() bool { return aws.ToString(e.task(t, "dead").Status) == "COMPLETED" })
	task := e.task(t, "dead")
	if task.ApproximateNumberOfMessagesMoved != 25 || aws.ToInt64(task.ApproximateNumberOfMessagesToMove) != 25 || task.TaskHandle != nil ||
		aws.ToString(task.SourceArn) != arnPrefix+"dead" || task.DestinationArn != nil {
		t.Fatalf("the completed task: %+v", task)
	}
	if a := e.attrs(t, dead); a["ApproximateNumberOfMessages"] != "0" || a["ApproximateNumberOfMessagesNotVisible"] != "0" {
		t.Fatalf("the dead-letter queue after the move: %v", a)
	}
	// Back in work, bodies and attributes as sent, each once.
	var bodies []string
	for {
		out, err := e.client.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: aws.String(work), MaxNumberOfMessages: 10, MessageAttributeNames: []string{"All"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			break
		}
		for _, m := range out.Messages {
			if want := "job " + aws.ToString(m.MessageAttributes["n"].StringValue); aws.ToString(m.Body) != want {
				t.Fatalf("moved message %q with attribute n=%v", aws.ToString(m.Body), m.MessageAttributes["n"])
			}
			bodies = append(bodies, aws.ToString(m.Body))
		}
	}
	slices.Sort(bodies)
	if len(slices.Compact(bodies)) != 25 {
		t.Fatalf("work holds %d distinct messages after the move, want 25: %v", len(bodies), bodies)
	}
}

func TestSDKMessageMoveTaskToADestinationAndCancel(t *testing.T) {
	ctx := context.Background()
	e := newSDKEnv(t, nil, testCreds)
	_, dead := deadLetter(t, e, 20)
	other := e.create(t, "other", nil)
	start := func(rate int32) (*awssqs.StartMessageMoveTaskOutput, error) {
		return e.client.StartMessageMoveTask(ctx, &awssqs.StartMessageMoveTaskInput{SourceArn: aws.String(arnPrefix + "dead"),
			DestinationArn: aws.String(arnPrefix + "other"), MaxNumberOfMessagesPerSecond: aws.Int32(rate)})
	}
	started, err := start(2) // slow enough to be running while it is cancelled
	if err != nil {
		t.Fatal(err)
	}
	_, err = start(2)
	wantCode(t, err, "AWS.SimpleQueueService.UnsupportedOperation") // one task per source at a time
	if task := e.task(t, "dead"); aws.ToString(task.Status) != "RUNNING" || aws.ToString(task.TaskHandle) != aws.ToString(started.TaskHandle) ||
		aws.ToString(task.DestinationArn) != arnPrefix+"other" || aws.ToInt32(task.MaxNumberOfMessagesPerSecond) != 2 {
		t.Fatalf("the running task: %+v", task)
	}
	if _, err := e.client.CancelMessageMoveTask(ctx, &awssqs.CancelMessageMoveTaskInput{TaskHandle: started.TaskHandle}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return aws.ToString(e.task(t, "dead").Status) == "CANCELLED" })
	moved := e.task(t, "dead").ApproximateNumberOfMessagesMoved
	// Nothing lost, nothing twice: every message is in one queue or the other.
	waitFor(t, func() bool { return e.attrs(t, dead)["ApproximateNumberOfMessagesNotVisible"] == "0" })
	inDead, inOther := e.attrs(t, dead)["ApproximateNumberOfMessages"], e.attrs(t, other)["ApproximateNumberOfMessages"]
	if inOther != fmt.Sprint(moved) || inDead != fmt.Sprint(20-moved) || moved >= 20 {
		t.Fatalf("after the cancel: %d moved, %s in dead, %s in other", moved, inDead, inOther)
	}
	_, err = e.client.CancelMessageMoveTask(ctx, &awssqs.CancelMessageMoveTaskInput{TaskHandle: started.TaskHandle})
	wantCode(t, err, "InvalidParameterValue") // not running any more

	// The errors.
	for _, tc := range []struct {
		in   awssqs.StartMessageMoveTaskInput
		code string
	}{
		{awssqs.StartMessageMoveTaskInput{SourceArn: aws.String(arnPrefix + "other")}, "InvalidParameterValue"}, // no queue's DLQ
		{awssqs.StartMessageMoveTaskInput{SourceArn: aws.String(arnPrefix + "missing")}, "ResourceNotFoundException"},
		{awssqs.StartMessageMoveTaskInput{SourceArn: aws.String("not-an-arn")}, "InvalidParameterValue"},
		{awssqs.StartMessageMoveTaskInput{SourceArn: aws.String(arnPrefix + "dead"), DestinationArn: aws.String(arnPrefix + "missing")}, "ResourceNotFoundException"},
		{awssqs.StartMessageMoveTaskInput{SourceArn: aws.String(arnPrefix + "dead"), DestinationArn: aws.String(arnPrefix + "dead")}, "InvalidParameterValue"}, // would move round for ever
		{awssqs.StartMessageMoveTaskInput{SourceArn: aws.String(arnPrefix + "dead"), MaxNumberOfMessagesPerSecond: aws.Int32(501)}, "InvalidParameterValue"},
	} {
		_, err := e.client.StartMessageMoveTask(ctx, &tc.in)
		wantCode(t, err, tc.code)
	}
	_, err = e.client.CancelMessageMoveTask(ctx, &awssqs.CancelMessageMoveTaskInput{TaskHandle: aws.String("dead:0000")})
	wantCode(t, err, "ResourceNotFoundException")
}

// A task moves the messages its source had ready when it started:
// messages dead-lettered while it runs stay for the next task.
func TestSDKMessageMoveTaskMovesWhatWasThere(t *testing.T) {
	ctx := context.Background()
	e := newSDKEnv(t, nil, testCreds)
	work, dead := deadLetter(t, e, 3)
	// Two messages a second: running while more are dead-lettered.
	if _, err := e.client.StartMessageMoveTask(ctx, &awssqs.StartMessageMoveTaskInput{SourceArn: aws.String(arnPrefix + "dead"),
		DestinationArn: aws.String(arnPrefix + "work"), MaxNumberOfMessagesPerSecond: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	deadLetterMore(t, e, work, 3, 2)
	waitFor(t, func() bool { return aws.ToString(e.task(t, "dead").Status) == "COMPLETED" })
	if task := e.task(t, "dead"); task.ApproximateNumberOfMessagesMoved != 3 || aws.ToInt64(task.ApproximateNumberOfMessagesToMove) != 3 {
		t.Fatalf("the completed task: %+v", task)
	}
	if a := e.attrs(t, dead); a["ApproximateNumberOfMessages"] != "2" {
		t.Fatalf("the dead-letter queue after the task holds %s messages, want the 2 that came later", a["ApproximateNumberOfMessages"])
	}
}

func TestSDKMessageMoveTaskWithNowhereToGo(t *testing.T) {
	ctx := context.Background()
	e := newSDKEnv(t, nil, testCreds)
	e.create(t, "dead", nil)
	e.create(t, "work", map[string]string{"RedrivePolicy": `{"deadLetterTargetArn":"` + arnPrefix + `dead","maxReceiveCount":3}`})
	// Sent to the dead-letter queue directly: it has no origin to go back to.
	if _, err := e.client.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: aws.String(e.url + "/000000000000/dead"), MessageBody: aws.String("stray")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.StartMessageMoveTask(ctx, &awssqs.StartMessageMoveTaskInput{SourceArn: aws.String(arnPrefix + "dead")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return aws.ToString(e.task(t, "dead").Status) == "FAILED" })
	if task := e.task(t, "dead"); aws.ToString(task.FailureReason) == "" || task.ApproximateNumberOfMessagesMoved != 0 {
		t.Fatalf("the failed task: %+v", task)
	}
	// The stray message is ready in the dead-letter queue again at once.
	if a := e.attrs(t, e.url+"/000000000000/dead"); a["ApproximateNumberOfMessages"] != "1" || a["ApproximateNumberOfMessagesNotVisible"] != "0" {
		t.Fatalf("the dead-letter queue after the failed task: %v", a)
	}
}
