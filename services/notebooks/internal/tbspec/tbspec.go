// Package tbspec parses and validates tensorboard.kubeflow.org/v1alpha1 Tensorboard documents (YAML or
// JSON, as Kubeflow's tensorboard-controller accepts them) and resolves spec.logspath to where the event
// files are. Every error names the field path it is about.
package tbspec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/sluice-ml/sluice/services/notebooks/api/notebooksv1"
)

// ErrInvalid is matched (errors.Is) by every validation failure.
var ErrInvalid = errors.New("tbspec: invalid tensorboard")

// InvalidError lists every problem of a document, each "field.path: message".
type InvalidError struct{ Problems []string }

func (e *InvalidError) Error() string { return strings.Join(e.Problems, "; ") }

// Is makes errors.Is(err, ErrInvalid) true.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

var dns1123Label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// Parse decodes doc, fills metadata.namespace with defaultNamespace when it is empty, and validates it.
func Parse(doc []byte, defaultNamespace string) (notebooksv1.Tensorboard, error) {
	var tb notebooksv1.Tensorboard
	if len(bytes.TrimSpace(doc)) == 0 {
		return tb, &InvalidError{[]string{"(document): empty"}}
	}
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return tb, &InvalidError{[]string{"(document): not YAML or JSON: " + err.Error()}}
	}
	if err := json.Unmarshal(js, &tb); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return tb, &InvalidError{[]string{fmt.Sprintf("%s: must be %s, got %s", te.Field, te.Type, te.Value)}}
		}
		return tb, &InvalidError{[]string{"(document): " + err.Error()}}
	}
	if tb.Metadata.Namespace == "" {
		tb.Metadata.Namespace = defaultNamespace
	}
	tb.Status = notebooksv1.TensorboardStatus{}
	return tb, Validate(tb)
}

// Validate checks identity, name, namespace and spec.logspath.
func Validate(tb notebooksv1.Tensorboard) error {
	var p []string
	if tb.APIVersion != notebooksv1.TensorboardAPIVersion {
		p = append(p, fmt.Sprintf("apiVersion: must be %q, got %q", notebooksv1.TensorboardAPIVersion, tb.APIVersion))
	}
	if tb.Kind != notebooksv1.TensorboardKind {
		p = append(p, fmt.Sprintf("kind: must be %q, got %q", notebooksv1.TensorboardKind, tb.Kind))
	}
	for field, v := range map[string]string{"metadata.name": tb.Metadata.Name, "metadata.namespace": tb.Metadata.Namespace} {
		if v == "" {
			p = append(p, field+": required")
		} else if len(v) > 63 || !dns1123Label.MatchString(v) {
			p = append(p, fmt.Sprintf("%s: %q must be a DNS-1123 label (lower-case alphanumerics and '-', at most 63)", field, v))
		}
	}
	if _, err := ParseLogsPath(tb.Spec.LogsPath); err != nil {
		p = append(p, err.Error())
	}
	if len(p) > 0 {
		slices.Sort(p) // stable messages: the map above ranges in random order
		return &InvalidError{p}
	}
	return nil
}

// LogsPath is a parsed spec.logspath.
type LogsPath struct {
	// Scheme is "s3" or "pvc".
	Scheme string
	// Bucket (s3) or Claim (pvc).
	Bucket, Claim string
	// Path is the prefix inside the bucket or the path inside the claim, without leading or trailing '/'.
	Path string
}

// ParseLogsPath parses "s3://<bucket>[/<prefix>]" or "pvc://<claim>[/<path>]". The error names
// spec.logspath.
func ParseLogsPath(s string) (LogsPath, error) {
	fail := func(msg string) (LogsPath, error) {
		return LogsPath{}, fmt.Errorf("spec.logspath: %s", msg)
	}
	if s == "" {
		return fail("required (s3://<bucket>/<prefix> or pvc://<claim>/<path>)")
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || (scheme != "s3" && scheme != "pvc") {
		return fail(fmt.Sprintf("%q: must start with s3:// or pvc:// (gs:// is not served by Sluice)", s))
	}
	first, p, _ := strings.Cut(rest, "/")
	if first == "" {
		return fail(fmt.Sprintf("%q: missing the %s name", s, map[string]string{"s3": "bucket", "pvc": "claim"}[scheme]))
	}
	p = strings.Trim(p, "/")
	if p != "" {
		for _, seg := range strings.Split(p, "/") {
			if seg == ".." || seg == "." {
				return fail(fmt.Sprintf("%q: path must not contain %q", s, seg))
			}
		}
	}
	if scheme == "s3" {
		return LogsPath{Scheme: scheme, Bucket: first, Path: p}, nil
	}
	if !dns1123Label.MatchString(first) {
		return fail(fmt.Sprintf("%q: claim %q must be a DNS-1123 name", s, first))
	}
	return LogsPath{Scheme: scheme, Claim: first, Path: p}, nil
}

// LocalDir is where a pvc:// path lives when volumes are local directories: <volumesDir>/<namespace>/<claim>/<path>.
func (l LogsPath) LocalDir(volumesDir, namespace string) string {
	return filepath.Join(volumesDir, namespace, l.Claim, filepath.FromSlash(path.Clean("/"+l.Path)))
}
