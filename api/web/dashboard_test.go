package web_test

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/spoolq/spool/api"
	"github.com/spoolq/spool/queue"
)

// The dashboard in headless Chromium (Debian's chromium), driven through
// the DevTools protocol by chromedp: after its scripts ran, the page shows
// the queues with the server's counts, and its send, peek, redrive and
// purge change the server's state as the API reports it. The screenshot
// goes to $SPOOL_ARTIFACTS (or the test's temp dir), and to the path
// -dashboard.screenshot names (docs/dashboard.png is made that way).

var screenshotPath = flag.String("dashboard.screenshot", "", "also write the dashboard's screenshot here")

func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium on PATH (Debian package chromium): the dashboard is not tested in a browser")
	return ""
}

type env struct {
	b   *queue.Broker
	url string
}

func newEnv(t *testing.T, cfg api.Config) *env {
	t.Helper()
	b, err := queue.Open(t.TempDir(), queue.Options{MaintenanceInterval: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	cfg.Logger = slog.New(slog.DiscardHandler)
	ts := httptest.NewServer(api.New(b, cfg, nil).Handler())
	t.Cleanup(ts.Close)
	return &env{b: b, url: ts.URL}
}

func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, // CI runs as root
		chromedp.Flag("headless", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.WindowSize(1100, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	return ctx
}

// waitFor polls the server with a deadline until cond holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 15s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// press clicks the element sel (CSS) finds once it is visible, through
// the element's click() rather than chromedp.Click's mouse event at its
// coordinates: the page re-renders every 2 s, and a layout shift between
// where the button was measured and where the mouse lands loses the
// click (the test then waits out its deadline).
func press(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		found, err := chromedp.Evaluate[bool](fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) return false; e.click(); return true; })()`, sel))(ctx, tg)
		if err == nil && !found {
			err = fmt.Errorf("no element %s to click", sel)
		}
		return err
	}))
}

// text is the text of the element sel (CSS) finds.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func counts(t *testing.T, q *queue.Queue) queue.Counts {
	t.Helper()
	info, err := q.Info()
	if err != nil {
		t.Fatal(err)
	}
	return info.Counts
}

func TestDashboardInChromium(t *testing.T) {
	e := newEnv(t, api.Config{})
	jobs, _, err := e.b.Create("jobs", queue.ConfigUpdate{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jobs.Enqueue([]queue.NewMessage{{Body: []byte("first")}, {Body: []byte("second")}, {Body: []byte("third")}}); err != nil {
		t.Fatal(err)
	}
	tp, _, err := e.b.CreateTopic("events", queue.TopicUpdate{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tp.CreateSubscription("audit", queue.SubscriptionUpdate{}, queue.Position{}); err != nil {
		t.Fatal(err)
	}
	ctx := browser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(e.url+"/"), chromedp.WaitVisible(chromedp.CSS(`#q-jobs`))); err != nil {
		t.Fatal(err)
	}
	ready, total, sub := text(t, ctx, `#q-jobs td[data-k="ready"]`), text(t, ctx, `#q-jobs td[data-k="total"]`), text(t, ctx, `#topics tbody`)
	if ready != "3" || total != "3" || !strings.Contains(sub, "events/audit") {
		t.Fatalf("the page shows ready %q, total %q, topics %q; want 3, 3 and events/audit", ready, total, sub)
	}

	// Send through the page.
	if err := chromedp.Do(ctx,
		press(`#q-jobs`),
		chromedp.WaitVisible(chromedp.CSS(`#detail`)),
		chromedp.SendKeys(chromedp.CSS(`#send-body`), "from the page"),
		press(`#send`),
	); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the page's send reaching the queue", func() bool { return counts(t, jobs).Total == 4 })

	// Peek through the page.
	if err := chromedp.Do(ctx, press(`#peek`), chromedp.WaitVisible(chromedp.CSS(`#messages li:nth-child(4)`))); err != nil {
		t.Fatal(err)
	}
	listed := text(t, ctx, `#messages`)
	if !strings.Contains(listed, "first") || !strings.Contains(listed, "from the page") {
		t.Fatalf("peek listed %q", listed)
	}

	// Redrive a dead message through the page.
	got, err := jobs.Receive(context.Background(), queue.ReceiveOptions{Max: 1})
	if err != nil || len(got) != 1 {
		t.Fatalf("receive: %v %v", got, err)
	}
	if _, err := jobs.Fail([]queue.Receipt{got[0].Receipt}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx,
		chromedp.WaitVisible(`//tr[@id="q-jobs"]/td[@data-k="dead"][text()="1"]`),
		press(`#redrive`),
	); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the page's redrive", func() bool { c := counts(t, jobs); return c.Dead == 0 && c.Ready == 4 })

	// Purge, behind its confirmation: Cancel keeps the messages, Yes
	// removes them.
	if err := chromedp.Do(ctx,
		press(`#purge`),
		chromedp.WaitVisible(chromedp.CSS(`#confirm`)),
		press(`#confirm-no`),
		chromedp.WaitNotVisible(chromedp.CSS(`#confirm`)),
	); err != nil {
		t.Fatal(err)
	}
	if c := counts(t, jobs); c.Total != 4 {
		t.Fatalf("a cancelled purge left %+v", c)
	}
	if err := chromedp.Do(ctx,
		press(`#purge`),
		chromedp.WaitVisible(chromedp.CSS(`#confirm`)),
		press(`#confirm-yes`),
	); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the page's purge", func() bool { return counts(t, jobs).Total == 0 })

	// Screenshot, with something to show (taken last: it resizes the
	// page's viewport).
	if _, err := jobs.Enqueue([]queue.NewMessage{{Body: []byte("order 1")}, {Body: []byte("order 2")}}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(`//tr[@id="q-jobs"]/td[@data-k="ready"][text()="2"]`), press(`#peek`),
		chromedp.WaitVisible(chromedp.CSS(`#messages li:nth-child(2)`))); err != nil {
		t.Fatal(err)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100) /* 100: PNG */)
	if err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("SPOOL_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	for _, p := range []string{filepath.Join(dir, "dashboard.png"), *screenshotPath} {
		if p == "" {
			continue
		}
		if err := os.WriteFile(p, shot, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", p)
	}
}

// With a token on, the page asks for it, and shows the queues once given.
func TestDashboardAsksForTheToken(t *testing.T) {
	e := newEnv(t, api.Config{Token: "s3cret"})
	if _, _, err := e.b.Create("jobs", queue.ConfigUpdate{}); err != nil {
		t.Fatal(err)
	}
	ctx := browser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(e.url+"/"), chromedp.WaitVisible(chromedp.CSS(`#login`))); err != nil {
		t.Fatal(err)
	}
	mainHidden, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("main").hidden`))
	if err != nil {
		t.Fatal(err)
	}
	if !mainHidden {
		t.Fatal("the queues show before the token is given")
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`#token`), "wrong"),
		press(`#login-submit`),
		chromedp.WaitVisible(chromedp.CSS(`#login-error`)),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("token").value = ""; undefined`),
		chromedp.SendKeys(chromedp.CSS(`#token`), "s3cret"),
		press(`#login-submit`),
		chromedp.WaitVisible(chromedp.CSS(`#q-jobs`)),
	); err != nil {
		t.Fatal(err)
	}
	stored, err := chromedp.Run(ctx, chromedp.Evaluate[string](`sessionStorage.getItem("spool-token") + "|" + localStorage.length`))
	if err != nil {
		t.Fatal(err)
	}
	if stored != "s3cret|0" {
		t.Fatalf("storage %q: want the token in sessionStorage and nothing in localStorage", stored)
	}
}
