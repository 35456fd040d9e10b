package api

import (
	"encoding/base64"
	"fmt"
	"unicode/utf8"
)

// The body codec. In JSON a message's bytes travel in exactly one of two
// fields: "body", the bytes as a string, when they are valid UTF-8
// (readable in logs and by curl users), else "body_base64", standard
// base64, which carries any bytes unchanged. encodeBody and decodeBody are
// the only code that knows this rule: the server encodes replies and
// decodes batches with them, Client encodes batches and decodes replies
// with the same two, so both ends choose and check alike.

// encodeBody returns the fields that carry body: text when body is valid
// UTF-8, else b64. Exactly one is set.
func encodeBody(body []byte) (text, b64 *string) {
	if utf8.Valid(body) {
		s := string(body)
		return &s, nil
	}
	s := base64.StdEncoding.EncodeToString(body)
	return nil, &s
}

// decodeBody returns the bytes that the fields text and b64 carry.
// Exactly one must be set, and b64 must be standard base64 (padded, not
// the URL-safe alphabet). msg names the message in an error: its index in
// a batch, or its id.
func decodeBody(msg any, text, b64 *string) ([]byte, error) {
	switch {
	case text != nil && b64 != nil:
		return nil, fmt.Errorf("message %v has both body and body_base64", msg)
	case text != nil:
		return []byte(*text), nil
	case b64 != nil:
		b, err := base64.StdEncoding.DecodeString(*b64)
		if err != nil {
			return nil, fmt.Errorf("message %v: body_base64 is not standard base64", msg)
		}
		return b, nil
	}
	return nil, fmt.Errorf("message %v has neither body nor body_base64", msg)
}

// Body returns m's bytes, whichever of body and body_base64 carries them.
func Body(m Message) ([]byte, error) {
	b, err := decodeBody(m.ID, m.Body, m.BodyBase64)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	return b, nil
}

// BodyMessage returns a NewMessage for SendBatch carrying body: as text
// when it is valid UTF-8 (readable in logs and by curl users), else as
// base64, so any bytes survive the JSON batch unchanged.
func BodyMessage(body []byte) NewMessage {
	var m NewMessage
	m.Body, m.BodyBase64 = encodeBody(body)
	return m
}
