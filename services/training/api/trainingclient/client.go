// Package trainingclient is the Go client of the training service's REST API
// (/apis/training/v1/namespaces/{ns}/jobs[/{name}[/logs]]), shared by the
// services that run training jobs (the pipelines engine's trainingJob tasks,
// the tuning service's trials). Calls to /jobs/{name} carry ?kind= when the
// caller knows the job's kind: the kind is part of a job's identity (a TFJob
// and a PyTorchJob may share a name; see the training README), so a
// kind-qualified call never answers 409 ambiguous.
package trainingclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
)

// DefaultBaseURL is the training service's base URL when none is configured (`sluice dev`'s API port).
const DefaultBaseURL = "http://127.0.0.1:8080"

// maxBody bounds what is read of an answer (logs included).
const maxBody = 64 << 20

// Client calls one training service. The zero value talks to DefaultBaseURL with http.DefaultClient.
type Client struct {
	// BaseURL is http(s)://host:port of the training service.
	BaseURL string
	// HTTP sends the requests (e.g. platform's service client, which signs the caller's identity).
	HTTP *http.Client
}

// Error is an answer other than 2xx: the HTTP status and the "error" field of the JSON body (else the
// body itself).
type Error struct {
	// Op says what was asked, e.g. "create job ns/name".
	Op      string
	Code    int
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("training service: %s: HTTP %d: %s", e.Op, e.Code, e.Message)
}

// StatusOf is the HTTP status of an *Error in err's chain, 0 when there is none (a transport error).
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

// IsNotFound reports a 404: no such job (or it was deleted).
func IsNotFound(err error) bool { return StatusOf(err) == http.StatusNotFound }

// IsConflict reports a 409: the job exists (create), or both kinds have a job of that name (no kind given).
func IsConflict(err error) bool { return StatusOf(err) == http.StatusConflict }

// IsInvalid reports a 400: the document (or a parameter) was refused; Message names the fields.
func IsInvalid(err error) bool { return StatusOf(err) == http.StatusBadRequest }

func (c *Client) base() string {
	if c.BaseURL == "" {
		return DefaultBaseURL
	}
	return strings.TrimRight(c.BaseURL, "/")
}

// JobsURL is the URL of the jobs of namespace ns.
func (c *Client) JobsURL(ns string) string {
	return c.base() + "/apis/training/v1/namespaces/" + url.PathEscape(ns) + "/jobs"
}

// JobURL is the URL of job ns/name (suffix, e.g. "/logs", appended to the path), with ?kind= when kind is
// set and the other query parameters of q.
func (c *Client) JobURL(kind, ns, name, suffix string, q url.Values) string {
	if kind != "" {
		if q == nil {
			q = url.Values{}
		}
		q.Set("kind", kind)
	}
	u := c.JobsURL(ns) + "/" + url.PathEscape(name) + suffix
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// do sends one request and reads the answer; a non-2xx answer is an *Error.
func (c *Client) do(ctx context.Context, op, method, u string, body []byte) ([]byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("training service: %s: %w", op, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("training service: %s: read answer: %w", op, err)
	}
	if resp.StatusCode/100 != 2 {
		return b, &Error{Op: op, Code: resp.StatusCode, Message: errorText(b)}
	}
	return b, nil
}

// errorText is the "error" field of a JSON error answer, else the body itself.
func errorText(body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return e.Error
	}
	return strings.TrimSpace(string(body))
}

// Create submits a TFJob/PyTorchJob document (JSON or YAML) to namespace ns: POST .../jobs, 201. Errors:
// IsInvalid (400, the field errors in the message), IsConflict (409, a job of that kind and name exists).
func (c *Client) Create(ctx context.Context, ns, name string, doc []byte) error {
	_, err := c.do(ctx, "create job "+ns+"/"+name, http.MethodPost, c.JobsURL(ns), doc)
	return err
}

// Get returns the live view of job kind ns/name: GET .../jobs/{name}?kind=. IsNotFound once it is deleted.
func (c *Client) Get(ctx context.Context, kind, ns, name string) (trainingv1.JobView, error) {
	var v trainingv1.JobView
	op := "get job " + ns + "/" + name
	b, err := c.do(ctx, op, http.MethodGet, c.JobURL(kind, ns, name, "", nil), nil)
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("training service: %s: decode: %w", op, err)
	}
	return v, nil
}

// Delete deletes job kind ns/name: DELETE .../jobs/{name}?kind=, answered once its replicas stopped.
// IsNotFound when there is no such job.
func (c *Client) Delete(ctx context.Context, kind, ns, name string) error {
	_, err := c.do(ctx, "delete job "+ns+"/"+name, http.MethodDelete, c.JobURL(kind, ns, name, "", nil), nil)
	return err
}

// Logs returns the log of one replica ("worker-0", trainingv1.ReplicaView.LogName) of job kind ns/name,
// its last attempt: GET .../jobs/{name}/logs?kind=&replica=.
func (c *Client) Logs(ctx context.Context, kind, ns, name, replica string) ([]byte, error) {
	return c.do(ctx, "log of "+ns+"/"+name+"/"+replica, http.MethodGet, c.JobURL(kind, ns, name, "/logs", url.Values{"replica": {replica}}), nil)
}
