package sqs

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// The two wire protocols SQS clients speak. Both carry the same
// operations with the same member names, so a request is decoded into one
// Go struct per action whichever protocol it came in, and a result is one
// struct too, written as JSON or as XML (its xml tags give the query
// protocol's element names where they differ from the JSON ones).
type protocol int

const (
	protoJSON  protocol = iota // AWS JSON 1.0: X-Amz-Target: AmazonSQS.<Action>
	protoQuery                 // Action=<Action> form posts, XML replies
)

// jsonContentType is what AWS JSON 1.0 requests and replies carry.
const jsonContentType = "application/x-amz-json-1.0"

// xmlNamespace is the namespace of SQS's query-protocol replies.
const xmlNamespace = "http://queue.amazonaws.com/doc/2012-11-05/"

// targetPrefix starts a JSON 1.0 request's X-Amz-Target.
const targetPrefix = "AmazonSQS."

// IsRequest says whether r is meant for the SQS endpoint: a POST with an
// X-Amz-Target of AmazonSQS (JSON 1.0), or a form POST to / or to a queue
// URL's path (the query protocol; its Action is in the body). It reads
// only the method, path and headers, never the body, so a caller can route
// on it.
func IsRequest(r *http.Request) bool {
	if r.Method != http.MethodPost {
		return false
	}
	if strings.HasPrefix(r.Header.Get("X-Amz-Target"), targetPrefix) {
		return true
	}
	ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	if !strings.EqualFold(strings.TrimSpace(ct), "application/x-www-form-urlencoded") {
		return false
	}
	p := r.URL.Path
	if p == "/" {
		return true
	}
	// /<account>/<queue>: boto2 and older SDKs post to the queue's URL.
	acct, name, ok := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	return ok && acct != "" && name != "" && !strings.Contains(name, "/") && acct != "v1"
}

// decodeJSON decodes a JSON 1.0 request body into in. Members the action
// does not know are ignored, as newer SDKs may send ones this build has
// not heard of.
func decodeJSON(body []byte, in any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil // an action with no parameters may send no body
	}
	if err := json.Unmarshal(body, in); err != nil {
		return fail(codeMalformedRequest, "the request body is not the JSON this action takes: %v", err)
	}
	return nil
}

// decodeQuery decodes a query-protocol form into in: it turns the form's
// flattened names (Attribute.1.Name, SendMessageBatchRequestEntry.2.Id,
// MessageAttribute.1.Value.StringValue, ...) into the members JSON 1.0
// would send and decodes those, so both protocols share one decoder per
// action. Numbers arrive as strings; the input structs' number type
// (number) takes both.
func decodeQuery(form url.Values, in any) error {
	root := &formNode{}
	for key, vals := range form {
		if key == "Action" || key == "Version" || strings.HasPrefix(key, "X-Amz-") || strings.HasPrefix(key, "AWSAccessKeyId") ||
			strings.HasPrefix(key, "Signature") || key == "Timestamp" || key == "Expires" {
			continue
		}
		// SplitN: one part past the limit is enough to refuse the key, and
		// a key of dots alone must not become a slice 16 times its size.
		if err := root.insert(strings.SplitN(key, ".", maxFormDepth+1), vals[len(vals)-1]); err != nil {
			return fail(codeMalformedRequest, "form parameter %q: %v", key, err)
		}
	}
	members, err := root.members()
	if err != nil {
		return err
	}
	b, err := json.Marshal(members)
	if err != nil {
		return fmt.Errorf("re-encode the form: %w", err)
	}
	return decodeJSON(b, in)
}

// formNode is one level of a form's dotted names.
type formNode struct {
	value    *string
	children map[string]*formNode
}

// maxFormDepth bounds a dotted name's parts (SQS's deepest is
// SendMessageBatchRequestEntry.N.MessageAttribute.M.Value.StringValue).
const maxFormDepth = 8

func (n *formNode) insert(parts []string, v string) error {
	if len(parts) > maxFormDepth {
		return fmt.Errorf("more than %d dotted parts", maxFormDepth)
	}
	for _, p := range parts {
		if p == "" {
			return fmt.Errorf("an empty part")
		}
		if n.children == nil {
			n.children = map[string]*formNode{}
		}
		c := n.children[p]
		if c == nil {
			c = &formNode{}
			n.children[p] = c
		}
		n = c
	}
	n.value = &v
	return nil
}

// The query protocol's flattened collections, by their form name: maps
// (entries of a key member and a Value), lists of scalars, and lists of
// batch entries, with the member name JSON 1.0 gives each.
var (
	formMaps = map[string]struct{ member, key string }{
		"Attribute":              {"Attributes", "Name"},
		"MessageAttribute":       {"MessageAttributes", "Name"},
		"MessageSystemAttribute": {"MessageSystemAttributes", "Name"},
		"Tag":                    {"Tags", "Key"},
	}
	formLists = map[string]string{
		"AttributeName":              "AttributeNames",
		"MessageAttributeName":       "MessageAttributeNames",
		"MessageSystemAttributeName": "MessageSystemAttributeNames",
		"TagKey":                     "TagKeys",
	}
	formEntries = map[string]bool{
		"SendMessageBatchRequestEntry":             true,
		"DeleteMessageBatchRequestEntry":           true,
		"ChangeMessageVisibilityBatchRequestEntry": true,
	}
)

// isCollection says whether name is a list or map member, by its form
// name or its JSON 1.0 name.
func isCollection(name string) bool {
	switch name {
	case "Entries", "Attributes", "MessageAttributes", "MessageSystemAttributes", "Tags", // formEntries' and formMaps' members
		"AttributeNames", "MessageAttributeNames", "MessageSystemAttributeNames", "TagKeys": // formLists' members
		return true
	}
	return formEntries[name] || formLists[name] != "" || formMaps[name].member != ""
}

// members turns a node's children into JSON 1.0's members.
func (n *formNode) members() (map[string]any, error) {
	out := map[string]any{}
	for name, c := range n.children {
		if c.children == nil && *c.value == "" && isCollection(name) {
			continue // an empty list or map: botocore sends the bare name
		}
		switch {
		case formEntries[name]:
			items, err := c.indexed(name)
			if err != nil {
				return nil, err
			}
			entries := make([]any, 0, len(items))
			for _, it := range items {
				m, err := it.members()
				if err != nil {
					return nil, err
				}
				entries = append(entries, m)
			}
			out["Entries"] = entries
		case formLists[name] != "":
			items, err := c.indexed(name)
			if err != nil {
				return nil, err
			}
			list := make([]string, 0, len(items))
			for _, it := range items {
				if it.value == nil {
					return nil, fail(codeMalformedRequest, "%s.N must be a value", name)
				}
				list = append(list, *it.value)
			}
			out[formLists[name]] = list
		case formMaps[name].member != "":
			fm := formMaps[name]
			items, err := c.indexed(name)
			if err != nil {
				return nil, err
			}
			m := map[string]any{}
			for _, it := range items {
				k, v := it.children[fm.key], it.children["Value"]
				if k == nil || k.value == nil || v == nil {
					return nil, fail(codeMalformedRequest, "each %s.N needs a %s and a Value", name, fm.key)
				}
				if v.children != nil {
					val, err := v.members()
					if err != nil {
						return nil, err
					}
					m[*k.value] = val
				} else {
					m[*k.value] = *v.value
				}
			}
			out[fm.member] = m
		case c.children != nil:
			m, err := c.members()
			if err != nil {
				return nil, err
			}
			out[name] = m
		default:
			out[name] = *c.value
		}
	}
	return out, nil
}

// indexed returns a collection's items in index order (1, 2, ...).
func (n *formNode) indexed(name string) ([]*formNode, error) {
	type item struct {
		i int
		n *formNode
	}
	items := make([]item, 0, len(n.children))
	for k, c := range n.children {
		i, err := strconv.Atoi(k)
		if err != nil || i < 1 {
			return nil, fail(codeMalformedRequest, "%s.%s: the index must be a number from 1", name, k)
		}
		items = append(items, item{i, c})
	}
	slices.SortFunc(items, func(a, b item) int { return a.i - b.i })
	out := make([]*formNode, len(items))
	for j, it := range items {
		out[j] = it.n
	}
	return out, nil
}

// number is an integer parameter: a JSON number in JSON 1.0, a string in
// the query protocol.
type number struct {
	v   int64
	set bool
}

// UnmarshalJSON takes 5 or "5".
func (n *number) UnmarshalJSON(b []byte) error {
	s := string(b)
	if unq, err := strconv.Unquote(s); err == nil {
		s = unq
	}
	v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return fmt.Errorf("%s is not an integer", b)
	}
	n.v, n.set = v, true
	return nil
}

// or returns the number, or def when it was not given.
func (n *number) or(def int64) int64 {
	if n == nil || !n.set {
		return def
	}
	return n.v
}

// nameValues is a string map the query protocol writes as flattened
// entries: <Attribute><Name>k</Name><Value>v</Value></Attribute>, in key
// order; JSON writes it as an object.
type nameValues map[string]string

// MarshalXML writes one element named as the field for each entry.
func (m nameValues) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	return marshalEntries(e, start, m, "Name")
}

// keyValues is nameValues with Key for Name, as tags are written.
type keyValues map[string]string

// MarshalXML writes one element named as the field for each entry.
func (m keyValues) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	return marshalEntries(e, start, m, "Key")
}

func marshalEntries(e *xml.Encoder, start xml.StartElement, m map[string]string, keyName string) error {
	for _, k := range sortedKeys(m) {
		if err := e.EncodeToken(start); err != nil {
			return err
		}
		if err := e.EncodeElement(k, xml.StartElement{Name: xml.Name{Local: keyName}}); err != nil {
			return err
		}
		if err := e.EncodeElement(m[k], xml.StartElement{Name: xml.Name{Local: "Value"}}); err != nil {
			return err
		}
		if err := e.EncodeToken(start.End()); err != nil {
			return err
		}
	}
	return nil
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// attributeValue is a message attribute's value as SQS carries it.
type attributeValue struct {
	DataType    string
	StringValue *string `json:",omitempty"`
	BinaryValue []byte  `json:",omitempty"`
	// SQS reserves the list values and rejects them; they are decoded only
	// to be refused.
	StringListValues []string `json:",omitempty"`
	BinaryListValues [][]byte `json:",omitempty"`
}

// messageAttributes is a message's attributes by name; the query protocol
// writes them as <MessageAttribute><Name/><Value>...</Value></MessageAttribute>.
type messageAttributes map[string]attributeValue

// MarshalXML writes one element named as the field for each attribute.
func (m messageAttributes) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	type xmlValue struct {
		StringValue *string `xml:",omitempty"`
		BinaryValue string  `xml:",omitempty"`
		DataType    string
	}
	for _, k := range sortedKeys(m) {
		v := m[k]
		xv := xmlValue{StringValue: v.StringValue, DataType: v.DataType}
		if v.BinaryValue != nil {
			xv.BinaryValue = base64.StdEncoding.EncodeToString(v.BinaryValue)
		}
		if err := e.EncodeElement(struct {
			Name  string
			Value xmlValue
		}{k, xv}, start); err != nil {
			return err
		}
	}
	return nil
}
