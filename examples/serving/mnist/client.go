package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-ml/sluice/examples/training/mnist/mnistdata"
)

// Client calls one model's REST endpoints.
type Client struct {
	base  string
	model string
	http  *http.Client
	// Token, when set, is sent as "Authorization: Bearer <Token>" (every Sluice API needs one).
	Token string
}

// NewClient returns a client of model at the API base URL.
func NewClient(base, model string) *Client {
	return &Client{base: strings.TrimRight(base, "/"), model: model, http: &http.Client{Timeout: 60 * time.Second}}
}

// Result counts classified images.
type Result struct{ Images, Correct int }

// Accuracy is Correct/Images.
func (r Result) Accuracy() float64 {
	if r.Images == 0 {
		return 0
	}
	return float64(r.Correct) / float64(r.Images)
}

// appendPixels writes one image as a JSON row of pixel/255 values.
func appendPixels(b []byte, img []byte) []byte {
	b = append(b, '[')
	for i, p := range img {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendFloat(b, float64(p)/255, 'g', 6, 32)
	}
	return append(b, ']')
}

func (c *Client) post(ctx context.Context, path string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %d %s", path, resp.StatusCode, bytes.TrimSpace(b))
	}
	return json.Unmarshal(b, out)
}

// Classify sends the set through TF Serving :predict in batches and counts argmax == label.
func (c *Client) Classify(ctx context.Context, set *mnistdata.Set, batch int) (Result, error) {
	var res Result
	path := "/v1/models/" + url.PathEscape(c.model) + ":predict"
	for lo := 0; lo < set.Len(); lo += batch {
		hi := min(lo+batch, set.Len())
		body := []byte(`{"instances":[`)
		for i := lo; i < hi; i++ {
			if i > lo {
				body = append(body, ',')
			}
			body = appendPixels(body, set.Images[i])
		}
		body = append(body, "]}"...)
		var out struct {
			Predictions [][]float64 `json:"predictions"`
		}
		if err := c.post(ctx, path, body, &out); err != nil {
			return res, err
		}
		if len(out.Predictions) != hi-lo {
			return res, fmt.Errorf("batch at %d: %d predictions for %d images", lo, len(out.Predictions), hi-lo)
		}
		for i, p := range out.Predictions {
			if argmax(p) == set.Labels[lo+i] {
				res.Correct++
			}
			res.Images++
		}
	}
	return res, nil
}

func argmax(p []float64) int {
	best := 0
	for i, v := range p {
		if v > p[best] {
			best = i
		}
	}
	return best
}

// VersionSplit sends n single-image KServe v2 infer requests (no version in the path, so the
// deployment's traffic split chooses) and counts the model_version of the answers.
func (c *Client) VersionSplit(ctx context.Context, set *mnistdata.Set, n int) (map[string]int, error) {
	counts := map[string]int{}
	path := "/v2/models/" + url.PathEscape(c.model) + "/infer"
	for i := range n {
		img := set.Images[i%set.Len()]
		body := []byte(`{"inputs":[{"name":"input","shape":[1,784],"datatype":"FP32","data":`)
		body = appendPixels(body, img)
		body = append(body, "}]}"...)
		var out struct {
			ModelVersion string `json:"model_version"`
		}
		if err := c.post(ctx, path, body, &out); err != nil {
			return counts, err
		}
		counts[out.ModelVersion]++
	}
	return counts, nil
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
