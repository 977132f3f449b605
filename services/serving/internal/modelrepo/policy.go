// Package modelrepo serves the versions of one model from a TF Serving-style model repository:
// a base path whose integer-named child directories ("3", "0003") are versions, each holding
// the model file (model.onnx). A Manager polls the source, loads the versions selected by its
// version policy off the request path, and publishes an immutable Snapshot of the loaded
// versions, swapped atomically so requests in flight keep the servable they started with.
//
// Contract: TensorFlow Serving FileSystemStoragePathSource and ServableVersionPolicy
// (latest{num_versions}, all{}, specific{versions}), version labels, and the
// GetModelStatus states.
package modelrepo

import (
	"errors"
	"fmt"
	"slices"
)

// Policy selects which discovered versions are served. Exactly one of Latest, All and
// Specific may be set; the zero Policy means Latest 1 (TF Serving's default).
type Policy struct {
	// Latest serves the N highest versions.
	Latest int `json:"latest,omitempty"`
	// All serves every version.
	All bool `json:"all,omitempty"`
	// Specific serves the listed versions (those present).
	Specific []int64 `json:"specific,omitempty"`
}

// Validate reports a policy with more than one choice or invalid numbers, naming the field.
func (p Policy) Validate() error {
	set := 0
	if p.Latest != 0 {
		set++
	}
	if p.All {
		set++
	}
	if len(p.Specific) > 0 {
		set++
	}
	var errs []error
	if set > 1 {
		errs = append(errs, errors.New("versionPolicy: exactly one of latest, all, specific may be set"))
	}
	if p.Latest < 0 {
		errs = append(errs, fmt.Errorf("versionPolicy.latest: must be >= 1, got %d", p.Latest))
	}
	for i, v := range p.Specific {
		if v < 0 {
			errs = append(errs, fmt.Errorf("versionPolicy.specific[%d]: must be >= 0, got %d", i, v))
		}
	}
	return errors.Join(errs...)
}

// Select returns the versions of candidates the policy serves, highest first.
func (p Policy) Select(candidates []int64) []int64 {
	sorted := slices.Clone(candidates)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	slices.Reverse(sorted)
	switch {
	case p.All:
		return sorted
	case len(p.Specific) > 0:
		var out []int64
		for _, v := range sorted {
			if slices.Contains(p.Specific, v) {
				out = append(out, v)
			}
		}
		return out
	default:
		n := max(p.Latest, 1)
		return sorted[:min(n, len(sorted))]
	}
}

// String renders the policy as TF Serving's text form, e.g. "latest{num_versions:2}".
func (p Policy) String() string {
	switch {
	case p.All:
		return "all{}"
	case len(p.Specific) > 0:
		return fmt.Sprintf("specific{versions:%v}", p.Specific)
	default:
		return fmt.Sprintf("latest{num_versions:%d}", max(p.Latest, 1))
	}
}
