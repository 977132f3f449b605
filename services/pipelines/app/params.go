package app

import (
	"encoding/json"
	"fmt"

	"github.com/sluice-ml/sluice/services/pipelines/internal/dag"
	"github.com/sluice-ml/sluice/services/pipelines/internal/spec"
)

// TypedParameters converts run parameters given as text (the CLI's `-p name=value`) into JSON values by
// the types the pipeline declares for its inputs: a STRING input takes the exact text (even `123`,
// `true` or `"quoted"`), NUMBER_INTEGER/NUMBER_DOUBLE/BOOLEAN parse the text, LIST/STRUCT parse it as
// JSON. A name the pipeline does not declare (or a spec that does not parse) keeps the old CLI reading:
// JSON when the text is JSON, else the string, and the server reports the problem.
// Errors name the parameter, its type and the text.
func TypedParameters(specSrc []byte, texts map[string]string) (map[string]any, error) {
	declared := map[string]dag.ParamType{}
	if p, err := spec.Parse(specSrc); err == nil {
		for _, in := range p.Inputs() {
			declared[in.Name] = in.Type
		}
	}
	out := map[string]any{}
	for name, text := range texts {
		t, ok := declared[name]
		if !ok {
			var j any
			if json.Unmarshal([]byte(text), &j) == nil {
				out[name] = j
			} else {
				out[name] = text
			}
			continue
		}
		v, err := dag.ParseParamText(text, t)
		if err != nil {
			return nil, fmt.Errorf("parameter %s (%s): %w", name, t, err)
		}
		out[name] = v
	}
	return out, nil
}
