package app_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
	"github.com/sluice-ml/sluice/services/pipelines/app"
)

const artifactsSpec = `
apiVersion: sluice.io/v1
kind: Pipeline
metadata: {name: artifacts}
spec:
  inputs:
    word: {type: STRING, default: hi}
  tasks:
    make:
      image: alpine
      command: [sh, -c, 'mkdir -p "$(dirname "$1")" "$2/sub" && printf "a,b\n1,%s\n" "$0" > "$1" && printf "<b>x</b>" > "$2/index.html" && printf y > "$2/sub/y.txt"']
      args: ["{{inputs.word}}", "{{outputs.table}}", "{{outputs.report}}"]
      inputs: {word: {fromInput: word}}
      outputs:
        artifacts:
          table: {type: system.Dataset}
          report: {type: system.HTML}
`

// A run's output artifacts are read through the API (KFP's ReadArtifact): a file's bytes, a directory's
// file list and one of its files; unknown tasks, outputs and unsafe paths are 4xx. The run's input
// answers what it was started with (what a clone pre-fills).
func TestReadRunArtifactAndInput(t *testing.T) {
	d, srv := newService(t)
	c := apiClient{t, srv.URL}
	id := "artread-" + uuid.NewString()[:8]
	code, out := c.do(http.MethodPost, "/apis/v1/runs?run_id="+id, pipelinesv1.RunRequest{RunName: "read me", Spec: artifactsSpec, Parameters: map[string]any{"word": "yo"}})
	require.Equal(t, http.StatusOK, code, out)
	res := waitRun(t, d, id)
	require.Equal(t, pipelinesv1.RunSucceeded, res.State, res.Error)

	get := func(name string, q url.Values) (int, string, http.Header) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/apis/v1/runs/"+id+"/artifacts/"+name+"?"+q.Encode(), nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var b []byte
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			b = append(b, buf[:n]...)
			if err != nil {
				break
			}
		}
		return resp.StatusCode, string(b), resp.Header
	}
	code, body, h := get("table", url.Values{"task": {"make"}})
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, "a,b\n1,yo\n", body)
	require.Equal(t, "application/octet-stream", h.Get("Content-Type"))

	code, body, h = get("report", url.Values{"task": {"make"}})
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, app.ArtifactDirectoryType, h.Get("Content-Type"))
	var dir app.ArtifactDirectory
	require.NoError(t, json.Unmarshal([]byte(body), &dir))
	require.Equal(t, []app.ArtifactFile{{Path: "index.html", Size: 8}, {Path: "sub/y.txt", Size: 1}}, dir.Files)
	code, body, _ = get("report", url.Values{"task": {"make"}, "file": {"sub/y.txt"}})
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, "y", body)

	for _, bad := range []struct {
		name string
		q    url.Values
		code int
	}{
		{"table", url.Values{}, http.StatusBadRequest},
		{"table", url.Values{"task": {"nope"}}, http.StatusNotFound},
		{"nope", url.Values{"task": {"make"}}, http.StatusNotFound},
		{"report", url.Values{"task": {"make"}, "file": {"../table"}}, http.StatusBadRequest},
		{"report", url.Values{"task": {"make"}, "file": {"missing.txt"}}, http.StatusNotFound},
	} {
		code, body, _ := get(bad.name, bad.q)
		require.Equal(t, bad.code, code, "%s %v: %s", bad.name, bad.q, body)
	}
	code, out = c.do(http.MethodGet, "/apis/v1/runs/no-such-run/artifacts/table?task=make", nil)
	require.Equal(t, http.StatusNotFound, code, out)

	code, out = c.do(http.MethodGet, "/apis/v1/runs/"+id+"/input", nil)
	require.Equal(t, http.StatusOK, code, out)
	var in app.RunInputView
	require.NoError(t, json.Unmarshal([]byte(out), &in))
	require.Equal(t, "read me", in.RunName)
	require.Equal(t, map[string]any{"word": "yo"}, in.Parameters)
	code, out = c.do(http.MethodGet, "/apis/v1/runs/no-such-run/input", nil)
	require.Equal(t, http.StatusNotFound, code, out)
}
