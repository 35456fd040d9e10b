package sqs

import (
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"testing"
)

// Known digests. None of these were computed by this package: each comes from
// another implementation's tests, so agreeing with them means agreeing with
// independent implementations that work against the SDKs' checks.
//
//   - "test" -> 098f6bcd...: aws/aws-sdk-go-v2 service/sqs
//     cust_checksum_validation_test.go (the SDK's MD5OfMessageBody check).
//   - test_attribute_name_1/_2 and the Binary test_attribute_name: the
//     "AmazonSample" cases of ydb-platform/ydb's SQS layer
//     (ydb/core/ymq/actor, AttributesMD5Test).
//   - SellerName / City / PostalCode / Region / PricePerGallon: a public
//     JavaScript messageAttributesMD5Checksum test (found through a code
//     search index that did not name its repository).
//   - ordinal/category: wcharczuk/sqslite internal/sqslite/md5_test.go, built
//     with aws-sdk-go-v2's service/sqs types.
//
// aws-sdk-go-v2's service/sqs checks only MD5OfMessageBody
// (cust_checksum_validation.go), so the attribute digest cannot be checked
// against the Go SDK itself; the Java SDK does check it, which is why the
// published values above matter.
func TestMD5OfBody(t *testing.T) {
	for body, want := range map[string]string{
		"test": "098f6bcd4621d373cade4e832627b4f6",
		"":     "d41d8cd98f00b204e9800998ecf8427e", // RFC 1321 appendix A.5
		"abc":  "900150983cd24fb0d6963f7d28e17f72", // RFC 1321 appendix A.5
	} {
		if got := MD5OfBody([]byte(body)); got != want {
			t.Errorf("MD5OfBody(%q) = %s, want %s", body, got, want)
		}
	}
}

func TestMD5OfMessageAttributesKnown(t *testing.T) {
	str := func(name, value string) MessageAttribute {
		return MessageAttribute{Name: name, DataType: "String", StringValue: value}
	}
	cases := []struct {
		name  string
		attrs []MessageAttribute
		want  string
	}{
		{"ydb string sample", []MessageAttribute{
			str("test_attribute_name_2", "test_attribute_value_2"),
			str("test_attribute_name_1", "test_attribute_value_1"),
		}, "d53f3b558fe951154770f25cb63dbba9"},
		{"ydb binary sample", []MessageAttribute{
			{Name: "test_attribute_name", DataType: "Binary", BinaryValue: []byte("test_attribute_value")},
		}, "23f6bd27ea87aab7dfeadcc9aebee495"},
		{"one string", []MessageAttribute{
			str("SellerName", "Example Store"),
		}, "cd28f3b68aeee4b2eac9c66f2f694b58"},
		{"four strings", []MessageAttribute{
			str("City", "Any City"),
			str("PostalCode", "99065"),
			str("Region", "WA"),
			str("SellerName", "Example Store"),
		}, "66d793da93becb551e41562575418975"},
		{"strings and a number, unsorted", []MessageAttribute{
			str("SellerName", "Example Store"),
			str("Region", "WA"),
			{Name: "PricePerGallon", DataType: "Number", StringValue: "1.99"},
			str("City", "Any City"),
			str("PostalCode", "99065"),
		}, "10809b55e3d9b22c17220b7dbaf283ef"},
		{"sqslite", []MessageAttribute{
			{Name: "ordinal", DataType: "Number", StringValue: "1"},
			str("category", "test"),
		}, "d21ae90c49061e927f57df5f5d72be1f"},
	}
	for _, c := range cases {
		if got := MD5OfMessageAttributes(c.attrs); got != c.want {
			t.Errorf("%s: got %s, want %s", c.name, got, c.want)
		}
	}
}

// TestMD5OfMessageAttributesLayout spells the byte layout out by hand, so the
// custom-type and transport-byte rules are pinned even where no published
// digest exists.
func TestMD5OfMessageAttributesLayout(t *testing.T) {
	var buf []byte
	lp := func(s []byte) {
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(s)))
		buf = append(buf, s...)
	}
	// Sorted: "a" (Binary.png, transport 2) before "b" (Number.int, transport 1).
	lp([]byte("a"))
	lp([]byte("Binary.png"))
	buf = append(buf, 2)
	lp([]byte{0, 1, 2, 0xff})
	lp([]byte("b"))
	lp([]byte("Number.int"))
	buf = append(buf, 1)
	lp([]byte("42"))
	sum := md5.Sum(buf)
	want := hex.EncodeToString(sum[:])

	attrs := []MessageAttribute{
		{Name: "b", DataType: "Number.int", StringValue: "42"},
		{Name: "a", DataType: "Binary.png", BinaryValue: []byte{0, 1, 2, 0xff}},
	}
	if got := MD5OfMessageAttributes(attrs); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if attrs[0].Name != "b" {
		t.Fatal("MD5OfMessageAttributes reordered its argument")
	}
	if got := MD5OfMessageAttributes(nil); got != "" {
		t.Fatalf("no attributes: got %q, want empty", got)
	}
}
