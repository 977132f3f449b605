package dag

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
)

// fingerprintVersion is mixed into every cache key; bump it when the key's
// content changes so old cache entries stop matching.
const fingerprintVersion = "sluice.cache.v1"

type cacheKey struct {
	Version string   `json:"version"`
	Image   string   `json:"image"`
	Command []string `json:"command"`
	Args    []string `json:"args"`
	Env     []EnvVar `json:"env"`
	// Output names and types: changing the outputs changes what a hit must provide.
	OutputParameters map[string]ParamType `json:"outputParameters"`
	OutputArtifacts  map[string]string    `json:"outputArtifacts"`
	Parameters       map[string]any       `json:"parameters"`
	Artifacts        map[string][]string  `json:"artifacts"`
}

// Fingerprint returns the cache key of running container component comp with
// the given input parameter values and input artifact digests (input name ->
// sha256 hex digest of each artifact, in list order): hex(sha256) over a
// stable JSON encoding (sorted keys, float64 numbers) of the component
// identity (image, raw command and args, env, output names and types), the
// parameter values and the digests. Unlike KFP (which keys input artifacts
// by MLMD name) content digests are used, so a changed input file is a miss.
// It returns "" for a component without a container executor.
func Fingerprint(comp *Component, params map[string]any, artifactDigests map[string][]string) string {
	if comp == nil || comp.Executor == nil {
		return ""
	}
	k := cacheKey{
		Version:          fingerprintVersion,
		Image:            comp.Executor.Image,
		Command:          nonNil(comp.Executor.Command),
		Args:             nonNil(comp.Executor.Args),
		Env:              append([]EnvVar{}, comp.Executor.Env...),
		OutputParameters: map[string]ParamType{},
		OutputArtifacts:  map[string]string{},
		Parameters:       map[string]any{},
		Artifacts:        map[string][]string{},
	}
	sort.SliceStable(k.Env, func(i, j int) bool { return k.Env[i].Name < k.Env[j].Name })
	for _, o := range comp.OutputParams {
		k.OutputParameters[o.Name] = o.Type
	}
	for _, o := range comp.OutputArtifacts {
		k.OutputArtifacts[o.Name] = o.SchemaTitle
	}
	for n, v := range params {
		k.Parameters[n] = normalizeJSON(v)
	}
	for n, d := range artifactDigests {
		k.Artifacts[n] = nonNil(d)
	}
	b, err := marshalJSON(k)
	if err != nil {
		// Only non-finite numbers fail to encode; fall back to their text so
		// the key stays deterministic.
		for n, v := range k.Parameters {
			s, _ := ParamText(v)
			k.Parameters[n] = s
		}
		b, _ = marshalJSON(k)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
