package auth_test

import (
	"path/filepath"
	"testing"

	"github.com/sluice-ml/sluice/libs/auth"
)

// FileToken creates a token once and returns the same one afterwards (sluice dev's admin token and the
// notebooks service's generated token survive restarts).
func TestFileTokenIsStable(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nb", "dev-token")
	a, err := auth.FileToken(p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := auth.FileToken(p)
	if err != nil || a != b || len(a) != 64 {
		t.Fatalf("tokens %q %q %v", a, b, err)
	}
}
