package command

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// apiClient calls a Sluice API server.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

func (o *Options) client() *apiClient {
	return &apiClient{base: strings.TrimRight(o.Server, "/"), token: o.token(), http: &http.Client{Timeout: 60 * time.Second}}
}

// authorize adds the bearer token unless the request has an Authorization header already.
func (c *apiClient) authorize(req *http.Request) {
	if c.token != "" && req.Header.Get("Authorization") == "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
}

// apiError is a non-2xx answer; Body holds the server's {"error": ...} text.
type apiError struct {
	Status int
	Body   string
}

func (e *apiError) Error() string {
	var m map[string]any
	if json.Unmarshal([]byte(e.Body), &m) == nil {
		if s, ok := m["error"].(string); ok {
			return fmt.Sprintf("server answered %d: %s", e.Status, s)
		}
	}
	return fmt.Sprintf("server answered %d: %s", e.Status, strings.TrimSpace(e.Body))
}

// do sends body (JSON-encoded unless it is an io.Reader) and decodes a JSON answer into out (if non-nil).
// A 400 answer becomes an exit-code-2 error.
func (c *apiClient) do(ctx context.Context, method, path string, hdr http.Header, body any, out any) error {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case io.Reader:
		rd = b
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	c.authorize(req)
	if rd != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the Sluice API at %s (is `sluice dev` running? set --server): %w", c.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		e := &apiError{Status: resp.StatusCode, Body: string(b)}
		if resp.StatusCode == http.StatusBadRequest {
			return usageError(e)
		}
		return e
	}
	if out == nil {
		return nil
	}
	if w, ok := out.(io.Writer); ok {
		_, err := io.Copy(w, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// stream opens a streaming GET (no overall timeout).
func (c *apiClient) stream(ctx context.Context, path string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	c.authorize(req)
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the Sluice API at %s: %w", c.base, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, &apiError{Status: resp.StatusCode, Body: string(b)}
	}
	return resp.Body, nil
}
