package api

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
)

func TestParseKeys(t *testing.T) {
	line, secret, err := NewKeyLine("billing", "produce:orders,read")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, "spool_") || len(secret) != len("spool_")+64 || strings.Contains(line, secret) {
		t.Fatalf("NewKeyLine: secret %q, line %q (the line must hold only the hash)", secret, line)
	}
	ks, err := ParseKeys(strings.NewReader("# a comment\n\n" + line + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	k := ks.match(secret)
	if k == nil || k.Name != "billing" || !slices.Equal(k.Grants, []Grant{{PermProduce, "orders"}, {PermRead, "*"}}) {
		t.Fatalf("match(secret) = %+v", k)
	}
	for _, wrong := range []string{"", "spool_", secret[:len(secret)-1], secret + "x", strings.ToUpper(secret)} {
		if ks.match(wrong) != nil {
			t.Fatalf("match(%q) found a key", wrong)
		}
	}
	hash := strings.Fields(line)[2]
	for _, tc := range []struct{ name, text, want string }{
		{"two fields", "a read\n", "want NAME SCOPES sha256:HASH"},
		{"a bad name", "a/b read " + hash + "\n", "key name"},
		{"an unknown permission", "a write " + hash + "\n", "want read, produce, consume or admin"},
		{"an empty scope", "a read, " + hash + "\n", "want read"},
		{"a bad glob", "a read:[x " + hash + "\n", "not a glob"},
		{"an empty glob", "a read: " + hash + "\n", "not a glob"},
		{"no sha256 prefix", "a read " + strings.TrimPrefix(hash, "sha256:") + "\n", "sha256:"},
		{"a short hash", "a read sha256:abcd\n", "sha256:"},
		{"a second key of one name", "a read " + hash + "\na admin " + hash + "\n", `line 2: a second key named "a"`},
	} {
		if _, err := ParseKeys(strings.NewReader(tc.text)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}

func TestKeyMay(t *testing.T) {
	k := &Key{Name: "k", Grants: []Grant{{PermProduce, "orders-*"}, {PermConsume, "orders/*"}, {PermRead, "*"}}}
	for _, tc := range []struct {
		p    Perm
		name string
		want bool
	}{
		{PermProduce, "orders-eu", true},
		{PermProduce, "orders", false},
		{PermProduce, "invoices", false},
		{PermConsume, "orders/billing", true},
		{PermConsume, "orders", false},
		{PermConsume, "orders/billing/x", false}, // '*' does not cross a slash
		{PermRead, "anything", true},
		{PermRead, allNames, true},
		{PermAdmin, "orders-eu", false},
	} {
		if got := k.May(tc.p, tc.name); got != tc.want {
			t.Errorf("May(%s, %q) = %v, want %v", tc.p, tc.name, got, tc.want)
		}
	}
	// Only the glob "*" covers every name (/metrics, the backup): "?", "?*"
	// or "[*]" match the name "*" as a string, and must not.
	for _, glob := range []string{"?", "?*", "*?", "[*]", `\*`} {
		if (&Key{Grants: []Grant{{PermAdmin, glob}}}).May(PermAdmin, allNames) {
			t.Errorf("admin:%s covers every name", glob)
		}
	}
	admin := &Key{Grants: []Grant{{PermAdmin, "a*"}}}
	if !admin.May(PermConsume, "abc") || !admin.May(PermRead, "a") || admin.May(PermRead, "b") {
		t.Fatal("admin:a* should allow everything on a*, nothing else")
	}
}

// Every route of the table against keys of each permission: the one it
// needs (on a matching glob) passes, a key of another permission, or of
// the right one on other names, is 403 forbidden, no key is 401, and the
// --token passes everywhere. The permissions are written out here, not
// taken from permFor, so a change to either is a test failure to look at.
func TestKeyScopesPerRoute(t *testing.T) {
	want := map[string]Perm{
		"GET /v1/queues": PermRead, "GET /v1/queues/:queue": PermRead, "POST /v1/queues/:queue": PermAdmin,
		"POST /v1/queues/:queue/delete": PermAdmin, "POST /v1/queues/:queue/purge": PermAdmin,
		"POST /v1/queues/:queue/messages": PermProduce, "POST /v1/queues/:queue/batch": PermProduce,
		"GET /v1/queues/:queue/messages": PermRead, "POST /v1/queues/:queue/receive": PermConsume,
		"POST /v1/queues/:queue/ack": PermConsume, "POST /v1/queues/:queue/nack": PermConsume,
		"POST /v1/queues/:queue/extend": PermConsume, "POST /v1/queues/:queue/fail": PermConsume,
		"GET /v1/queues/:queue/dead": PermRead, "POST /v1/queues/:queue/redrive": PermAdmin,
		"POST /v1/queues/:queue/stream": PermConsume,
		"GET /v1/topics":                PermRead, "GET /v1/topics/:topic": PermRead, "POST /v1/topics/:topic": PermAdmin,
		"POST /v1/topics/:topic/delete": PermAdmin, "POST /v1/topics/:topic/messages": PermProduce,
		"POST /v1/topics/:topic/batch": PermProduce, "POST /v1/topics/:topic/seek": PermAdmin,
		"GET /v1/topics/:topic/subscriptions/:subscription":          PermRead,
		"POST /v1/topics/:topic/subscriptions/:subscription":         PermAdmin,
		"POST /v1/topics/:topic/subscriptions/:subscription/delete":  PermAdmin,
		"POST /v1/topics/:topic/subscriptions/:subscription/seek":    PermAdmin,
		"GET /v1/topics/:topic/subscriptions/:subscription/messages": PermRead,
		"POST /v1/topics/:topic/subscriptions/:subscription/receive": PermConsume,
		"POST /v1/topics/:topic/subscriptions/:subscription/ack":     PermConsume,
		"POST /v1/topics/:topic/subscriptions/:subscription/nack":    PermConsume,
		"POST /v1/topics/:topic/subscriptions/:subscription/extend":  PermConsume,
		"POST /v1/topics/:topic/subscriptions/:subscription/fail":    PermConsume,
		"GET /v1/topics/:topic/subscriptions/:subscription/dead":     PermRead,
		"POST /v1/topics/:topic/subscriptions/:subscription/redrive": PermAdmin,
		"POST /v1/topics/:topic/subscriptions/:subscription/stream":  PermConsume,
		"GET /metrics": PermRead, "GET /v1/backup": PermAdmin,
	}
	var text strings.Builder
	secrets := map[string]string{}
	add := func(name, scopes string) {
		line, secret, err := NewKeyLine(name, scopes)
		if err != nil {
			t.Fatal(err)
		}
		text.WriteString(line + "\n")
		secrets[name] = secret
	}
	// Each permission on the names the test's paths use (queue q1, topic
	// t1, subscription t1/s1), and the same on other names.
	for _, p := range permNames {
		add(p.name, p.name+":q1,"+p.name+":t1,"+p.name+":t1/s1")
		add(p.name+"-elsewhere", p.name+":x*,"+p.name+":t1/x*")
	}
	ks, err := ParseKeys(strings.NewReader(text.String()))
	if err != nil {
		t.Fatal(err)
	}
	f := srvStart(t, Config{Token: "root", Keys: ks})
	seen := 0
	for _, sp := range f.srv.table {
		if sp.public {
			continue
		}
		label := sp.method + " " + sp.path
		need, ok := want[label]
		if !ok {
			t.Errorf("route %s has no expected permission in this test: add it", label)
			continue
		}
		seen++
		if sp.perm != need {
			t.Errorf("%s: permFor says %s, want %s", label, sp.perm, need)
		}
		p := strings.NewReplacer(":queue", "q1", ":topic", "t1", ":subscription", "s1").Replace(sp.path)
		check := func(who string, header []string, forbidden bool) {
			r := f.do(sp.method, p, "", header...)
			switch {
			case forbidden && r.status != http.StatusForbidden:
				t.Errorf("%s as %s: %s, want 403", label, who, r)
			case forbidden:
				var e ErrorReply
				if json.Unmarshal(r.body, &e) != nil || e.Error.Code != CodeForbidden {
					t.Errorf("%s as %s: a 403 with body %s, want code %q", label, who, r.body, CodeForbidden)
				}
			case r.status == http.StatusForbidden || r.status == http.StatusUnauthorized:
				t.Errorf("%s as %s: %s, want it let through", label, who, r)
			}
		}
		metrics := label == "GET /metrics" || label == "GET /v1/backup" // want a grant on every name, which no key here has
		for _, perm := range permNames {
			allowed := (perm.p == need || perm.p == PermAdmin) && !metrics
			check(perm.name, []string{"Authorization", "Bearer " + secrets[perm.name]}, !allowed)
			// On other names: refused, but for a list, which wants the
			// permission on some name and shows only those.
			check(perm.name+"-elsewhere", []string{"Authorization", "Bearer " + secrets[perm.name+"-elsewhere"]}, !allowed || sp.scope != scopeNone)
		}
		check("the token", []string{"Authorization", "Bearer root"}, false)
		if r := f.do(sp.method, p, ""); r.status != http.StatusUnauthorized {
			t.Errorf("%s without a token: %s, want 401", label, r)
		}
	}
	if seen != len(want) {
		t.Errorf("the table has %d routes with permissions, the test expects %d", seen, len(want))
	}
}

// A list shows what the key may read; /metrics wants read on every name.
func TestKeyListsAndMetrics(t *testing.T) {
	var text strings.Builder
	secrets := map[string]string{}
	for name, scopes := range map[string]string{"orders": "read:orders-*", "all": "read", "admin": "admin"} {
		line, secret, err := NewKeyLine(name, scopes)
		if err != nil {
			t.Fatal(err)
		}
		text.WriteString(line + "\n")
		secrets[name] = secret
	}
	ks, err := ParseKeys(strings.NewReader(text.String()))
	if err != nil {
		t.Fatal(err)
	}
	f := srvStart(t, Config{Keys: ks})
	for _, q := range []string{"orders-eu", "orders-us", "invoices"} {
		srvWantStatus(t, f.post("/v1/queues/"+q, "", "Authorization", "Bearer "+secrets["admin"]), http.StatusCreated)
	}
	for key, want := range map[string][]string{"orders": {"orders-eu", "orders-us"}, "all": {"invoices", "orders-eu", "orders-us"}} {
		var list QueueList
		srvWantJSON(t, f.get("/v1/queues", "Authorization", "Bearer "+secrets[key]), http.StatusOK, &list)
		var names []string
		for _, q := range list.Queues {
			names = append(names, q.Name)
		}
		slices.Sort(names)
		if !slices.Equal(names, want) {
			t.Errorf("the %s key lists %v, want %v", key, names, want)
		}
	}
	srvWantError(t, f.get("/metrics", "Authorization", "Bearer "+secrets["orders"]), http.StatusForbidden, CodeForbidden)
	srvWantStatus(t, f.get("/metrics", "Authorization", "Bearer "+secrets["all"]), http.StatusOK)
	// Keys replaced at run time (SIGHUP): the old secret is refused.
	f.srv.SetKeys(&Keys{})
	srvWantError(t, f.get("/v1/queues", "Authorization", "Bearer "+secrets["all"]), http.StatusUnauthorized, CodeUnauthorized)
}
