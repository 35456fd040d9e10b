package api

import (
	"net/http"
	"strings"
	"testing"
)

func TestServerJSONErrorsSpeakTheAPI(t *testing.T) {
	f := srvStart(t, Config{})
	f.create("q", "")
	js := "application/json"
	for _, tt := range []struct {
		name, path, body string
		want             string
	}{
		{"a number for a duration", "/v1/queues/q", `{"visibility_timeout":30}`, `visibility_timeout must be a string like "30s", not a number`},
		{"a string for a number", "/v1/queues/q", `{"max_attempts":"5"}`, "max_attempts must be a number, not a string"},
		{"a fraction for a whole number", "/v1/queues/q", `{"max_length":1.5}`, "max_length must be a whole number, not 1.5"},
		{"an array for the body", "/v1/queues/q", `[1]`, "the body must be a JSON object, not an array"},
		{"a misspelt field names what the body takes", "/v1/queues/q", `{"visibilty_timeout":"1s"}`,
			`unknown field "visibilty_timeout" in the body; it takes visibility_timeout, max_attempts, dead_letter_queue, max_length, retention, delay`},
		{"a body cut short", "/v1/queues/q", `{"max_attempts":5`, "body ends in the middle of its JSON"},
		{"a message's field in a batch is named by its index", "/v1/queues/q/batch", `{"messages":[{"body":"a"},{"body":"b","delay":5}]}`,
			`messages[1].delay must be a string like "5s", not a number`},
		{"attributes that are not strings", "/v1/queues/q/batch", `{"messages":[{"body":"a","attributes":{"k":1}}]}`,
			`messages[0].attributes must be an object of strings`},
		{"a misspelt message field", "/v1/queues/q/batch", `{"messages":[{"bdy":"a"}]}`, `unknown field "bdy" in messages[0]; it takes body, body_base64, delay, attributes`},
		{"messages that are not an array", "/v1/queues/q/batch", `{"messages":{}}`, "messages must be an array of messages"},
		{"a receipt that is not a string", "/v1/queues/q/ack", `{"receipts":[42]}`, `receipts must be an array of receipt strings like ["42.3"], not a number`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := srvWantError(t, f.do(http.MethodPost, tt.path, tt.body, "Content-Type", js), http.StatusBadRequest, CodeInvalidRequest)
			if !strings.Contains(e.Message, tt.want) {
				t.Errorf("message %q lacks %q", e.Message, tt.want)
			}
			for _, goWord := range []string{"Go struct", "unmarshal", "QueueConfig", "json:"} {
				if strings.Contains(e.Message, goWord) {
					t.Errorf("message %q speaks Go (%q)", e.Message, goWord)
				}
			}
		})
	}
	t.Run("a stray closing brace after the body is refused, not ignored", func(t *testing.T) {
		srvWantError(t, f.do(http.MethodPost, "/v1/queues/q", `{"max_attempts":4}}`, "Content-Type", js), http.StatusBadRequest, CodeInvalidRequest)
		if got := f.info("q").MaxAttempts; got == 4 {
			t.Fatal("the refused update was applied")
		}
	})
}

func TestServerJSONIsNotHTMLEscaped(t *testing.T) {
	f := srvStart(t, Config{Token: "s3cret"})
	auth := []string{"Authorization", "Bearer s3cret"}
	t.Run("in an error message", func(t *testing.T) {
		r := f.get("/v1/queues")
		srvWantError(t, r, http.StatusUnauthorized, CodeUnauthorized)
		if !strings.Contains(string(r.body), "Bearer <token>") || strings.Contains(string(r.body), `\u003c`) {
			t.Fatalf("body %s: want <token> as written", r.body)
		}
	})
	t.Run("in a message listing and a receive", func(t *testing.T) {
		f.do(http.MethodPost, "/v1/queues/q", "", auth...)
		f.do(http.MethodPost, "/v1/queues/q/messages", "<b>fish & chips</b>", auth...)
		for _, r := range []srvResp{f.get("/v1/queues/q/messages", auth...), f.do(http.MethodPost, "/v1/queues/q/receive", "", auth...)} {
			srvWantStatus(t, r, http.StatusOK)
			if !strings.Contains(string(r.body), `"body":"<b>fish & chips</b>"`) {
				t.Fatalf("body %s: want the message as written", r.body)
			}
		}
	})
}
