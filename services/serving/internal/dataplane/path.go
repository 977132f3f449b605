package dataplane

import (
	"fmt"
	"net/url"
	"strings"
)

// splitPath splits an escaped URL path into unescaped segments, so "m%3Apredict" and
// "m:predict" both become "m:predict" while "%2F" stays inside its segment.
func splitPath(escaped string) ([]string, error) {
	parts := strings.Split(strings.Trim(escaped, "/"), "/")
	segs := make([]string, 0, len(parts))
	for _, p := range parts {
		if p == "" {
			continue
		}
		u, err := url.PathUnescape(p)
		if err != nil {
			return nil, fmt.Errorf("Malformed request: invalid escape in path segment %q", p)
		}
		segs = append(segs, u)
	}
	return segs, nil
}

func eqFold(a, b string) bool { return strings.EqualFold(a, b) }
