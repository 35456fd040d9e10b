package sqs

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Keys looks up the secret of an access key id.
type Keys interface {
	Secret(accessKeyID string) (secret string, ok bool)
}

// StaticKeys is a fixed set of access key id -> secret pairs, the shape
// --sqs-keys gives.
type StaticKeys map[string]string

// Secret implements Keys.
func (k StaticKeys) Secret(accessKeyID string) (string, bool) {
	s, ok := k[accessKeyID]
	return s, ok
}

// Errors of Verify, each returned wrapped with the detail, so callers test
// them with errors.Is and map them to SQS's error codes (named on each).
var (
	// ErrMissingAuth: neither an Authorization header nor presigned query
	// parameters. SQS: MissingAuthenticationToken (403).
	ErrMissingAuth = errors.New("request is not signed")
	// ErrMalformedAuth: the signature fields are there but unusable (wrong
	// algorithm, missing parts, bad date). SQS: IncompleteSignature (400).
	ErrMalformedAuth = errors.New("malformed SigV4 authorization")
	// ErrUnknownKey: the access key id is not configured.
	// SQS: InvalidClientTokenId (403).
	ErrUnknownKey = errors.New("unknown access key id")
	// ErrSignatureMismatch: the signature is not the one the secret gives for
	// this request, or the body does not match X-Amz-Content-Sha256.
	// SQS: SignatureDoesNotMatch (403).
	ErrSignatureMismatch = errors.New("signature does not match")
	// ErrRequestExpired: X-Amz-Date is more than MaxClockSkew away from now,
	// or a presigned URL is past its X-Amz-Expires (or made more than
	// MaxClockSkew in the future). SQS: RequestExpired (400).
	ErrRequestExpired = errors.New("request expired")
)

// MaxClockSkew is how far X-Amz-Date may be from the server's clock, AWS's
// own limit: it bounds how long a captured request can be replayed.
const MaxClockSkew = 15 * time.Minute

// maxPresignExpires is AWS's upper bound for X-Amz-Expires (7 days).
const maxPresignExpires = 7 * 24 * time.Hour

const (
	sigAlgorithm = "AWS4-HMAC-SHA256"
	amzDateForm  = "20060102T150405Z"
	scopeTerm    = "aws4_request"
)

// sigInfo is what a request says about its own signature.
type sigInfo struct {
	accessKeyID string
	scopeDate   string // YYYYMMDD of the credential scope
	region      string
	service     string
	amzDate     string // X-Amz-Date as sent; it is signed verbatim
	t           time.Time
	signedList  string   // SignedHeaders as sent: the canonical request uses it verbatim
	signed      []string // signedList split
	signature   string
	presigned   bool
	expires     time.Duration // presigned with X-Amz-Expires only
}

func (s *sigInfo) signs(name string) bool {
	for _, n := range s.signed {
		if n == name {
			return true
		}
	}
	return false
}

func (s *sigInfo) scope() string {
	return s.scopeDate + "/" + s.region + "/" + s.service + "/" + scopeTerm
}

// Verify checks the AWS Signature Version 4 (AWS4-HMAC-SHA256) signature of
// r, whose body the caller has already read into body (the payload hash needs
// all of it, and the handler needs it afterwards). now is the server's clock,
// passed in so tests can use the test suite's fixed time. It returns the
// access key id the request was signed with; with an error, it is the id the
// request claimed (for logs), or "" if none could be read.
//
// Both forms clients use are accepted:
//
//   - the Authorization header ("AWS4-HMAC-SHA256 Credential=AKID/DATE/
//     REGION/SERVICE/aws4_request, SignedHeaders=..., Signature=...") with
//     X-Amz-Date, which is what every SDK and the aws CLI send;
//   - presigned URLs (X-Amz-Algorithm, X-Amz-Credential, X-Amz-Date,
//     X-Amz-SignedHeaders, X-Amz-Signature and optionally X-Amz-Expires in
//     the query), which cost little more because only where the fields come
//     from differs. aws-sdk-go-v2's presigner moves X-Amz-* headers such as
//     X-Amz-Target into the query, where a handler then has to look for them.
//
// Not supported: SigV2 ("AWS AKID:sig"), SigV4a (ECDSA), chunked
// "STREAMING-*" and "UNSIGNED-PAYLOAD" bodies (S3 features no SQS client
// uses; SQS requests always sign their body). Region and service in the
// credential scope are taken as the client gives them, since a local
// endpoint answers for any region.
//
// Only what is signed is authenticated: the method, path, query, body and
// the headers in SignedHeaders (host always, X-Amz-Target whenever present).
func Verify(r *http.Request, body []byte, keys Keys, now time.Time) (accessKeyID string, err error) {
	info, err := parseSig(r)
	if err != nil {
		return "", err
	}
	if err := checkTime(info, now); err != nil {
		return info.accessKeyID, err
	}
	secret, ok := keys.Secret(info.accessKeyID)
	if !ok {
		return info.accessKeyID, fmt.Errorf("%w: %q", ErrUnknownKey, info.accessKeyID)
	}
	// X-Amz-Target picks the action of a JSON 1.0 request. Every SDK signs
	// it, and one that did not could have its DeleteQueue turned into
	// anything by whoever relays it, so it has to be covered.
	if r.Header.Get("X-Amz-Target") != "" && !info.signs("x-amz-target") {
		return info.accessKeyID, fmt.Errorf("%w: X-Amz-Target is not in SignedHeaders", ErrSignatureMismatch)
	}
	payload, err := payloadHash(r, body)
	if err != nil {
		return info.accessKeyID, err
	}
	want := signature(secret, info, stringToSign(info, canonicalRequest(r, info, payload)))
	// Compare in constant time: a byte-by-byte early exit would let a client
	// find a valid signature for a forged request one byte at a time.
	if !hmac.Equal([]byte(want), []byte(strings.ToLower(info.signature))) {
		return info.accessKeyID, fmt.Errorf("%w for access key %q (scope %s)", ErrSignatureMismatch, info.accessKeyID, info.scope())
	}
	return info.accessKeyID, nil
}

// parseSig reads the signature fields from the Authorization header or,
// failing that, from presigned query parameters.
func parseSig(r *http.Request) (*sigInfo, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		return parseAuthHeader(r, h)
	}
	q := r.URL.Query()
	if q.Get("X-Amz-Algorithm") != "" || q.Get("X-Amz-Signature") != "" {
		return parsePresigned(q)
	}
	return nil, fmt.Errorf("%w: no Authorization header and no X-Amz-Signature in the query", ErrMissingAuth)
}

func parseAuthHeader(r *http.Request, h string) (*sigInfo, error) {
	alg, rest, _ := strings.Cut(h, " ")
	if alg != sigAlgorithm {
		return nil, fmt.Errorf("%w: algorithm %q, want %s", ErrMalformedAuth, alg, sigAlgorithm)
	}
	var cred, signed, sig string
	for _, part := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Credential":
			cred = v
		case "SignedHeaders":
			signed = v
		case "Signature":
			sig = v
		}
	}
	info := &sigInfo{amzDate: r.Header.Get("X-Amz-Date")}
	if err := info.fill(cred, signed, sig); err != nil {
		return nil, err
	}
	return info, nil
}

func parsePresigned(q url.Values) (*sigInfo, error) {
	if alg := q.Get("X-Amz-Algorithm"); alg != sigAlgorithm {
		return nil, fmt.Errorf("%w: X-Amz-Algorithm %q, want %s", ErrMalformedAuth, alg, sigAlgorithm)
	}
	info := &sigInfo{amzDate: q.Get("X-Amz-Date"), presigned: true}
	if err := info.fill(q.Get("X-Amz-Credential"), q.Get("X-Amz-SignedHeaders"), q.Get("X-Amz-Signature")); err != nil {
		return nil, err
	}
	// aws-sdk-go-v2's PresignHTTP leaves X-Amz-Expires to the caller, so a
	// URL without one is valid; it then gets the header form's window.
	if e := q.Get("X-Amz-Expires"); e != "" {
		secs, err := strconv.ParseInt(e, 10, 64)
		if err != nil || secs < 1 || time.Duration(secs)*time.Second > maxPresignExpires {
			return nil, fmt.Errorf("%w: X-Amz-Expires %q is not 1 to %d seconds", ErrMalformedAuth, e, int64(maxPresignExpires/time.Second))
		}
		info.expires = time.Duration(secs) * time.Second
	}
	return info, nil
}

// fill checks and stores the three signature fields common to both forms.
func (s *sigInfo) fill(cred, signed, sig string) error {
	if cred == "" || signed == "" || sig == "" {
		return fmt.Errorf("%w: Credential, SignedHeaders and Signature are all required", ErrMalformedAuth)
	}
	parts := strings.Split(cred, "/")
	if len(parts) != 5 || parts[0] == "" || parts[4] != scopeTerm || parts[2] == "" || parts[3] == "" {
		return fmt.Errorf("%w: credential %q is not AKID/DATE/REGION/SERVICE/%s", ErrMalformedAuth, cred, scopeTerm)
	}
	s.accessKeyID, s.scopeDate, s.region, s.service = parts[0], parts[1], parts[2], parts[3]
	s.signedList, s.signed, s.signature = signed, strings.Split(signed, ";"), sig

	hasHost := false
	for _, name := range s.signed {
		if name == "" || name != strings.ToLower(name) {
			return fmt.Errorf("%w: SignedHeaders %q must be lower-case names", ErrMalformedAuth, signed)
		}
		hasHost = hasHost || name == "host"
	}
	// AWS insists that host is signed: without it a request signed for one
	// endpoint could be replayed against another that shares the keys.
	if !hasHost {
		return fmt.Errorf("%w: SignedHeaders %q does not include host", ErrMalformedAuth, signed)
	}
	if s.amzDate == "" {
		return fmt.Errorf("%w: no X-Amz-Date", ErrMalformedAuth)
	}
	t, err := time.Parse(amzDateForm, s.amzDate)
	if err != nil {
		return fmt.Errorf("%w: X-Amz-Date %q is not YYYYMMDDTHHMMSSZ", ErrMalformedAuth, s.amzDate)
	}
	s.t = t
	// The scope date is part of the key derivation; one that disagrees with
	// the signed time is a client bug AWS also rejects as a mismatch.
	if s.scopeDate != s.amzDate[:8] {
		return fmt.Errorf("%w: credential date %s is not the date of X-Amz-Date %s", ErrSignatureMismatch, s.scopeDate, s.amzDate)
	}
	return nil
}

func checkTime(s *sigInfo, now time.Time) error {
	if s.presigned && s.expires > 0 {
		// A presigned URL may not be used before it was made (beyond clock
		// skew) or after it runs out.
		if now.Before(s.t.Add(-MaxClockSkew)) || now.After(s.t.Add(s.expires)) {
			return fmt.Errorf("%w: presigned at %s for %s, now %s", ErrRequestExpired, s.amzDate, s.expires, now.UTC().Format(amzDateForm))
		}
		return nil
	}
	if d := now.Sub(s.t); d > MaxClockSkew || d < -MaxClockSkew {
		return fmt.Errorf("%w: X-Amz-Date %s is more than %s from now (%s)", ErrRequestExpired, s.amzDate, MaxClockSkew, now.UTC().Format(amzDateForm))
	}
	return nil
}

// payloadHash is the hex SHA-256 of the body. When the client also sent
// X-Amz-Content-Sha256 it must agree: that header is what the signature
// covers, so trusting it unchecked would let the body be swapped.
func payloadHash(r *http.Request, body []byte) (string, error) {
	sum := sha256.Sum256(body)
	h := hex.EncodeToString(sum[:])
	if sent := r.Header.Get("X-Amz-Content-Sha256"); sent != "" && !strings.EqualFold(sent, h) {
		return "", fmt.Errorf("%w: X-Amz-Content-Sha256 %q is not the SHA-256 of the body", ErrSignatureMismatch, sent)
	}
	return h, nil
}

// canonicalRequest builds SigV4's canonical request: method, URI, query,
// headers, signed header list and payload hash, one per line.
func canonicalRequest(r *http.Request, s *sigInfo, payload string) string {
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	b.WriteString(canonicalURI(r))
	b.WriteByte('\n')
	b.WriteString(canonicalQuery(r.URL.RawQuery, s.presigned))
	b.WriteByte('\n')
	for _, name := range s.signed {
		b.WriteString(name)
		b.WriteByte(':')
		b.WriteString(headerValue(r, name))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(s.signedList)
	b.WriteByte('\n')
	b.WriteString(payload)
	return b.String()
}

// canonicalURI is the path as it came over the wire, URI-encoded once more.
// The SDKs sign services other than S3 that way (the escaped path encoded
// again, so "%20" is signed as "%2520"), and the wire form is what they
// encoded: r.RequestURI keeps it exactly, where r.URL.Path has lost it.
func canonicalURI(r *http.Request) string {
	p := r.RequestURI
	if p == "" || p[0] != '/' {
		// Not a server request (tests, or an absolute-form target): fall
		// back to the URL's own escaping.
		p = r.URL.EscapedPath()
	} else if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	if p == "" {
		return "/"
	}
	return uriEncode(p, false)
}

// canonicalQuery decodes each parameter, re-encodes it the AWS way and sorts
// by name, then value. For a presigned request X-Amz-Signature is left out,
// since it cannot sign itself.
func canonicalQuery(raw string, presigned bool) string {
	if raw == "" {
		return ""
	}
	type kv struct{ k, v string }
	var params []kv
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		k, v = unescape(k), unescape(v)
		if presigned && k == "X-Amz-Signature" {
			continue
		}
		params = append(params, kv{uriEncode(k, true), uriEncode(v, true)})
	}
	sort.Slice(params, func(i, j int) bool {
		if params[i].k != params[j].k {
			return params[i].k < params[j].k
		}
		return params[i].v < params[j].v
	})
	var b strings.Builder
	for i, p := range params {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.k)
		b.WriteByte('=')
		b.WriteString(p.v)
	}
	return b.String()
}

// unescape decodes a query component; one that is not valid percent-encoding
// is used as sent, which then simply fails to match if the client meant
// something else.
func unescape(s string) string {
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}

// uriEncode is AWS's UriEncode: every byte but the unreserved A-Z a-z 0-9
// '-' '.' '_' '~' becomes %XX in upper-case hex (so space is %20, never '+').
// '/' is kept in paths and encoded in query components.
func uriEncode(s string, encodeSlash bool) string {
	const hexUpper = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~':
			b.WriteByte(c)
		case c == '/' && !encodeSlash:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexUpper[c>>4])
			b.WriteByte(hexUpper[c&15])
		}
	}
	return b.String()
}

// headerValue is the canonical value of one signed header: every value of
// that name in order, each trimmed with inner runs of spaces collapsed,
// joined by commas. Go keeps Host and, for outgoing requests, Content-Length
// outside r.Header, so those two are read from where Go puts them.
func headerValue(r *http.Request, name string) string {
	switch name {
	case "host":
		if r.Host != "" {
			return r.Host
		}
		return r.URL.Host
	case "content-length":
		if v := r.Header.Values("Content-Length"); len(v) > 0 {
			return joinValues(v)
		}
		if r.ContentLength >= 0 {
			return strconv.FormatInt(r.ContentLength, 10)
		}
		return ""
	}
	vals := r.Header.Values(name) // canonicalizes name
	if len(vals) == 0 {
		// A name Go did not canonicalize (e.g. one with '_') is stored as sent.
		for k, v := range r.Header {
			if strings.EqualFold(k, name) {
				vals = v
				break
			}
		}
	}
	return joinValues(vals)
}

func joinValues(vals []string) string {
	var b strings.Builder
	for i, v := range vals {
		if i > 0 {
			b.WriteByte(',')
		}
		// Only spaces collapse, as in the SDK signers: a tab inside a value
		// is signed as it is.
		v = strings.Trim(v, " \t")
		for j := 0; j < len(v); j++ {
			if v[j] == ' ' && j > 0 && v[j-1] == ' ' {
				continue
			}
			b.WriteByte(v[j])
		}
	}
	return b.String()
}

// stringToSign is the second stage: algorithm, time, scope and the hash of
// the canonical request.
func stringToSign(s *sigInfo, creq string) string {
	sum := sha256.Sum256([]byte(creq))
	return sigAlgorithm + "\n" + s.amzDate + "\n" + s.scope() + "\n" + hex.EncodeToString(sum[:])
}

// signature derives the signing key from the secret through the scope (date,
// region, service, "aws4_request") and signs the string to sign with it.
func signature(secret string, s *sigInfo, sts string) string {
	k := hmacSHA256([]byte("AWS4"+secret), s.scopeDate)
	k = hmacSHA256(k, s.region)
	k = hmacSHA256(k, s.service)
	k = hmacSHA256(k, scopeTerm)
	return hex.EncodeToString(hmacSHA256(k, sts))
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}
