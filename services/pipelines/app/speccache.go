package app

import (
	"crypto/sha256"
	"sync"

	"github.com/sluice-ml/sluice/services/pipelines/internal/dag"
)

// specCacheSize bounds the compiled specs kept by a specCache: the pipelines a service runs at once are
// few (a burst of run requests is typically many runs of one or a few specs), and a spec is at most a
// few MiB compiled.
const specCacheSize = 64

// specCache keeps compiled run specs by the SHA-256 of their source, so a burst of run requests for one
// pipeline parses and compiles it once instead of once per request (spec.Parse is YAML/JSON decoding plus
// the whole DAG check). Only specs that compiled and passed the runtime check are kept; a compiled
// *dag.Pipeline is shared by every request of the same source and must be read, never changed.
type specCache struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]*dag.Pipeline
}

func (c *specCache) get(src string) (*dag.Pipeline, [sha256.Size]byte) {
	key := sha256.Sum256([]byte(src))
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[key], key
}

func (c *specCache) put(key [sha256.Size]byte, p *dag.Pipeline) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= specCacheSize {
		// Full: start over rather than track recency; a burst refills it with what it runs.
		c.m = make(map[[sha256.Size]byte]*dag.Pipeline, specCacheSize)
	}
	c.m[key] = p
}
