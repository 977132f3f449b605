// Package spec parses pipeline definitions into the compiled [dag.Pipeline]
// model. Two formats are accepted and detected automatically:
//
//   - the Kubeflow Pipelines v2 IR (PipelineSpec YAML as kfp.compiler writes
//     it), accepted unmodified: a document with pipelineInfo, root and
//     deploymentSpec;
//   - Sluice's native format (apiVersion sluice.io/v1, kind Pipeline),
//     documented in docs/pipeline-spec.md.
//
// Every function returns either a compiled, validated pipeline or an error
// wrapping [dag.FieldErrors] (errors.Is(err, dag.ErrInvalidSpec) holds) that
// lists every problem with its field path.
package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/sluice-ml/sluice/services/pipelines/internal/dag"
)

// MaxSpecBytes bounds the size of a spec document.
const MaxSpecBytes = 4 << 20

// Detect reports the format of a spec document: [dag.FormatKFP] when its
// first YAML document has pipelineInfo, root and deploymentSpec,
// [dag.FormatNative] when it has apiVersion or kind.
func Detect(data []byte) (dag.Format, error) {
	doc, err := firstDocument(data)
	if err != nil {
		return "", err
	}
	keys := map[string]bool{}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		keys[doc.Content[i].Value] = true
	}
	switch {
	case keys["pipelineInfo"] && keys["root"] && keys["deploymentSpec"]:
		return dag.FormatKFP, nil
	case keys["apiVersion"] || keys["kind"]:
		return dag.FormatNative, nil
	case keys["pipelineInfo"] || keys["root"]:
		return "", invalid("", "looks like a KFP IR but lacks pipelineInfo, root or deploymentSpec")
	}
	return "", invalid("", "unrecognized pipeline format: want a Sluice pipeline (apiVersion: sluice.io/v1, kind: Pipeline) or a KFP v2 IR (pipelineInfo, root, deploymentSpec)")
}

// Parse detects the format of data and parses and compiles it.
func Parse(data []byte) (*dag.Pipeline, error) {
	f, err := Detect(data)
	if err != nil {
		return nil, err
	}
	if f == dag.FormatKFP {
		return ParseKFP(data)
	}
	return ParseNative(data)
}

func invalid(path, format string, args ...any) error {
	return dag.FieldErrors{{Path: path, Message: fmt.Sprintf(format, args...)}}
}

// firstDocument decodes the first YAML document of data, which must be a mapping.
func firstDocument(data []byte) (*yaml.Node, error) {
	if len(data) > MaxSpecBytes {
		return nil, invalid("", "spec is %d bytes, more than the %d allowed", len(data), MaxSpecBytes)
	}
	var n yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&n); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, invalid("", "empty document")
		}
		return nil, yamlError(err)
	}
	if n.Kind != yaml.DocumentNode || len(n.Content) != 1 || n.Content[0].Kind != yaml.MappingNode {
		return nil, invalid("", "document must be a YAML mapping")
	}
	return n.Content[0], nil
}

var yamlTypeErrRe = regexp.MustCompile(`^line (\d+): (.*)$`)

// yamlError turns a YAML syntax or type error into field errors (the path
// is the line, which is all yaml.v3 reports).
func yamlError(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var fe dag.FieldErrors
		for _, e := range te.Errors {
			if m := yamlTypeErrRe.FindStringSubmatch(e); m != nil {
				fe = append(fe, dag.FieldError{Path: "line " + m[1], Message: m[2]})
			} else {
				fe = append(fe, dag.FieldError{Message: e})
			}
		}
		return fe
	}
	return invalid("", "%s", strings.TrimPrefix(err.Error(), "yaml: "))
}

// nodeValue decodes a YAML node into a JSON value (float64 numbers).
func nodeValue(n *yaml.Node) (any, error) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!timestamp" {
		return n.Value, nil
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, fmt.Errorf("invalid value: %v", err)
	}
	return dag.NormalizeValue(v), nil
}

// finish returns p, or the sorted, deduplicated problems.
func finish(p *dag.Pipeline, errs dag.FieldErrors) (*dag.Pipeline, error) {
	if len(errs) == 0 {
		return p, nil
	}
	sort.SliceStable(errs, func(i, j int) bool {
		if errs[i].Path != errs[j].Path {
			return errs[i].Path < errs[j].Path
		}
		return errs[i].Message < errs[j].Message
	})
	out := errs[:0]
	for i, e := range errs {
		if i > 0 && e == errs[i-1] {
			continue
		}
		out = append(out, e)
	}
	return nil, out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
