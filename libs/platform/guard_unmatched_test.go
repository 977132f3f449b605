package platform_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sluice-ml/sluice/libs/platform"
)

// A path no route matches is 404 with or without a credential: only known pages send a browser to the
// sign-in page, and a mistyped URL is not answered 401 as if it were a page behind a login.
func TestUnmatchedPathIsNotFoundWithoutCredential(t *testing.T) {
	g, _ := newTestGuard(t)
	srv := httptest.NewServer(platform.NewHandler(platform.HandlerConfig{Registry: platform.NewRegistry(), Log: slog.New(slog.DiscardHandler), Guard: g}, stubRoutes{platform.Rules}))
	t.Cleanup(srv.Close)
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, c := range []struct {
		path, bearer string
		want         int
	}{
		{"/no/such/page", "", http.StatusNotFound},
		{"/ui/no-such-page", "", http.StatusNotFound},
		{"/no/such/page", contributorTok, http.StatusNotFound},
		{"/ui/runs", "", http.StatusSeeOther},          // a known page still sends the browser to sign in
		{"/apis/v1/runs", "", http.StatusUnauthorized}, // a known API still wants a credential
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+c.path, nil)
		if c.bearer != "" {
			req.Header.Set("Authorization", "Bearer "+c.bearer)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("GET %s (token %v): %d, want %d", c.path, c.bearer != "", resp.StatusCode, c.want)
		}
	}
}
