package api

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"

	"github.com/spoolq/spool/api/sqs"
)

// TestSQSOnTheMainListener checks how the SQS endpoint sits on the
// service's listener: beside the API, sharing its queues, counted in its
// metrics, and guarded as the token and --sqs-keys say.
func TestSQSOnTheMainListener(t *testing.T) {
	ctx := context.Background()
	good := aws.Credentials{AccessKeyID: "AKIDGOOD", SecretAccessKey: "s3cret"}
	for _, tc := range []struct {
		name  string
		token string
		keys  sqs.StaticKeys
		creds aws.Credentials
		code  string // "" for success
	}{
		{"no token, no keys: any signature", "", nil, aws.Credentials{AccessKeyID: "anything", SecretAccessKey: "x"}, ""},
		{"keys: the right one", "", sqs.StaticKeys{"AKIDGOOD": "s3cret"}, good, ""},
		{"keys: a wrong secret", "", sqs.StaticKeys{"AKIDGOOD": "s3cret"}, aws.Credentials{AccessKeyID: "AKIDGOOD", SecretAccessKey: "guess"}, "SignatureDoesNotMatch"},
		{"token, no keys: refused", "tok", nil, good, "InvalidClientTokenId"},
		{"token and keys", "tok", sqs.StaticKeys{"AKIDGOOD": "s3cret"}, good, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := serviceOpen(t, &srvLogBuffer{}, ServiceConfig{API: Config{Token: tc.token, SQSKeys: tc.keys}})
			client := awssqs.New(awssqs.Options{
				Region: "us-east-1", BaseEndpoint: aws.String(s.URL()), RetryMaxAttempts: 1,
				Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return tc.creds, nil }),
			})
			out, err := client.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String("jobs")})
			if tc.code != "" {
				var ae smithy.APIError
				if !errors.As(err, &ae) || ae.ErrorCode() != tc.code {
					t.Fatalf("CreateQueue: %v, want %s", err, tc.code)
				}
				if n := len(s.Broker().List()); n != 0 {
					t.Fatalf("a refused CreateQueue made %d queues", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := client.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: out.QueueUrl, MessageBody: aws.String("over SQS")}); err != nil {
				t.Fatal(err)
			}
			// The native API sees the same queue and message.
			cl := NewClient(s.URL(), tc.token, nil)
			msgs, err := cl.Receive(ctx, "jobs", ReceiveOptions{})
			if err != nil || len(msgs) != 1 || msgs[0].Body == nil || *msgs[0].Body != "over SQS" {
				t.Fatalf("native receive = %v, %v", msgs, err)
			}
			text, err := cl.Metrics(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(text, `spool_http_requests_total{route="POST / (SQS)",status="200"} 2`) {
				t.Fatalf("/metrics does not count the two SQS requests:\n%s", text)
			}
		})
	}
}
