package command

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/sluice-ml/sluice/libs/devstack/devstacktest"
	"github.com/sluice-ml/sluice/libs/platform"
)

// startDevPlatform hosts every service of `sluice dev` (the dashboard included) on one loopback port
// with the dev gateway in front, over the package's devstack, and returns the base URL and admin token.
func startDevPlatform(t *testing.T) (string, string) {
	t.Helper()
	st := devstacktest.Stack(t)
	ctx := t.Context()
	dataDir := t.TempDir()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	var internalEnv map[string]string
	getenv := func(k string) string {
		if v, ok := internalEnv[k]; ok {
			return v
		}
		switch k {
		case "SLUICE_HTTP_ADDR":
			return addr
		case "SLUICE_TEMPORAL_UI_URL":
			return st.TemporalUIURL
		case "SLUICE_SERVING_GRPC_ADDR":
			return "127.0.0.1:0"
		}
		return ""
	}
	deps, err := platform.Connect(ctx, st.PlatformConfig(dataDir, addr, "local", "warn"), "dashtest", log, getenv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(deps.Close)
	admin, err := enableDevAuth(ctx, deps, dataDir)
	if err != nil {
		t.Fatal(err)
	}
	var api serviceHandler
	if internalEnv, err = startServiceShims(ctx, deps, &api, log); err != nil {
		t.Fatal(err)
	}
	var svcs []platform.Service
	for _, build := range devServices {
		svc, err := build(ctx, deps)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { svc.Close() })
		if err := svc.Start(ctx); err != nil {
			t.Fatalf("start %s: %v", svc.Name(), err)
		}
		svcs = append(svcs, svc)
	}
	h := platform.NewHandler(platform.HandlerConfig{Registry: deps.Metrics, Log: log, Checks: deps.Checks(), Guard: deps.Guard()},
		append(svcs, busService{deps.Bus}, platform.AuthService(deps))...)
	api.set(h)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return "http://" + addr, admin
}

// chromium finds Debian's chromium (scripts/test-deps.sh installs it); without it the test skips,
// except under CI=true where it fails.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed (scripts/test-deps.sh installs it)")
	}
	t.Skip("chromium is not installed (run scripts/test-deps.sh)")
	return ""
}

// browser is a headless chromium tab that records console errors and failed loads.
type browser struct {
	t        *testing.T
	ctx      context.Context
	out      string
	mu       sync.Mutex
	problems []string
}

func newBrowser(t *testing.T) *browser {
	exe := chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.Headless,
		chromedp.DisableGPU, chromedp.WindowSize(1400, 1000), chromedp.UserDataDir(t.TempDir()))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b := &browser{t: t, ctx: ctx, out: t.ArtifactDir()}
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	console := chromedp.Console(ctx) // subscribed from here on
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			if m.Type == "error" || m.IsException() {
				b.mu.Lock()
				b.problems = append(b.problems, m.String()+" at "+m.URL)
				b.mu.Unlock()
			}
		}
	}()
	return b
}

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.shot("failed-" + strings.ReplaceAll(what, " ", "-"))
		b.t.Fatalf("%s: %v", what, err)
	}
}

func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor evaluates expr until it is true (surviving the page's own reloads), failing after d.
func (b *browser) waitFor(what, expr string, d time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			b.shot("timeout-" + strings.ReplaceAll(what, " ", "-"))
			b.t.Fatalf("%s: not true after %s (last error %v); the page at %s", what, d, err, b.pageText())
		}
		<-tick.C
	}
}

// reloadUntil opens url until expr is true on the loaded page, failing after d.
func (b *browser) reloadUntil(what, url, expr string, d time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
		ok, err := chromedp.Run(ctx, func(ctx context.Context, t *chromedp.Target) (bool, error) {
			if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
				return false, err
			}
			return chromedp.Evaluate[bool](expr)(ctx, t)
		})
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			b.shot("timeout-" + strings.ReplaceAll(what, " ", "-"))
			b.t.Fatalf("%s: not true after %s (last error %v); the page at %s", what, d, err, b.pageText())
		}
		<-tick.C
	}
}

// pageText is the current page's address and visible text (its first 2,000 characters), for failure messages.
func (b *browser) pageText() string {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + (document.body ? document.body.innerText : "")`))
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	if len(text) > 2000 {
		text = text[:2000] + "…"
	}
	return text
}

func (b *browser) shot(name string) {
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(b.out, name+".png"), png, 0o644); err != nil {
		b.t.Error(err)
	}
}

// checkPage asserts the loaded page logged no console error, labels every form control, and leaks no
// token into the page (URLs included) or into script-readable cookies; then it takes a screenshot.
func (b *browser) checkPage(name, token string) {
	b.t.Helper()
	b.do("wait for "+name, chromedp.WaitReady(chromedp.CSS("body")))
	unlabelled := eval[[]string](b, `Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea'))
		.filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby'))
		.map(e => e.outerHTML)`)
	if len(unlabelled) > 0 {
		b.t.Errorf("%s: form controls without a label: %v", name, unlabelled)
	}
	unnamed := eval[[]string](b, `Array.from(document.querySelectorAll('button, a[href]')).filter(e => !(e.textContent.trim() || e.getAttribute('aria-label') || e.querySelector('title'))).map(e => e.outerHTML)`)
	if len(unnamed) > 0 {
		b.t.Errorf("%s: buttons or links without an accessible name: %v", name, unnamed)
	}
	if leaked := eval[bool](b, fmt.Sprintf(`document.documentElement.outerHTML.includes(%q) || location.href.includes(%q) || document.cookie.includes(%q)`, token, token, token)); leaked {
		b.t.Errorf("%s: the API token is readable by the page", name)
	}
	b.shot(name)
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.problems) > 0 {
		b.t.Errorf("%s: console errors: %v", name, b.problems)
		b.problems = nil
	}
}

// TestDashboardInABrowser drives the dashboard of `sluice dev` in Debian's chromium: sign-in, every page
// without console errors and with labelled controls, keyboard navigation, a pipeline uploaded and run
// from the run form, and the run's live graph showing every task succeeded. Screenshots go to the
// test's artifact dir (go test -artifacts).
func TestDashboardInABrowser(t *testing.T) {
	b := newBrowser(t)
	base, token := startDevPlatform(t)

	// A browser without the cookie is sent to the sign-in page; a wrong token is refused there.
	b.do("open home", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	if loc := eval[string](b, "location.pathname + location.search"); loc != "/login?next=%2F" {
		t.Fatalf("without a credential / went to %s, want the sign-in page", loc)
	}
	b.checkPage("login", token)
	b.do("wrong token", chromedp.SendKeys(chromedp.CSS("#token"), "not-a-valid-token-0000000000000\n"), chromedp.WaitVisible(chromedp.CSS("p.error")))
	b.mu.Lock()
	b.problems = nil // the refused sign-in answers 401, which chromium logs as a failed load
	b.mu.Unlock()
	b.do("sign in", chromedp.SendKeys(chromedp.CSS("#token"), token+"\n"), chromedp.WaitVisible(chromedp.CSS("#h-runs")))
	if httpOnly := eval[bool](b, "document.cookie === ''"); !httpOnly {
		t.Error("the sign-in cookie is readable by scripts")
	}
	b.checkPage("home", token)

	// Keyboard: the first Tab reaches the skip link, Enter moves focus to the main content.
	b.do("tab", chromedp.KeyEvent(kb.Tab))
	if got := eval[string](b, "document.activeElement.textContent"); got != "Skip to content" {
		t.Errorf("first Tab focused %q, want the skip link", got)
	}
	b.do("enter", chromedp.KeyEvent(kb.Enter))
	if got := eval[string](b, "document.activeElement.id"); got != "main" {
		t.Errorf("the skip link moved focus to %q, want main", got)
	}

	// Upload the pipeline from a file, then start a run from the form generated from its inputs.
	spec, err := filepath.Abs("testdata/dashboard/pipeline.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b.do("pipelines page", chromedp.Navigate(base+"/ui/pipelines"), chromedp.WaitVisible(chromedp.CSS("#up-file")))
	b.checkPage("pipelines", token)
	b.do("upload", chromedp.SetUploadFiles(chromedp.CSS("#up-file"), []string{spec}),
		chromedp.Click(chromedp.CSS("form[action='/ui/pipelines'] button[type=submit]")), chromedp.WaitVisible(chromedp.CSS("#run-form")))
	b.checkPage("pipeline", token)
	if got := eval[string](b, "document.getElementById('p-greeting').value"); got != "hello" {
		t.Errorf("the run form's greeting is %q, want its default hello", got)
	}
	if got := eval[string](b, "document.getElementById('p-times').type"); got != "number" {
		t.Errorf("the NUMBER_INTEGER input is a %q field, want number", got)
	}
	if n := eval[int](b, "document.querySelectorAll('.graph g.node').length"); n != 4 {
		t.Errorf("the pipeline graph has %d nodes, want 4", n)
	}
	b.do("fill run form", chromedp.SendKeys(chromedp.CSS("#run_name"), "from the browser"), chromedp.SendKeys(chromedp.CSS("#p-times"), "3"),
		chromedp.Click(chromedp.CSS("#run-form button[type=submit]")), chromedp.WaitVisible(chromedp.CSS("#graph")))
	runURL := eval[string](b, "location.pathname")
	if !strings.HasPrefix(runURL, "/ui/runs/") {
		t.Fatalf("the run form went to %s, want a run page", runURL)
	}
	// The page follows the run live (server-sent events) and reloads once it ended.
	b.waitFor("run succeeded", `(() => {
		const s = document.getElementById('run-state'), nodes = Array.from(document.querySelectorAll('#graph g.node'));
		return !!s && s.textContent === 'SUCCEEDED' && !document.getElementById('run').dataset.live &&
			nodes.length === 4 && nodes.every(n => n.classList.contains('st-succeeded'));
	})()`, 4*time.Minute)
	b.checkPage("run", token)
	if fill := eval[string](b, `getComputedStyle(document.querySelector('#graph g.node path')).fill`); fill != "rgb(143, 209, 158)" {
		t.Errorf("a succeeded node is filled %s, want the succeeded colour rgb(143, 209, 158)", fill)
	}
	if got := eval[string](b, `document.querySelector('#row-2 [data-cell=iterations]').textContent`); got != "3 of 3 ended" {
		t.Errorf("the loop row says %q, want 3 of 3 ended", got)
	}
	if got := eval[string](b, `document.body.innerText`); !strings.Contains(got, "lines") || !strings.Contains(got, `"3"`) {
		t.Errorf("the run page does not show count's output parameter lines = \"3\":\n%s", got)
	}
	// The lineage explorer: make's output artifact, made by make and read by count (the metadata service
	// records it from the run's events, so the page is reloaded until it shows both).
	artifact := eval[string](b, `document.querySelector('#row-0 a[href^="/ui/lineage"]').getAttribute('href')`)
	b.reloadUntil("lineage of make.text", base+artifact, `(() => {
		const t = document.body.innerText;
		return document.querySelectorAll('#lineage-graph g.node').length >= 3 && t.includes('make') && t.includes('count') &&
			document.querySelectorAll('#lineage-graph g.node.st-root').length === 1;
	})()`, 2*time.Minute)
	b.checkPage("lineage", token)
	// A task's log opens as text.
	b.do("task log", chromedp.Navigate(base+runURL+"/logs?task=report"), chromedp.WaitReady(chromedp.CSS("body")))
	if got := eval[string](b, "document.body.innerText"); !strings.Contains(got, "lines=3 squares=[1,4,9]") {
		t.Errorf("report's log is %q, want lines=3 squares=[1,4,9]", got)
	}

	browseArtifactsExperimentsAndMore(t, b, base, token, runURL)

	for _, p := range []struct{ name, path, sel string }{
		{"runs", "/ui/runs", "table"},
		{"jobs", "/ui/jobs", "main h1"},
		{"notebooks", "/ui/notebooks", "#h-nbs"},
		{"home-after-run", "/", "#h-runs"},
	} {
		b.do(p.name, chromedp.Navigate(base+p.path), chromedp.WaitVisible(chromedp.CSS(p.sel)))
		b.checkPage(p.name, token)
	}
	if got := eval[string](b, "document.body.innerText"); !strings.Contains(got, "from the browser") {
		t.Error("the home page does not list the run")
	}

	// Sign out: the cookie is gone and pages send the browser to sign in again.
	b.do("sign out", chromedp.Click(chromedp.CSS(".who button")), chromedp.WaitVisible(chromedp.CSS("#token")))
	b.do("home after sign-out", chromedp.Navigate(base+"/ui/runs"), chromedp.WaitVisible(chromedp.CSS("#token")))
	if errors.Is(t.Context().Err(), context.Canceled) {
		t.Fatal("test context ended")
	}
}
