package fuzz

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/spoolq/spool/api"
)

// FuzzParseStreamCommand feeds arbitrary lines to api.ParseStreamCommand,
// the decoder of POST .../stream's request body.
//
// Properties: it never panics; what it accepts, encoded as JSON, parses
// back to the same command (its canonical form is a fixed point).
func FuzzParseStreamCommand(f *testing.F) {
	for _, s := range []string{
		`{"ack":"42.3"}`, `{"nack":"1.1","position":"front","delay":"5s"}`, `{"nack":"1.1","position":"back"}`,
		`{"extend":"7.2","visibility":"1m"}`, `{"fail":"9.9"}`, `{"credit":0}`, `{"credit":1000}`, `{"credit":-1}`,
		`{"ack":"1.1","fail":"1.1"}`, `{"ack":"1.1","colour":"red"}`, `{"ack":"0.1"}`, `{"ack":"1.70000"}`,
		`{"nack":"1.1","delay":"-1s"}`, `{"extend":"1.1","delay":"1s"}`, `{}`, `null`, `[]`, `{"ack":"1.1"} {"ack":"2.1"}`,
		"\xff", `{"ack":"18446744073709551615.65535"}`, `{"nack":"3.1","delay":"1h0m0.5s"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		c, err := api.ParseStreamCommand(line, 1000)
		if err != nil {
			return
		}
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		again, err := api.ParseStreamCommand(b, 1000)
		if err != nil {
			t.Fatalf("%q parsed as %s, which does not parse: %v", line, b, err)
		}
		if !reflect.DeepEqual(c, again) {
			t.Fatalf("%q parsed as %+v; its JSON %s parses as %+v", line, c, b, again)
		}
	})
}
