package auth_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sluice-ml/sluice/libs/auth"
)

func TestStaticAndNamespaceTokens(t *testing.T) {
	t.Parallel()
	a, err := auth.NewAuthenticator(t.Context(), auth.Config{
		Tokens: "alice-token-0000000001=alice;root-token-00000000002=root", Admins: "root",
		NamespaceTokens: "tokAAAAAAAAAAAAAAAA1=team-a;tokStarStarStarStar=*",
	})
	if err != nil {
		t.Fatal(err)
	}
	id, err := a.Authenticate(t.Context(), "alice-token-0000000001")
	if err != nil || id.Subject != "alice" || id.Admin {
		t.Fatalf("alice: %+v %v", id, err)
	}
	if id, _ := a.Authenticate(t.Context(), "root-token-00000000002"); !id.Admin {
		t.Fatalf("root is not admin: %+v", id)
	}
	var p *auth.Profiles // nil: grants only
	id, _ = a.Authenticate(t.Context(), "tokAAAAAAAAAAAAAAAA1")
	if p.Role(id, "team-a") != auth.RoleContributor || p.Role(id, "team-b") != auth.RoleNone {
		t.Fatalf("namespace token grants: %+v", id)
	}
	id, _ = a.Authenticate(t.Context(), "tokStarStarStarStar")
	if p.Role(id, "anything") != auth.RoleOwner {
		t.Fatalf("* grant: %+v", id)
	}
	if _, err := a.Authenticate(t.Context(), ""); !errors.Is(err, auth.ErrNoCredential) {
		t.Fatalf("empty: %v", err)
	}
	if _, err := a.Authenticate(t.Context(), "nope-nope-nope-nope-nope"); !errors.Is(err, auth.ErrBadCredential) {
		t.Fatalf("unknown: %v", err)
	}
	if _, err := auth.NewAuthenticator(t.Context(), auth.Config{Tokens: "short=x", Key: "too-short"}); err == nil {
		t.Fatal("bad config accepted")
	}
}

func TestSignedIdentityHeader(t *testing.T) {
	t.Parallel()
	s, _ := auth.NewSigner("0123456789abcdef0123456789abcdef")
	other, _ := auth.NewSigner("")
	now := time.Now()
	h, err := s.Sign(auth.Identity{Subject: "alice", Grants: map[string]auth.Role{"team-a": auth.RoleViewer}}, now)
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.Verify(h)
	if err != nil || id.Subject != "alice" || id.Grants["team-a"] != auth.RoleViewer {
		t.Fatalf("verify: %+v %v", id, err)
	}
	if _, err := other.Verify(h); err == nil {
		t.Fatal("another key verified the header")
	}
	old, _ := s.Sign(auth.Identity{Subject: "alice"}, now.Add(-time.Hour))
	if _, err := s.Verify(old); err == nil {
		t.Fatal("expired header verified")
	}
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sluice":{"sub":"x","admin":true}}`)) + "."
	if _, err := s.Verify(none); err == nil {
		t.Fatal("alg none verified")
	}
}

// TestOIDCIDTokens verifies ID tokens against a JWKS served locally (go-oidc does the verification).
func TestOIDCIDTokens(t *testing.T) {
	t.Parallel()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwks := map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
		"n": base64.RawURLEncoding.EncodeToString(key.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(key.E)).Bytes()),
	}}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(jwks)
	}))
	defer srv.Close()
	const issuer = "https://issuer.example"
	a, err := auth.NewAuthenticator(context.Background(), auth.Config{OIDCIssuer: issuer, OIDCClientID: "sluice", OIDCJWKSURL: srv.URL, Admins: "boss@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	sign := func(claims jwt.MapClaims, k *rsa.PrivateKey) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
		tok.Header["kid"] = "k1"
		s, err := tok.SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	now := time.Now()
	good := jwt.MapClaims{"iss": issuer, "aud": "sluice", "sub": "u1", "email": "boss@example.com", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix()}
	id, err := a.Authenticate(t.Context(), sign(good, key))
	if err != nil || id.Subject != "boss@example.com" || !id.Admin {
		t.Fatalf("good ID token: %+v %v", id, err)
	}
	wrongAud := jwt.MapClaims{"iss": issuer, "aud": "other", "sub": "u1", "exp": now.Add(time.Hour).Unix()}
	if _, err := a.Authenticate(t.Context(), sign(wrongAud, key)); !errors.Is(err, auth.ErrBadCredential) {
		t.Fatalf("wrong audience: %v", err)
	}
	otherKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	if _, err := a.Authenticate(t.Context(), sign(good, otherKey)); !errors.Is(err, auth.ErrBadCredential) {
		t.Fatalf("wrong key: %v", err)
	}
	expired := jwt.MapClaims{"iss": issuer, "aud": "sluice", "sub": "u1", "exp": now.Add(-time.Hour).Unix()}
	if _, err := a.Authenticate(t.Context(), sign(expired, key)); !errors.Is(err, auth.ErrBadCredential) {
		t.Fatalf("expired: %v", err)
	}
}

func TestProfileRoles(t *testing.T) {
	t.Parallel()
	p := auth.Profile{Name: "team-a", Owner: "olivia", Contributors: []string{"carl"}, Viewers: []string{"vera"}}
	for subj, want := range map[string]auth.Role{"olivia": auth.RoleOwner, "carl": auth.RoleContributor, "vera": auth.RoleViewer, "mallory": auth.RoleNone} {
		if got := p.RoleOf(subj); got != want {
			t.Errorf("%s: %s, want %s", subj, got, want)
		}
	}
	for _, bad := range []string{"", "Team", "a/b", "..", "-a", "a_b"} {
		if auth.ValidNamespace(bad) == nil {
			t.Errorf("namespace %q accepted", bad)
		}
	}
}
