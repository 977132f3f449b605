package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// Errors of [Authenticator.Authenticate].
var (
	// ErrNoCredential: the request carries no token.
	ErrNoCredential = errors.New("a Sluice API token is required (Authorization: Bearer <token>)")
	// ErrBadCredential: the token is unknown, expired or its signature does not verify.
	ErrBadCredential = errors.New("the API token is not valid")
)

// CookieName is the cookie a browser keeps its Sluice token in once it opened a notebook with ?token=
// or signed in to the dashboard (HttpOnly, SameSite=Strict; the notebook proxy strips it).
const CookieName = "sluice-notebook-token"

// Config configures an [Authenticator]. [ConfigFromEnv] reads it from SLUICE_AUTH_* and SLUICE_OIDC_*.
type Config struct {
	// Tokens are static bearer tokens, "token=subject;token2=subject2" (SLUICE_AUTH_TOKENS). A subject listed
	// in Admins (or AdminSubject) is an admin.
	Tokens string
	// NamespaceTokens are namespace-scoped tokens, "token=ns1,ns2;token2=*" (SLUICE_NOTEBOOKS_TOKENS, the
	// notebooks service's older format): contributor of the listed namespaces, owner of every one with "*".
	NamespaceTokens string
	// Admins lists admin subjects, comma-separated (SLUICE_AUTH_ADMINS), e.g. OIDC e-mails.
	Admins string
	// Key signs and verifies the identity header between gateway and services (SLUICE_AUTH_KEY, at least
	// 32 bytes). Empty: a random key, fine when gateway and services share one process (`sluice dev`).
	Key string
	// OIDCIssuer, when set, accepts ID tokens of that issuer (SLUICE_OIDC_ISSUER), verified against its
	// JWKS (discovered, or SLUICE_OIDC_JWKS_URL) for audience OIDCClientID (SLUICE_OIDC_CLIENT_ID).
	OIDCIssuer, OIDCClientID, OIDCJWKSURL string
	// OIDCUsernameClaim names the claim that becomes the subject (SLUICE_OIDC_USERNAME_CLAIM, default
	// "email"; "sub" when the claim is missing).
	OIDCUsernameClaim string
	// Mode is how a service's own API authenticates callers (SLUICE_AUTH_MODE): ModeDirect (the default:
	// a bearer token or the gateway's signed identity header) or ModeGateway (only the signed identity
	// header: the service sits behind a gateway, and a request that reaches it directly with a bearer
	// token is refused).
	Mode string
}

// Values of Config.Mode.
const (
	ModeDirect  = "direct"
	ModeGateway = "gateway"
)

// ConfigFromEnv reads Config through getenv.
func ConfigFromEnv(getenv func(string) string) Config {
	return Config{
		Tokens: getenv("SLUICE_AUTH_TOKENS"), NamespaceTokens: getenv("SLUICE_NOTEBOOKS_TOKENS"),
		Admins: getenv("SLUICE_AUTH_ADMINS"), Key: getenv("SLUICE_AUTH_KEY"),
		OIDCIssuer: getenv("SLUICE_OIDC_ISSUER"), OIDCClientID: getenv("SLUICE_OIDC_CLIENT_ID"),
		OIDCJWKSURL: getenv("SLUICE_OIDC_JWKS_URL"), OIDCUsernameClaim: getenv("SLUICE_OIDC_USERNAME_CLAIM"),
		Mode: getenv("SLUICE_AUTH_MODE"),
	}
}

// Env lists the variables ConfigFromEnv reads, for docs.
var Env = []string{"SLUICE_AUTH_TOKENS", "SLUICE_NOTEBOOKS_TOKENS", "SLUICE_AUTH_ADMINS", "SLUICE_AUTH_KEY",
	"SLUICE_OIDC_ISSUER", "SLUICE_OIDC_CLIENT_ID", "SLUICE_OIDC_JWKS_URL", "SLUICE_OIDC_USERNAME_CLAIM", "SLUICE_AUTH_MODE"}

// Authenticator turns a request's credential into an [Identity].
type Authenticator struct {
	mu     sync.RWMutex
	static map[[32]byte]Identity // by SHA-256 of the token
	admins map[string]bool
	signer *Signer
	oidc   *oidc.IDTokenVerifier
	claim  string
	// gatewayOnly: Mode is ModeGateway.
	gatewayOnly bool

	verified verifiedCache // OIDC ID tokens that verified
}

// NewAuthenticator builds an Authenticator; every configuration error names its variable. OIDC discovery
// (when SLUICE_OIDC_JWKS_URL is empty) runs under ctx.
func NewAuthenticator(ctx context.Context, cfg Config) (*Authenticator, error) {
	a := &Authenticator{static: map[[32]byte]Identity{}, admins: map[string]bool{AdminSubject: true}, claim: cfg.OIDCUsernameClaim}
	if a.claim == "" {
		a.claim = "email"
	}
	for _, s := range strings.Split(cfg.Admins, ",") {
		if s = strings.TrimSpace(s); s != "" {
			a.admins[s] = true
		}
	}
	var errs []error
	switch cfg.Mode {
	case "", ModeDirect:
	case ModeGateway:
		a.gatewayOnly = true
		if cfg.Key == "" {
			errs = append(errs, errors.New("SLUICE_AUTH_KEY: required with SLUICE_AUTH_MODE=gateway (the gateway signs identities with it)"))
		}
	default:
		errs = append(errs, fmt.Errorf("SLUICE_AUTH_MODE: %q is not %s or %s", cfg.Mode, ModeDirect, ModeGateway))
	}
	for i, e := range splitEntries(cfg.Tokens) {
		tok, subj, ok := strings.Cut(e, "=")
		tok, subj = strings.TrimSpace(tok), strings.TrimSpace(subj)
		if !ok || subj == "" {
			errs = append(errs, fmt.Errorf("SLUICE_AUTH_TOKENS: entry %d: want <token>=<subject>", i+1))
			continue
		}
		if err := checkToken(tok); err != nil {
			errs = append(errs, fmt.Errorf("SLUICE_AUTH_TOKENS: entry %d: %w", i+1, err))
			continue
		}
		a.AddToken(tok, Identity{Subject: subj})
	}
	for i, e := range splitEntries(cfg.NamespaceTokens) {
		tok, nss, ok := strings.Cut(e, "=")
		tok = strings.TrimSpace(tok)
		if !ok || strings.TrimSpace(nss) == "" {
			errs = append(errs, fmt.Errorf("SLUICE_NOTEBOOKS_TOKENS: entry %d: want <token>=<namespace>[,<namespace>...] or <token>=*", i+1))
			continue
		}
		if err := checkToken(tok); err != nil {
			errs = append(errs, fmt.Errorf("SLUICE_NOTEBOOKS_TOKENS: entry %d: %w", i+1, err))
			continue
		}
		sum := sha256.Sum256([]byte(tok))
		id := Identity{Subject: "token:" + hex.EncodeToString(sum[:4]), Grants: map[string]Role{}}
		for _, ns := range strings.Split(nss, ",") {
			if ns = strings.TrimSpace(ns); ns == "*" {
				id.Grants["*"] = RoleOwner
			} else if ns != "" {
				id.Grants[ns] = RoleContributor
			}
		}
		a.AddToken(tok, id)
	}
	signer, err := NewSigner(cfg.Key)
	if err != nil {
		errs = append(errs, fmt.Errorf("SLUICE_AUTH_KEY: %w", err))
	}
	a.signer = signer
	if cfg.OIDCIssuer != "" {
		if cfg.OIDCClientID == "" {
			errs = append(errs, errors.New("SLUICE_OIDC_CLIENT_ID: required with SLUICE_OIDC_ISSUER"))
		} else {
			oc := &oidc.Config{ClientID: cfg.OIDCClientID}
			if cfg.OIDCJWKSURL != "" {
				a.oidc = oidc.NewVerifier(cfg.OIDCIssuer, oidc.NewRemoteKeySet(context.WithoutCancel(ctx), cfg.OIDCJWKSURL), oc)
			} else if p, err := oidc.NewProvider(ctx, cfg.OIDCIssuer); err != nil {
				errs = append(errs, fmt.Errorf("SLUICE_OIDC_ISSUER: discovery: %w", err))
			} else {
				a.oidc = p.Verifier(oc)
			}
		}
	}
	return a, errors.Join(errs...)
}

func splitEntries(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ";") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// checkToken requires at least 16 characters of [A-Za-z0-9._~-].
func checkToken(tok string) error {
	if len(tok) < 16 || strings.Trim(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-") != "" {
		return errors.New("token must be at least 16 characters of letters, digits and ._~-")
	}
	return nil
}

// AddToken accepts tok as id from now on (Admin is set when the subject is an admin).
func (a *Authenticator) AddToken(tok string, id Identity) {
	if a.admins[id.Subject] {
		id.Admin = true
	}
	a.mu.Lock()
	a.static[sha256.Sum256([]byte(tok))] = id
	a.mu.Unlock()
}

// GatewayOnly reports whether the service accepts only the gateway's signed identity (ModeGateway).
func (a *Authenticator) GatewayOnly() bool { return a.gatewayOnly }

// Signer returns the signer of the identity header.
func (a *Authenticator) Signer() *Signer { return a.signer }

// Presented returns the bearer token of r: the Authorization header, or, when browser is true (notebook
// pages a browser opens), the "token" query parameter or the sluice-notebook-token cookie.
func Presented(r *http.Request, browser bool) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if scheme, v, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(v)
		}
	}
	if !browser {
		return ""
	}
	if v := r.URL.Query().Get("token"); v != "" {
		return v
	}
	if c, err := r.Cookie(CookieName); err == nil && c.Value != "" {
		return c.Value
	}
	return ""
}

// Authenticate returns the identity of token: a static or namespace-scoped token, else (when configured)
// an OIDC ID token. It fails with ErrNoCredential or ErrBadCredential.
func (a *Authenticator) Authenticate(ctx context.Context, token string) (Identity, error) {
	if token == "" {
		return Identity{}, ErrNoCredential
	}
	a.mu.RLock()
	id, ok := a.static[sha256.Sum256([]byte(token))]
	a.mu.RUnlock()
	if ok {
		return id, nil
	}
	if a.oidc != nil && strings.Count(token, ".") == 2 {
		now := time.Now()
		if id, ok := a.verified.get(token, now); ok {
			return id, nil
		}
		idt, err := a.oidc.Verify(ctx, token)
		if err != nil {
			return Identity{}, fmt.Errorf("%w: %v", ErrBadCredential, err)
		}
		var claims map[string]any
		if err := idt.Claims(&claims); err != nil {
			return Identity{}, fmt.Errorf("%w: %v", ErrBadCredential, err)
		}
		subj, _ := claims[a.claim].(string)
		if subj == "" {
			subj = idt.Subject
		}
		id := Identity{Subject: subj, Admin: a.admins[subj]}
		a.verified.put(token, id, idt.Expiry, now)
		return id, nil
	}
	return Identity{}, ErrBadCredential
}

// NewToken returns 32 random bytes hex-encoded.
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// AdminTokenPath is where `sluice dev` keeps its admin token under its data dir.
func AdminTokenPath(dataDir string) string { return filepath.Join(dataDir, "auth", "admin-token") }

// FileToken returns the token stored in path, creating it (mode 0600, directory 0700) when missing, so a
// restart keeps the same token and the CLI can read it.
func FileToken(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		if tok := strings.TrimSpace(string(b)); tok != "" {
			return tok, nil
		}
	}
	tok, err := NewToken()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", err
	}
	return tok, nil
}
