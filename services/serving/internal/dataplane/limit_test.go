package dataplane_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/services/serving/internal/dataplane"
	"github.com/sluice-ml/sluice/services/serving/internal/modelrepo"
	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime"
	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime/onnxtest"
)

// TestInflightBudget: the bytes of requests in flight are capped; past the cap a request is
// refused at once with 429 in TF Serving's error shape, and the budget is returned afterwards.
func TestInflightBudget(t *testing.T) {
	root := t.TempDir()
	writeModel(t, filepath.Join(root, "m"), 1, onnxtest.Scale(2))
	s := dataplane.NewServer(dataplane.Options{MaxInflightBytes: 8 << 20, MaxBodyBytes: 16 << 20})
	must(t, s.SetModel("m", dataplane.Backend{Manager: manager(t, "m", filepath.Join(root, "m"), &modelruntime.ONNXLoader{Instances: 1}, modelrepo.Policy{}, nil)}))
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)

	// A slow client holds 900 kB of the 8 MiB budget while its body trickles in.
	body := []byte(`{"instances":[` + strings.Repeat("1.5,", 224_990) + `1]}`)
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/models/m:predict", pr)
	require.NoError(t, err)
	req.ContentLength = int64(len(body))
	done := make(chan int, 1)
	go func() {
		resp, err := srv.Client().Do(req)
		if err != nil {
			done <- -1
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	_, err = pw.Write(body[:1000])
	require.NoError(t, err)
	require.Eventually(t, func() bool { return s.InflightBytes() >= int64(len(body)) }, 30*time.Second, time.Millisecond)

	start := time.Now()
	resp, err := srv.Client().Post(srv.URL+"/v1/models/m:predict", "application/json", bytes.NewReader(make([]byte, 7_500_000)))
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "%s", b)
	require.Contains(t, string(b), `{"error":"dataplane: request bytes in flight exceed the server's budget`)
	t.Logf("refused in %s", time.Since(start))

	// A small request still fits.
	resp, err = srv.Client().Post(srv.URL+"/v1/models/m:predict", "application/json", strings.NewReader(`{"instances":[1,2]}`))
	require.NoError(t, err)
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode, "%s", b)
	require.Equal(t, `{"predictions":[2,4]}`, string(b))

	_, err = pw.Write(body[1000:])
	require.NoError(t, err)
	require.NoError(t, pw.Close())
	require.Equal(t, 200, <-done)
	require.Eventually(t, func() bool { return s.InflightBytes() == 0 }, 10*time.Second, time.Millisecond)

	// A body over MaxBodyBytes is 413.
	resp, err = srv.Client().Post(srv.URL+"/v1/models/m:predict", "application/json", bytes.NewReader(make([]byte, 17<<20)))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
}
