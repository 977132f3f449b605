// Package spawnbench measures notebook request-to-ready time through the public REST API: the time from
// POST /apis/notebooks/v1/namespaces/{ns}/notebooks to the first GET that shows condition Running (so it
// includes the workflow start, the Jupyter start and its api/status readiness). The lead's bench command
// and BenchmarkSpawn in services/notebooks/app both call [Run].
package spawnbench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/sluice-ml/sluice/services/notebooks/api/notebooksv1"
)

// Config says where and how much to measure.
type Config struct {
	// BaseURL is the Sluice API, e.g. "http://127.0.0.1:8080".
	BaseURL string
	// Token is a Sluice API token granted Namespace.
	Token     string
	Namespace string
	// Rounds is how many times Concurrency notebooks are spawned at once (samples = Rounds*Concurrency).
	Rounds      int
	Concurrency int
	// Prefix starts every notebook name (default "bench").
	Prefix string
	// Poll is the readiness polling interval (default 10ms); it bounds the measurement's resolution.
	Poll time.Duration
	// Timeout bounds each spawn (default 2m).
	Timeout time.Duration
}

// Result holds the request-to-ready samples and their quantiles.
type Result struct {
	Samples  []time.Duration
	P50, P99 time.Duration
	Max      time.Duration
}

// String is "n=10 p50=812ms p99=1.2s max=1.2s".
func (r Result) String() string {
	return fmt.Sprintf("n=%d p50=%s p99=%s max=%s", len(r.Samples), r.P50.Round(time.Millisecond), r.P99.Round(time.Millisecond), r.Max.Round(time.Millisecond))
}

// Quantile returns the q-quantile (0..1) of sorted samples by the nearest-rank method.
func Quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Run spawns Rounds×Concurrency notebooks, deleting each once it is ready (and waiting for the deletion
// before the next round), and returns the request-to-ready times.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Rounds <= 0 || cfg.Concurrency <= 0 {
		return Result{}, errors.New("spawnbench: Rounds and Concurrency must be positive")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "bench"
	}
	if cfg.Poll == 0 {
		cfg.Poll = 10 * time.Millisecond
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Minute
	}
	c := &client{cfg: cfg, http: &http.Client{Timeout: 30 * time.Second}}
	var res Result
	for round := range cfg.Rounds {
		samples := make([]time.Duration, cfg.Concurrency)
		errs := make([]error, cfg.Concurrency)
		var wg sync.WaitGroup
		for i := range cfg.Concurrency {
			name := fmt.Sprintf("%s-%d-%d-%d", cfg.Prefix, time.Now().UnixNano()%1e6, round, i)
			wg.Go(func() { samples[i], errs[i] = c.spawn(ctx, name) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return res, err
		}
		res.Samples = append(res.Samples, samples...)
	}
	sorted := slices.Clone(res.Samples)
	slices.Sort(sorted)
	res.P50, res.P99, res.Max = Quantile(sorted, 0.5), Quantile(sorted, 0.99), sorted[len(sorted)-1]
	return res, nil
}

type client struct {
	cfg  Config
	http *http.Client
}

func (c *client) path(name string) string {
	p := c.cfg.BaseURL + "/apis/notebooks/v1/namespaces/" + c.cfg.Namespace + "/notebooks"
	if name != "" {
		p += "/" + name
	}
	return p
}

func (c *client) call(ctx context.Context, method, url string, body any, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode == http.StatusOK {
		return resp.StatusCode, json.NewDecoder(resp.Body).Decode(out)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// spawn creates one notebook, times it to Running, then deletes it and waits until it is gone.
func (c *client) spawn(ctx context.Context, name string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	t0 := time.Now()
	code, err := c.call(ctx, http.MethodPost, c.path(""), notebooksv1.LocalNotebook{Name: name, Image: "bench"}, nil)
	if err != nil || code != http.StatusCreated {
		return 0, fmt.Errorf("spawnbench: create %s: %d %v", name, code, err)
	}
	var took time.Duration
	for {
		var nb notebooksv1.Notebook
		code, err := c.call(ctx, http.MethodGet, c.path(name), nil, &nb)
		if err == nil && code == http.StatusOK && len(nb.Status.Conditions) > 0 {
			cond := nb.Status.Conditions[0]
			if cond.Type == notebooksv1.ConditionRunning {
				took = time.Since(t0)
				break
			}
			if cond.Type == notebooksv1.ConditionTerminated {
				return 0, fmt.Errorf("spawnbench: %s: %s: %s", name, cond.Reason, cond.Message)
			}
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("spawnbench: %s not running: %w", name, ctx.Err())
		case <-time.After(c.cfg.Poll):
		}
	}
	if code, err := c.call(ctx, http.MethodDelete, c.path(name), nil, nil); err != nil || code != http.StatusAccepted {
		return took, fmt.Errorf("spawnbench: delete %s: %d %v", name, code, err)
	}
	for {
		code, err := c.call(ctx, http.MethodGet, c.path(name), nil, nil)
		if err == nil && code == http.StatusNotFound {
			return took, nil
		}
		select {
		case <-ctx.Done():
			return took, fmt.Errorf("spawnbench: %s not deleted: %w", name, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
