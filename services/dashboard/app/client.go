package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/sluice-ml/sluice/libs/auth"
)

// apiError is a refusal of a Sluice API: its status and message, shown to the user as they are.
type apiError struct {
	Code int
	Msg  string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d: %s", e.Code, e.Msg) }

// caller calls the Sluice APIs for one browser request, with that request's credential: the token the
// browser presented (the sluice cookie or an Authorization header), else the caller's identity signed
// for the services (a gateway in front stated it). It never adds a credential of its own.
type caller struct {
	base   string
	token  string
	header string
	hc     *http.Client
}

// callerFor builds the caller of r. base is SLUICE_DASHBOARD_API_URL; empty means the APIs are served on
// the address the request arrived at (sluice dev hosts every API on the dashboard's port).
func (a *App) callerFor(r *http.Request) (*caller, error) {
	c, err := a.callerWith(r, auth.Presented(r, true))
	if err != nil {
		return nil, err
	}
	if c.token == "" && a.signer != nil {
		id, ok := auth.FromContext(r.Context())
		if !ok {
			return nil, auth.ErrNoCredential
		}
		h, err := a.signer.Sign(id, time.Now())
		if err != nil {
			return nil, err
		}
		c.header = h
	}
	return c, nil
}

// callerWith is a caller presenting token (none when empty).
func (a *App) callerWith(r *http.Request, token string) (*caller, error) {
	base := a.apiURL
	if base == "" {
		la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		if !ok {
			return nil, errors.New("dashboard: no API address (set SLUICE_DASHBOARD_API_URL)")
		}
		base = "http://" + la.String()
	}
	return &caller{base: strings.TrimSuffix(base, "/"), token: token, hc: a.hc}, nil
}

func (c *caller) do(ctx context.Context, method, path, contentType string, body []byte) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	c.authorize(req)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var e struct {
			Error  string   `json:"error"`
			Errors []string `json:"errors"`
		}
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
			if len(e.Errors) > 1 {
				msg = strings.Join(e.Errors, "; ")
			}
		}
		return nil, &apiError{Code: resp.StatusCode, Msg: msg}
	}
	return resp, nil
}

// getJSON GETs path and decodes the JSON answer into v.
func (c *caller) getJSON(ctx context.Context, path string, v any) error {
	resp, err := c.do(ctx, http.MethodGet, path, "", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// sendJSON sends body as JSON and decodes the answer into v (nil: discarded).
func (c *caller) sendJSON(ctx context.Context, method, path string, body, v any) error {
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return err
		}
	}
	resp, err := c.do(ctx, method, path, "application/json", b)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if v == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// authorize adds the caller's credential to req.
func (c *caller) authorize(req *http.Request) {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	} else if c.header != "" {
		req.Header.Set(auth.IdentityHeader, c.header)
	}
}
