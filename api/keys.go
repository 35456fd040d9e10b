package api

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"strings"
)

// API keys (spool serve --keys FILE) give each client its own secret and
// only the calls it needs. A keys file has one key a line:
//
//	NAME SCOPES sha256:HASH
//
// NAME is the key's name (for the log and `spool keys list`), SCOPES a
// comma-separated list of PERM or PERM:GLOB, and HASH the SHA-256 of the
// secret in hex; blank lines and lines starting with # are skipped. PERM
// is one of
//
//   - read: list, info, peek, dead letters, /metrics (metrics with a grant
//     on every name: read alone or read:*);
//   - produce: enqueue and publish;
//   - consume: receive, ack, nack, extend, fail, stream;
//   - admin: everything, creating, changing and deleting included.
//
// GLOB (path.Match syntax; no GLOB is "*") names the queues and topics the
// grant covers; a subscription is TOPIC/SUB, so consume:orders/* covers
// every subscription of orders ('*' does not cross the slash). A list
// shows what the key may read. The secret is presented as the bearer
// token; only its hash is stored, and the secrets are random 256-bit
// strings (`spool keys add` makes them), so a fast hash is enough. Every
// key's hash is compared, in constant time, whichever matches. --token
// stays the all-powerful key beside them.

// Perm is what a grant allows.
type Perm uint8

// The permissions.
const (
	PermRead Perm = 1 << iota
	PermProduce
	PermConsume
	PermAdmin
)

var permNames = []struct {
	p    Perm
	name string
}{{PermRead, "read"}, {PermProduce, "produce"}, {PermConsume, "consume"}, {PermAdmin, "admin"}}

func (p Perm) String() string {
	for _, n := range permNames {
		if n.p == p {
			return n.name
		}
	}
	return fmt.Sprintf("perm(%d)", uint8(p))
}

// Grant is one scope of a key: a permission on the names its glob matches.
type Grant struct {
	Perm Perm
	Glob string
}

func (g Grant) String() string {
	if g.Glob == "*" {
		return g.Perm.String()
	}
	return g.Perm.String() + ":" + g.Glob
}

// Key is one API key.
type Key struct {
	Name   string
	Grants []Grant
	hash   [sha256.Size]byte
}

// allNames is the name a route that spans every queue and topic checks
// its grant against (/metrics): only a glob of "*" matches it.
const allNames = "*"

// May says whether k may do p on name (a queue, a topic, or TOPIC/SUB).
func (k *Key) May(p Perm, name string) bool {
	for _, g := range k.Grants {
		if g.Perm != p && g.Perm != PermAdmin {
			continue
		}
		if name == allNames {
			if g.Glob == "*" { // only the glob of every name: "?" would match the name "*" too
				return true
			}
			continue
		}
		if ok, _ := path.Match(g.Glob, name); ok {
			return true
		}
	}
	return false
}

// mayAny says whether k has a grant of p (or admin) on any name.
func (k *Key) mayAny(p Perm) bool {
	for _, g := range k.Grants {
		if g.Perm == p || g.Perm == PermAdmin {
			return true
		}
	}
	return false
}

// Keys are the API keys a server accepts.
type Keys struct{ keys []Key }

// Len returns how many keys there are.
func (ks *Keys) Len() int {
	if ks == nil {
		return 0
	}
	return len(ks.keys)
}

// List returns the keys, without their hashes.
func (ks *Keys) List() []Key {
	if ks == nil {
		return nil
	}
	out := make([]Key, len(ks.keys))
	for i, k := range ks.keys {
		out[i] = Key{Name: k.Name, Grants: k.Grants}
	}
	return out
}

// match returns the key whose secret token is, or nil. It hashes the
// token and compares the hash with every key's in constant time, so
// neither the time nor the order of the keys says which one matched or
// how close a guess came.
func (ks *Keys) match(token string) *Key {
	if ks == nil {
		return nil
	}
	sum := sha256.Sum256([]byte(token))
	found := -1
	for i := range ks.keys {
		if subtle.ConstantTimeCompare(sum[:], ks.keys[i].hash[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return nil
	}
	return &ks.keys[found]
}

var keyNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// maxKeysFileBytes bounds a keys file: thousands of keys.
const maxKeysFileBytes = 4 << 20

// LoadKeys reads the keys file at path (see API keys).
func LoadKeys(path string) (*Keys, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keys file: %w", err)
	}
	defer f.Close()
	ks, err := ParseKeys(f) // bounded: it stops past maxKeysFileBytes
	if err != nil {
		return nil, fmt.Errorf("keys file %s: %w", path, err)
	}
	return ks, nil
}

// ParseKeys reads a keys file's text (see API keys).
func ParseKeys(r io.Reader) (*Keys, error) {
	ks := &Keys{}
	names := map[string]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64<<10)
	n, size := 0, 0
	for sc.Scan() {
		n++
		size += len(sc.Bytes()) + 1
		if size > maxKeysFileBytes {
			return nil, fmt.Errorf("over %d bytes", maxKeysFileBytes)
		}
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := parseKeyLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if names[k.Name] {
			return nil, fmt.Errorf("line %d: a second key named %q", n, k.Name)
		}
		names[k.Name] = true
		ks.keys = append(ks.keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", n+1, err)
	}
	return ks, nil
}

func parseKeyLine(line string) (Key, error) {
	fields := strings.Fields(line)
	if len(fields) != 3 {
		return Key{}, errors.New("want NAME SCOPES sha256:HASH")
	}
	if !keyNameRE.MatchString(fields[0]) {
		return Key{}, fmt.Errorf("key name %q: use 1-64 of A-Z a-z 0-9 _ . -", fields[0])
	}
	grants, err := ParseScopes(fields[1])
	if err != nil {
		return Key{}, fmt.Errorf("key %s: %w", fields[0], err)
	}
	k := Key{Name: fields[0], Grants: grants}
	hexHash, ok := strings.CutPrefix(fields[2], "sha256:")
	b, err := hex.DecodeString(hexHash)
	if !ok || err != nil || len(b) != sha256.Size {
		return Key{}, fmt.Errorf("key %s: the hash must be sha256: and 64 hex digits", fields[0])
	}
	copy(k.hash[:], b)
	return k, nil
}

// ParseScopes reads a comma-separated list of PERM or PERM:GLOB.
func ParseScopes(s string) ([]Grant, error) {
	var out []Grant
	for _, part := range strings.Split(s, ",") {
		name, glob, hasGlob := strings.Cut(part, ":")
		g := Grant{Glob: "*"}
		if hasGlob {
			g.Glob = glob
		}
		for _, n := range permNames {
			if n.name == name {
				g.Perm = n.p
			}
		}
		if g.Perm == 0 {
			return nil, fmt.Errorf("scope %q: want read, produce, consume or admin, optionally :GLOB", part)
		}
		if _, err := path.Match(g.Glob, ""); err != nil || g.Glob == "" {
			return nil, fmt.Errorf("scope %q: %q is not a glob", part, g.Glob)
		}
		out = append(out, g)
	}
	return out, nil
}

// NewKeyLine makes a key: a fresh random secret, and the keys-file line
// that stores its hash. The secret is shown once, to the caller; the line
// is all that is kept.
func NewKeyLine(name, scopes string) (line, secret string, err error) {
	if !keyNameRE.MatchString(name) {
		return "", "", fmt.Errorf("key name %q: use 1-64 of A-Z a-z 0-9 _ . -", name)
	}
	grants, err := ParseScopes(scopes)
	if err != nil {
		return "", "", err
	}
	var raw [32]byte
	rand.Read(raw[:])
	secret = "spool_" + hex.EncodeToString(raw[:])
	sum := sha256.Sum256([]byte(secret))
	parts := make([]string, len(grants))
	for i, g := range grants {
		parts[i] = g.String()
	}
	return fmt.Sprintf("%s %s sha256:%s", name, strings.Join(parts, ","), hex.EncodeToString(sum[:])), secret, nil
}

// keyContext carries the request's key to the handlers that filter by it.
type keyContext struct{}

// keyOf returns the request's API key, nil for --token or no auth.
func keyOf(ctx context.Context) *Key {
	k, _ := ctx.Value(keyContext{}).(*Key)
	return k
}
