package dataplane_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-ml/sluice/services/serving/internal/dataplane"
	"github.com/sluice-ml/sluice/services/serving/internal/modelrepo"
	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime"
	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime/onnxtest"
)

// casesServer hosts the models of ../shared/cases/serving/setup that the data-plane cases use:
// unb (y = x[0], no batch dimension), scal (scalar output), verm (version 1: y = x), strid (its
// only version fails to load).
func casesServer(t *testing.T) *httptest.Server {
	t.Helper()
	root := t.TempDir()
	onnx := &modelruntime.ONNXLoader{Instances: 1}
	s := dataplane.NewServer(dataplane.Options{})
	for name, model := range map[string][]byte{
		"unb": onnxtest.Unbatched(), "scal": onnxtest.ScalarOutput(), "verm": onnxtest.Scale(1),
		"strid": onnxtest.StringIdentity(), "hp2": onnxtest.Scale(0.5),
	} {
		writeModel(t, filepath.Join(root, name), 1, model)
		must(t, s.SetModel(name, dataplane.Backend{Manager: manager(t, name, filepath.Join(root, name), onnx, modelrepo.Policy{}, nil)}))
	}
	mux := http.NewServeMux()
	s.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// TestServingCases re-expresses the data-plane cases of ../shared/cases/serving (one per
// folder) and neighbours of the same kind.
func TestServingCases(t *testing.T) {
	srv := casesServer(t)
	cases := []struct {
		name, method, path, body string
		code                     int
		// want is the exact body, or with a leading "~" substrings separated by "|".
		want string
	}{
		{"empty-batch-invented-values", "POST", "/v1/models/unb:predict", `{"instances": []}`, 400, "~columnar format"},
		{"empty batch columnar without batch dim", "POST", "/v1/models/unb:predict", `{"inputs": []}`, 400, "~no batch dimension"},
		{"zero-width rows", "POST", "/v1/models/unb:predict", `{"inputs": [[]]}`, 400, "~shape [1,0]"},
		{"unbatched-output-row-format", "POST", "/v1/models/unb:predict", `{"instances": [[1.0, 2.0]]}`, 400, `~\"y\"|columnar format`},
		{"unbatched output two rows", "POST", "/v1/models/unb:predict", `{"instances": [[1.0, 2.0], [3.0, 4.0]]}`, 400, "~columnar format"},
		{"unbatched output columnar", "POST", "/v1/models/unb:predict", `{"inputs": [[1.0, 2.0], [3.0, 4.0]]}`, 200, `{"outputs":[1,2]}`},
		{"scalar-output-row-format-500", "POST", "/v1/models/scal:predict", `{"instances": [7.0, 8.0]}`, 400, "~scalar|columnar format"},
		{"scalar output columnar", "POST", "/v1/models/scal:predict", `{"inputs": [7.0, 8.0]}`, 200, `{"outputs":7}`},
		{"float32-double-rounding", "POST", "/v1/models/verm/versions/1:predict",
			`{"instances": [1.0000000596046448,16777217.000000001,0.50000002980232238769531250001]}`, 200,
			`{"predictions":[1.00000012,16777218,0.50000006]}`},
		{"float32 rounding generic path", "POST", "/v1/models/verm/versions/1:predict",
			`{"instances": [1.0000000596046448, NaN]}`, 200, `{"predictions":[1.00000012,NaN]}`},
		{"get-on-predict-status", "GET", "/v1/models/hp2:predict", "", 400, `{"error":"Malformed request: GET /v1/models/hp2:predict"}`},
		{"post without verb", "POST", "/v1/models/hp2", `{}`, 400, "~Malformed request"},
		{"unknown verb", "POST", "/v1/models/hp2:explain", `{}`, 400, "~Malformed request"},
		{"list-models-without-name", "GET", "/v1/models", "", 400, `{"error":"Missing model name in request."}`},
		{"models with slash", "GET", "/v1/models/", "", 400, `{"error":"Missing model name in request."}`},
		{"predict without name", "POST", "/v1/models/:predict", `{"instances":[1]}`, 400, `{"error":"Missing model name in request."}`},
		{"unknown route under v1", "GET", "/v1/foo", "", 400, "~Malformed request"},
		{"bare v1", "GET", "/v1", "", 400, "~Malformed request"},
		{"unknown label", "POST", "/v1/models/hp2/labels/nope:predict", `{"instances":[1]}`, 400, "~Unrecognized servable version label: nope"},
		{"unknown model", "POST", "/v1/models/nope:predict", `{"instances":[1]}`, 404, `{"error":"Servable not found for request: Latest(nope)"}`},
		{"malformed json", "POST", "/v1/models/hp2:predict", `{"instances":[1,]`, 400, "~JSON parse error"},
		{"failed-load-invisible", "GET", "/v1/models/strid", "", 200, `~"version":"1","state":"END"|"error_code":"INVALID_ARGUMENT"|STRING`},
		{"v2-health-live-body", "GET", "/v2/health/live", "", 200, `{"live":true}`},
		{"v2 health ready body", "GET", "/v2/health/ready", "", 503, `{"ready":false}`},
		{"v2 model ready body", "GET", "/v2/models/hp2/ready", "", 200, `{"name":"hp2","ready":true}`},
		{"v2 failed model not ready", "GET", "/v2/models/strid/ready", "", 503, `{"name":"strid","ready":false}`},
		{"v2 unknown route", "GET", "/v2/nope", "", 404, "~error"},
		{"v2 non-finite outputs", "POST", "/v2/models/verm/infer",
			`{"inputs":[{"name":"x","shape":[3],"datatype":"FP32","data":[1e39,-1e39,1]}]}`, 400, "~not a number within the range of FP32"},
		{"v2 empty batch refused for unbatched output", "POST", "/v2/models/unb/infer",
			`{"inputs":[{"name":"x","shape":[0,2],"datatype":"FP32","data":[]}]}`, 400, "~no batch dimension"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequest(c.method, srv.URL+c.path, strings.NewReader(c.body))
			must(t, err)
			resp, err := srv.Client().Do(req)
			must(t, err)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.code {
				t.Fatalf("%s %s: status %d, want %d: %s", c.method, c.path, resp.StatusCode, c.code, b)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			if want, ok := strings.CutPrefix(c.want, "~"); ok {
				for _, part := range strings.Split(want, "|") {
					if !strings.Contains(string(b), part) {
						t.Errorf("body %s does not contain %s", b, part)
					}
				}
			} else if string(b) != c.want {
				t.Errorf("body %s\nwant %s", b, c.want)
			}
		})
	}
}

// TestV2NonFiniteOutputs: the v2 JSON has no NaN/Infinity tokens; such outputs are null.
func TestV2NonFiniteOutputs(t *testing.T) {
	srv := casesServer(t)
	resp, err := srv.Client().Post(srv.URL+"/v2/models/verm/infer", "application/json",
		strings.NewReader(`{"inputs":[{"name":"x","shape":[3],"datatype":"FP32","data":[NaN,Infinity,-Infinity]}]}`))
	must(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := `{"model_name":"verm","model_version":"1","outputs":[{"name":"y","datatype":"FP32","shape":[3],"data":[null,null,null]}]}`
	if resp.StatusCode != 200 || string(b) != want {
		t.Fatalf("status %d body %s\nwant %s", resp.StatusCode, b, want)
	}
}
