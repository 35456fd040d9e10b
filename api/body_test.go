package api

import (
	"bytes"
	"strings"
	"testing"
)

func TestBodyCodec(t *testing.T) {
	t.Run("bytes come back unchanged through either field", func(t *testing.T) {
		for _, body := range [][]byte{{}, []byte("héllo"), []byte(`{"a":"\n"}`), {0xff, 0x00, 0xfe}, []byte("ok\xc3")} {
			text, b64 := encodeBody(body)
			got, err := decodeBody(7, text, b64)
			if err != nil || !bytes.Equal(got, body) {
				t.Errorf("%q: decodeBody(encodeBody) = %q, %v", body, got, err)
			}
		}
	})
	t.Run("valid UTF-8 travels as body, anything else as body_base64", func(t *testing.T) {
		if text, b64 := encodeBody([]byte("héllo")); text == nil || *text != "héllo" || b64 != nil {
			t.Errorf("text: body %v, body_base64 %v", text, b64)
		}
		if text, b64 := encodeBody([]byte{0xff}); text != nil || b64 == nil || *b64 != "/w==" {
			t.Errorf("binary: body %v, body_base64 %v", text, b64)
		}
	})
	str := func(s string) *string { return &s }
	for _, tc := range []struct {
		name      string
		text, b64 *string
		want      string
	}{
		{"both fields are refused", str("a"), str("YQ=="), "message 3 has both body and body_base64"},
		{"neither field is refused", nil, nil, "message 3 has neither body nor body_base64"},
		{"URL-safe base64 is refused", nil, str("-_-_"), "message 3: body_base64 is not standard base64"},
		{"unpadded base64 is refused", nil, str("YQ"), "message 3: body_base64 is not standard base64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeBody(3, tc.text, tc.b64)
			if err == nil || !strings.Contains(err.Error(), tc.want) || got != nil {
				t.Fatalf("decodeBody = %q, %v; want an error saying %q", got, err, tc.want)
			}
		})
	}
}
