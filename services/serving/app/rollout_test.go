package app_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/services/serving/api/servingv1"
)

// TestRolloutUnderLoad is the case rollout-404-under-load end to end: a deployment (workflow,
// watch activity, registry, data plane) rolls 20 new versions out while clients keep predicting
// the default version, with canary changes and promotes in between; every response is 200.
func TestRolloutUnderLoad(t *testing.T) {
	e := newEnv(t)
	model := "racehot-" + e.ns
	prefix := e.ns + "/racehot"
	uri := e.store.URI(prefix)
	e.upload(prefix, 1, 1)
	require.Equal(t, 201, e.do(http.MethodPost, e.deployments(), isvc(model, e.ns, uri, -1), nil))
	e.waitView(model, "ready", ready)

	var requests, failures atomic.Int64
	var first atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	body := pixels(1)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := "/v1/models/" + model + ":predict"
			b := body
			if i%2 == 1 {
				path, b = "/v2/models/"+model+"/infer", v2Body()
			}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := http.Post(e.srv.URL+path, "application/json", strings.NewReader(b))
				if err != nil {
					failures.Add(1)
					first.CompareAndSwap(nil, err.Error())
					continue
				}
				out, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				requests.Add(1)
				if resp.StatusCode != http.StatusOK {
					failures.Add(1)
					first.CompareAndSwap(nil, fmt.Sprintf("%d %s", resp.StatusCode, out))
				}
			}
		}()
	}
	at := func(want string) func(servingv1.DeploymentView) bool {
		return func(v servingv1.DeploymentView) bool { return traffic(v) == want }
	}
	for v := 2; v <= 21; v++ {
		if v%5 == 0 {
			// Canary: the next version takes 30%, then 60%, then is promoted.
			require.Equal(t, 200, e.do(http.MethodPost, e.deployments(), isvc(model, e.ns, uri, 30), nil))
			e.upload(prefix, v, uint64(v))
			e.waitView(model, "canary", at(fmt.Sprintf("v%d=30,v%d=70", v, v-1)))
			require.Equal(t, 200, e.do(http.MethodPost, e.deployments(), isvc(model, e.ns, uri, 60), nil))
			require.Equal(t, 202, e.do(http.MethodPost, e.deployments()+"/"+model+"/promote", "", nil))
			e.waitView(model, "promoted", at(fmt.Sprintf("v%d=100", v)))
			require.Equal(t, 200, e.do(http.MethodPost, e.deployments(), isvc(model, e.ns, uri, -1), nil))
			continue
		}
		e.upload(prefix, v, uint64(v))
		e.waitView(model, "rolled out", at(fmt.Sprintf("v%d=100", v)))
	}
	close(stop)
	wg.Wait()
	t.Logf("%d requests across 20 rollouts, %d failures", requests.Load(), failures.Load())
	require.Positive(t, requests.Load())
	require.Zero(t, failures.Load(), "first failure: %v", first.Load())
	e.del(e.deployments() + "/" + model)
}
