package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// BenchmarkSQS drives the SQS endpoint over AWS JSON 1.0 with requests
// encoded once, on the shared transport: a client as lean as the
// api.Client the native benchmarks use, so the two compare the servers
// (an SDK client costs the client far more CPU than the server, on the
// same 2 cores). Compare SendMessage with BenchmarkHTTPEnqueue/conc=64 of
// the same run, and SendMessageBatch with SendMessage; ns/op is per
// message.
func BenchmarkSQS(b *testing.B) {
	body := string(benchBody())
	for _, policy := range benchPolicies {
		b.Run(fmt.Sprintf("send/conc=64/sync=%s", policy), func(b *testing.B) {
			e := benchSpool(b, policy)
			req := sqsJSON(b, map[string]any{"QueueUrl": e.url + "/000000000000/bench", "MessageBody": body})
			records, fsyncs := e.records.Load(), e.fsyncs.Load()
			benchParallel(b, 64, b.N, benchRound, func() { e.drop(b) }, func() error {
				_, err := sqsCall(e.url, "SendMessage", req)
				return err
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			e.reportFsyncs(b, policy, records, fsyncs)
		})
		b.Run(fmt.Sprintf("sendbatch=10/conc=64/sync=%s", policy), func(b *testing.B) {
			e := benchSpool(b, policy)
			var entries []map[string]any
			for i := range 10 {
				entries = append(entries, map[string]any{"Id": fmt.Sprint("m", i), "MessageBody": body})
			}
			req := sqsJSON(b, map[string]any{"QueueUrl": e.url + "/000000000000/bench", "Entries": entries})
			calls := (b.N + 9) / 10
			benchParallel(b, 64, calls, benchRound/10, func() { e.drop(b) }, func() error {
				_, err := sqsCall(e.url, "SendMessageBatch", req)
				return err
			})
			b.ReportMetric(float64(calls*10)/b.Elapsed().Seconds(), "msgs/s")
		})
		b.Run(fmt.Sprintf("receive=10+deletebatch/conc=16/sync=%s", policy), func(b *testing.B) {
			e := benchSpool(b, policy)
			queueURL := e.url + "/000000000000/bench"
			recv := sqsJSON(b, map[string]any{"QueueUrl": queueURL, "MaxNumberOfMessages": 10})
			benchConsume(b, e, 16, func() (int, error) {
				out, err := sqsCall(e.url, "ReceiveMessage", recv)
				if err != nil {
					return 0, err
				}
				var got struct {
					Messages []struct{ ReceiptHandle string }
				}
				if err := json.Unmarshal(out, &got); err != nil || len(got.Messages) == 0 {
					return 0, err
				}
				var del strings.Builder
				fmt.Fprintf(&del, `{"QueueUrl":%q,"Entries":[`, queueURL)
				for i, m := range got.Messages {
					if i > 0 {
						del.WriteByte(',')
					}
					fmt.Fprintf(&del, `{"Id":"d%d","ReceiptHandle":%q}`, i, m.ReceiptHandle)
				}
				del.WriteString("]}")
				out, err = sqsCall(e.url, "DeleteMessageBatch", []byte(del.String()))
				if err == nil && bytes.Contains(out, []byte(`"Failed":[{`)) {
					err = fmt.Errorf("DeleteMessageBatch failed entries: %s", out)
				}
				return len(got.Messages), err
			})
		})
	}
}

func sqsJSON(b *testing.B, v any) []byte {
	b.Helper()
	out, err := json.Marshal(v)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// sqsCall posts one JSON 1.0 request and returns the reply's body, or an
// error for a reply other than 200.
func sqsCall(base, action string, body []byte) ([]byte, error) {
	req, err := http.NewRequest(http.MethodPost, base+"/", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Amz-Target", "AmazonSQS."+action)
	req.Header.Set("Content-Type", "application/x-amz-json-1.0")
	resp, err := benchTransport().RoundTrip(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s: %s", action, resp.Status, out)
	}
	return out, err
}
