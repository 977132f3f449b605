package spec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// refusedRows reads the "refused" rows of the KFP IR feature table in docs/pipeline-spec.md: the
// Feature cell of each row whose Status starts with "refused".
func refusedRows(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "docs", "pipeline-spec.md"))
	require.NoError(t, err)
	doc := string(b)
	start := strings.Index(doc, "### KFP IR feature table")
	require.GreaterOrEqual(t, start, 0, "the feature table exists")
	var rows []string
	for _, line := range strings.Split(doc[start:], "\n")[1:] {
		if strings.HasPrefix(line, "#") {
			break
		}
		if !strings.HasPrefix(line, "| ") || strings.HasPrefix(line, "| Feature") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		require.GreaterOrEqual(t, len(cells), 2, line)
		status := cells[len(cells)-1]
		if strings.HasPrefix(status, "refused") {
			rows = append(rows, strings.Join(cells[:len(cells)-1], " | "))
		}
	}
	require.NotEmpty(t, rows)
	return rows
}

// Every "refused" row of the documented KFP IR feature table has IR files in testdata/refused, and each
// of those is refused as the upload and run-creation paths refuse specs (Parse, then CheckRuntime for
// the service's runtime) under every runtime, with the expected message: nothing documented as refused
// is accepted.
func TestDocumentedRefusals(t *testing.T) {
	rows := refusedRows(t)
	files, err := filepath.Glob(filepath.Join("testdata", "refused", "*.yaml"))
	require.NoError(t, err)
	covered := map[string]int{}
	for _, f := range files {
		src, err := os.ReadFile(f)
		require.NoError(t, err)
		headers := map[string]string{}
		for _, line := range strings.Split(string(src), "\n") {
			k, v, ok := strings.Cut(strings.TrimPrefix(line, "# "), ": ")
			if !strings.HasPrefix(line, "# ") || !ok {
				break
			}
			headers[k] = v
		}
		row, expect := headers["row"], headers["expect"]
		require.True(t, row != "" && expect != "", "%s starts with # row: and # expect: lines", f)
		matched := ""
		for _, r := range rows {
			if strings.HasPrefix(r, row) {
				matched = r
			}
		}
		require.NotEmpty(t, matched, "%s: no refused row of the feature table starts with %q", f, row)
		covered[matched]++
		runtimes := strings.Fields(headers["runtimes"])
		if len(runtimes) == 0 {
			runtimes = []string{"local", "docker", "kubernetes"}
		}
		for _, runtime := range runtimes {
			p, err := Parse(src)
			if err == nil {
				err = CheckRuntime(p, runtime)
			}
			require.Error(t, err, "%s is refused under the %s runtime", f, runtime)
			require.Contains(t, err.Error(), expect, f)
			if headers["runtimes"] != "" {
				require.Contains(t, err.Error(), "the "+runtime+" runtime", f)
			}
		}
		for _, runtime := range strings.Fields(headers["accepted"]) {
			p, err := Parse(src)
			require.NoError(t, err, f)
			require.NoError(t, CheckRuntime(p, runtime), "%s is applied by the %s runtime", f, runtime)
		}
	}
	for _, r := range rows {
		require.NotZero(t, covered[r], "refused row %q has no file in testdata/refused", r)
	}
}

// The accepted shapes next to the refused ones still pass: a plain container and an importer with an
// s3:// URI have nothing for CheckRuntime to refuse.
func TestCheckRuntimeAcceptsPlainSpecs(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "..", "testdata", "cases", "kfp", "importer", "pipeline.yaml"))
	require.NoError(t, err)
	p, err := Parse(src)
	require.NoError(t, err)
	require.NoError(t, CheckRuntime(p, "local"))
	require.NoError(t, CheckRuntime(p, "docker"))
}
