package platform_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sluice-ml/sluice/libs/platform"
)

// BenchmarkGuard measures what the gateway adds to one request of a namespaced route (bearer token,
// route-table lookup, role decision), against the same handler without a guard.
func BenchmarkGuard(b *testing.B) {
	g, _ := newTestGuard(b)
	for _, bc := range []struct {
		name  string
		guard *platform.Guard
	}{{"no-guard", nil}, {"guard", g}} {
		h := platform.NewHandler(platform.HandlerConfig{Registry: platform.NewRegistry(), Log: slog.New(slog.DiscardHandler), Guard: bc.guard}, stubRoutes{platform.Rules})
		req := httptest.NewRequest("GET", "/apis/training/v1/namespaces/team-a/jobs/x", nil)
		req.Header.Set("Authorization", "Bearer "+viewerTok)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != 299 {
					b.Fatalf("code %d", rec.Code)
				}
			}
		})
	}
	_ = http.StatusOK
}
