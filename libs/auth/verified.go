package auth

import (
	"crypto/sha256"
	"sync"
	"time"
)

// VerifiedTTL is the longest a verified signed credential (identity header, OIDC ID token) is trusted
// without verifying its signature again; it is never trusted past its own expiry. A key rotation takes
// effect for credentials already seen within this time.
const VerifiedTTL = time.Minute

// verifiedMax bounds the remembered credentials; when full, the cache starts over.
const verifiedMax = 4096

// verifiedCache remembers credentials whose signature verified, by SHA-256, so a client presenting
// the same token on every request (a data-plane client) has it verified once per VerifiedTTL.
type verifiedCache struct {
	mu sync.Mutex
	m  map[[32]byte]verifiedEntry
}

type verifiedEntry struct {
	id    Identity
	until time.Time
}

func (c *verifiedCache) get(cred string, now time.Time) (Identity, bool) {
	key := sha256.Sum256([]byte(cred))
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	if !ok || !now.Before(e.until) {
		return Identity{}, false
	}
	return e.id, true
}

// put remembers cred as id until exp (the credential's expiry) or VerifiedTTL from now, whichever
// comes first.
func (c *verifiedCache) put(cred string, id Identity, exp, now time.Time) {
	until := now.Add(VerifiedTTL)
	if exp.Before(until) {
		until = exp
	}
	if !now.Before(until) {
		return
	}
	key := sha256.Sum256([]byte(cred))
	c.mu.Lock()
	if c.m == nil || len(c.m) >= verifiedMax {
		c.m = make(map[[32]byte]verifiedEntry)
	}
	c.m[key] = verifiedEntry{id: id, until: until}
	c.mu.Unlock()
}
