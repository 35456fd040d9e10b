package fuzz

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/spoolq/spool/api/sqs"
)

// The credentials and clock of AWS's SigV4 test suite, which the seeds
// were signed with.
var (
	fuzzKeys = sqs.StaticKeys{"AKIDEXAMPLE": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}
	fuzzTime = time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC)
)

// FuzzVerify feeds arbitrary Authorization headers, queries and bodies to
// sqs.Verify (SigV4): whatever a client sends, it must answer with an error, not panic.
func FuzzVerify(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31", "", "20150830T123600Z", "")
	f.Add("", "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fservice%2Faws4_request&X-Amz-Date=20150830T123600Z&X-Amz-SignedHeaders=host&X-Amz-Expires=3600&X-Amz-Signature=e93c787ed7f371d5c6b165c1b38ede9550f4dce4144713e844b25b7192d3865d", "", "")
	f.Add("AWS4-HMAC-SHA256 Credential=/////, SignedHeaders=;;, Signature=", "a=%zz&&=&b", "2015", "body")
	f.Fuzz(func(t *testing.T, auth, query, date, body string) {
		r, err := http.NewRequest("POST", "http://example.amazonaws.com/", strings.NewReader(body))
		if err != nil {
			t.Skip()
		}
		r.URL.RawQuery = query
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		if date != "" {
			r.Header.Set("X-Amz-Date", date)
		}
		if _, err := sqs.Verify(r, []byte(body), fuzzKeys, fuzzTime); err == nil && query == "" && auth == "" {
			t.Fatal("unsigned request verified")
		}
	})
}
