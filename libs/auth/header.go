package auth

import (
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// IdentityHeader carries the gateway's signed statement of who the caller is: a JWT (HS256, issuer
// "sluice-gateway", audience "sluice", valid for HeaderTTL) whose claims are an [Identity]. Services
// verify it with the shared key; a request reaching a service without the gateway has none and is refused.
const IdentityHeader = "X-Sluice-Identity"

// HeaderTTL is how long a signed identity header is valid.
const HeaderTTL = 2 * time.Minute

const (
	headerIssuer   = "sluice-gateway"
	headerAudience = "sluice"
)

// Signer signs and verifies identity headers with one HMAC key; verified headers are remembered
// (see [VerifiedTTL]).
type Signer struct {
	key      []byte
	verified verifiedCache
}

// NewSigner uses key (at least 32 bytes); an empty key gets 32 random bytes.
func NewSigner(key string) (*Signer, error) {
	if key == "" {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		return &Signer{key: b}, nil
	}
	if len(key) < 32 {
		return &Signer{}, errors.New("must be at least 32 bytes")
	}
	return &Signer{key: []byte(key)}, nil
}

type identityClaims struct {
	Identity Identity `json:"sluice"`
	jwt.RegisteredClaims
}

// Sign returns the header value stating id, valid from now for HeaderTTL.
func (s *Signer) Sign(id Identity, now time.Time) (string, error) {
	c := identityClaims{Identity: id, RegisteredClaims: jwt.RegisteredClaims{
		Issuer: headerIssuer, Audience: jwt.ClaimStrings{headerAudience}, Subject: id.Subject,
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now.Add(-5 * time.Second)),
		ExpiresAt: jwt.NewNumericDate(now.Add(HeaderTTL)),
	}}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(s.key)
}

// Verify returns the identity a header value states, or an error when it is not signed with this key,
// expired, or not meant for Sluice.
func (s *Signer) Verify(v string) (Identity, error) {
	now := time.Now()
	if id, ok := s.verified.get(v, now); ok {
		return id, nil
	}
	var c identityClaims
	_, err := jwt.ParseWithClaims(v, &c, func(*jwt.Token) (any, error) { return s.key, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), jwt.WithIssuer(headerIssuer),
		jwt.WithAudience(headerAudience), jwt.WithExpirationRequired(), jwt.WithLeeway(5*time.Second))
	if err != nil {
		return Identity{}, fmt.Errorf("%s: %w", IdentityHeader, err)
	}
	if c.Identity.Subject == "" {
		return Identity{}, fmt.Errorf("%s: no subject", IdentityHeader)
	}
	s.verified.put(v, c.Identity, c.ExpiresAt.Time, now)
	return c.Identity, nil
}
