package sqs

import (
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"sort"
	"strings"
)

// MessageAttribute is one SQS message attribute as it takes part in the
// MD5OfMessageAttributes digest. DataType is the full type name as the client
// sent it ("String", "Number", "Binary", or a custom type such as
// "Number.float" or "Binary.gif"): the digest covers the whole name, while
// only its prefix decides the transport byte.
type MessageAttribute struct {
	Name        string
	DataType    string
	StringValue string
	BinaryValue []byte
}

// Transport type bytes of SQS's attribute digest. SDKs recompute the digest on
// every send and receive and fail the call when ours differs, so these must
// match what Amazon SQS uses exactly.
const (
	transportString byte = 1
	transportBinary byte = 2
)

// MD5OfBody returns the lower-case hex MD5 of a message body, the value SQS
// replies with as MD5OfMessageBody (SendMessage) and MD5OfBody (ReceiveMessage).
func MD5OfBody(body []byte) string {
	sum := md5.Sum(body)
	return hex.EncodeToString(sum[:])
}

// MD5OfMessageAttributes returns the hex MD5 SQS reports as
// MD5OfMessageAttributes. Attributes are taken in byte order of their names
// (SQS's order, independent of the order the client sent them); each one adds
// its length-prefixed name, its length-prefixed data type, a transport byte
// (1 for String and Number types, 2 for Binary types) and its
// length-prefixed value. Lengths are 4-byte big-endian. With no attributes
// the result is "", because SQS omits the field then.
//
// The input slice is not reordered.
func MD5OfMessageAttributes(attrs []MessageAttribute) string {
	if len(attrs) == 0 {
		return ""
	}
	sorted := make([]MessageAttribute, len(attrs))
	copy(sorted, attrs)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })

	h := md5.New()
	var n [4]byte
	put := func(b []byte) {
		binary.BigEndian.PutUint32(n[:], uint32(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	for _, a := range sorted {
		put([]byte(a.Name))
		put([]byte(a.DataType))
		if isBinaryType(a.DataType) {
			h.Write([]byte{transportBinary})
			put(a.BinaryValue)
		} else {
			h.Write([]byte{transportString})
			put([]byte(a.StringValue))
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// isBinaryType reports whether an attribute data type is Binary or a custom
// Binary.* type. SQS validates types before the digest is taken, so anything
// else here is a String or Number type (or a custom label on one).
func isBinaryType(dataType string) bool {
	return dataType == "Binary" || strings.HasPrefix(dataType, "Binary.")
}
