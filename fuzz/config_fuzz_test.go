package fuzz

import (
	"encoding/json"
	"hash/crc32"
	"testing"

	"github.com/spoolq/spool/queue"
)

// FuzzDecodeConfigFile feeds arbitrary bytes to queue.DecodeConfigFile as
// queue.json, topic.json and sub.json's config types.
//
// Properties: it never panics; what it accepts, encoded again the way
// spool writes config files, decodes to the same config.
func FuzzDecodeConfigFile(f *testing.F) {
	f.Add([]byte(`{"version":1,"config":{"retention":"168h0m0s","max_bytes":0},"crc32c":0}`))
	f.Add([]byte(`{"version": 1, "config": {"visibility_timeout": "30s", "max_attempts": 5, "dead_letter_queue": "", "max_length": 0, "retention": "0s", "delay": "0s"}, "crc32c": 1}`))
	f.Add([]byte(`{"version":2,"config":{},"crc32c":0}`))
	f.Add([]byte(`{"version":1,"config":{"config":{"visibility_timeout":"30s","max_attempts":5,"dead_letter_queue":""},"start_id":"17"},"crc32c":7}`))
	for _, v := range []any{queue.DefaultConfig, queue.DefaultTopicConfig, queue.DefaultSubscriptionConfig} {
		f.Add(encodeConfigFile(f, v))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var qc queue.Config
		if queue.DecodeConfigFile(data, &qc) == nil {
			var again queue.Config
			if err := queue.DecodeConfigFile(encodeConfigFile(t, qc), &again); err != nil || again != qc {
				t.Fatalf("queue config %+v re-encoded decodes to %+v, %v", qc, again, err)
			}
		}
		var tc queue.TopicConfig
		if queue.DecodeConfigFile(data, &tc) == nil {
			var again queue.TopicConfig
			if err := queue.DecodeConfigFile(encodeConfigFile(t, tc), &again); err != nil || again != tc {
				t.Fatalf("topic config %+v re-encoded decodes to %+v, %v", tc, again, err)
			}
		}
		var sc queue.SubscriptionConfig
		queue.DecodeConfigFile(data, &sc) // must not panic
	})
}

// encodeConfigFile builds a config file as spool writes one (the envelope
// is documented in queue.DecodeConfigFile): compact config JSON, its
// CRC-32C, version 1.
func encodeConfigFile(tb testing.TB, v any) []byte {
	cfg, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := json.Marshal(map[string]any{"version": 1, "config": json.RawMessage(cfg), "crc32c": crc32.Checksum(cfg, castagnoli)})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// FuzzParsePosition feeds arbitrary text to queue.ParsePosition (the
// "start" and "to" of the HTTP API and the CLI).
//
// Properties: it never panics; what it accepts prints (String) as text it
// parses back to the same position.
func FuzzParsePosition(f *testing.F) {
	for _, s := range []string{"earliest", "latest", "1", "42", "18446744073709551615", "18446744073709551616", "0", "-1",
		"2026-12-02T05:00:00Z", "2026-12-02T05:00:00.123456789+01:00", "2026-13-02T05:00:00Z", "", "Earliest", " 1", "1e3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := queue.ParsePosition(s)
		if err != nil {
			return
		}
		q, err := queue.ParsePosition(p.String())
		if err != nil {
			t.Fatalf("ParsePosition(%q) = %v, whose String %q does not parse: %v", s, p, p.String(), err)
		}
		if p.String() != q.String() {
			t.Fatalf("ParsePosition(%q): %q parses back as %q", s, p.String(), q.String())
		}
	})
}
