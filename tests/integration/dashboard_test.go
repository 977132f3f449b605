package integration

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

// The dashboard image runs as compose runs it (its own NATS user, the platform's auth key, the APIs of
// another container as SLUICE_DASHBOARD_API_URL) and serves its sign-in page; a page sends a browser
// without a credential there, an unknown path is 404, and a signed-in request renders the home page
// from the other containers' APIs.
func TestDashboardContainerServesSignIn(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), startupDeadline)
	defer cancel()
	if err := st.startService(ctx, "dashboard", "dashboard", map[string]string{"SLUICE_DASHBOARD_API_URL": "http://pipelines:8080"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.remove("dashboard") })
	base := st.url(t, "dashboard")
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path, token string) (int, string, string) {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Location"), string(b)
	}
	if code, _, body := get("/login", ""); code != http.StatusOK || !strings.Contains(body, `id="token"`) {
		t.Errorf("GET /login: %d\n%s", code, body)
	}
	if code, loc, _ := get("/ui/runs", ""); code != http.StatusSeeOther || loc != "/login?next=%2Fui%2Fruns" {
		t.Errorf("GET /ui/runs without a credential: %d to %q, want 303 to the sign-in page", code, loc)
	}
	if code, _, _ := get("/no-such-page", ""); code != http.StatusNotFound {
		t.Errorf("GET /no-such-page: %d, want 404", code)
	}
	if code, _, body := get("/", adminToken); code != http.StatusOK || !strings.Contains(body, "Recent runs") {
		t.Errorf("GET / signed in: %d\n%s", code, body)
	}
}
