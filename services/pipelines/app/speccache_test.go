package app

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/libs/runtime"
	"github.com/sluice-ml/sluice/services/pipelines/internal/engine"
)

const cacheSpec = `
apiVersion: sluice.io/v1
kind: Pipeline
metadata: {name: %s}
spec:
  tasks:
    hello:
      image: alpine
      command: [echo, hi]
`

// A burst of run requests for one spec compiles it once; a spec that does not compile is never cached
// (each request gets its own 400), and the cache stays bounded.
func TestParseRunCachesCompiledSpecs(t *testing.T) {
	a := &App{acts: &engine.Activities{Runtime: runtime.NewLocal(runtime.LocalConfig{LedgerDir: t.TempDir()})}}
	src := fmt.Sprintf(cacheSpec, "one")
	p1, err := a.parseRun(src)
	require.NoError(t, err)
	p2, err := a.parseRun(src)
	require.NoError(t, err)
	require.Same(t, p1, p2, "the second request of the same spec reuses the compiled pipeline")
	p3, err := a.parseRun(fmt.Sprintf(cacheSpec, "two"))
	require.NoError(t, err)
	require.NotSame(t, p1, p3)
	require.Equal(t, "two", p3.Name)

	bad := strings.Replace(src, "tasks:", "tasks: 7\n  other:", 1)
	for range 2 {
		_, err := a.parseRun(bad)
		var ie *invalidError
		require.ErrorAs(t, err, &ie)
	}
	require.Len(t, a.specs.m, 2, "an invalid spec is not cached")

	for i := range 2 * specCacheSize {
		_, err := a.parseRun(fmt.Sprintf(cacheSpec, fmt.Sprint("p", i)))
		require.NoError(t, err)
		require.LessOrEqual(t, len(a.specs.m), specCacheSize)
	}
}
