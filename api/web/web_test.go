package web_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/spoolq/spool/api"
)

// The page and its assets are served, public and with a CSP that allows
// only this origin, even when the API wants a token; every other request
// (the API, SQS's POST /) goes on to the API.
func TestDashboardFiles(t *testing.T) {
	e := newEnv(t, api.Config{Token: "tok"})
	for _, tc := range []struct {
		method, path string
		status       int
		typ, body    string
	}{
		{"GET", "/", 200, "text/html", `<script src="/ui/app.js"`},
		{"HEAD", "/", 200, "text/html", ""},
		{"GET", "/ui/app.js", 200, "text/javascript", "sessionStorage"},
		{"GET", "/ui/style.css", 200, "text/css", "[hidden]"},
		{"GET", "/ui/index.html", 301, "", ""},
		{"GET", "/ui/nope.js", 404, "", ""},
		{"GET", "/v1/queues", 401, "application/json", "unauthorized"}, // the API still wants its token
	} {
		req, err := http.NewRequest(tc.method, e.url+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.typ) || !strings.Contains(string(b), tc.body) {
			t.Errorf("%s %s: %d %q %.80q; want %d %q with %q", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), b, tc.status, tc.typ, tc.body)
		}
		if tc.status == 200 && !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") {
			t.Errorf("%s %s: CSP %q", tc.method, tc.path, resp.Header.Get("Content-Security-Policy"))
		}
	}
	// No asset reaches outside this origin.
	for _, f := range []string{"/", "/ui/app.js", "/ui/style.css"} {
		resp, err := http.Get(e.url + f)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), "http://") && !strings.Contains(string(b), "http://www.w3.org/2000/svg") || strings.Contains(string(b), "https://") {
			t.Errorf("%s refers to another origin", f)
		}
	}
}
