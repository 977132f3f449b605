// Package access decides who may reach a namespace's notebooks: Sluice API tokens, each allowed a list of
// namespaces or all of them, presented as "Authorization: Bearer <token>", a "token" query parameter or the
// sluice-notebook-token cookie (for browsers).
package access

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// CookieName is the cookie a browser keeps its Sluice token in once it opened a ?token= URL.
const CookieName = "sluice-notebook-token"

// Grant is one token and the namespaces it may reach ("*" = all).
type Grant struct {
	Token      string
	Namespaces []string
}

// Tokens is the set of grants.
type Tokens struct{ grants []Grant }

// ParseTokens reads "tokenA=ns1,ns2;tokenB=*" (the SLUICE_NOTEBOOKS_TOKENS format). Tokens must be at least
// 16 characters of [A-Za-z0-9._~-]; namespaces are DNS-1123 labels or "*".
func ParseTokens(s string) (Tokens, error) {
	var t Tokens
	var errs []error
	for i, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		tok, nss, ok := strings.Cut(part, "=")
		tok = strings.TrimSpace(tok)
		if !ok || tok == "" || strings.TrimSpace(nss) == "" {
			errs = append(errs, fmt.Errorf("entry %d: want <token>=<namespace>[,<namespace>...] or <token>=*", i+1))
			continue
		}
		if len(tok) < 16 || strings.Trim(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-") != "" {
			errs = append(errs, fmt.Errorf("entry %d: token must be at least 16 characters of letters, digits and ._~-", i+1))
			continue
		}
		g := Grant{Token: tok}
		for _, ns := range strings.Split(nss, ",") {
			if ns = strings.TrimSpace(ns); ns != "" {
				g.Namespaces = append(g.Namespaces, ns)
			}
		}
		t.grants = append(t.grants, g)
	}
	if len(t.grants) == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("no tokens given"))
	}
	return t, errors.Join(errs...)
}

// Single returns a set with one token allowed every namespace.
func Single(token string) Tokens {
	return Tokens{grants: []Grant{{Token: token, Namespaces: []string{"*"}}}}
}

// Presented returns the token a request carries (header, then query, then cookie) and where it came from
// ("header", "query", "cookie"; "" when none).
func Presented(r *http.Request) (token, from string) {
	if h := r.Header.Get("Authorization"); h != "" {
		if scheme, v, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(v), "header"
		}
	}
	if v := r.URL.Query().Get("token"); v != "" {
		return v, "query"
	}
	if c, err := r.Cookie(CookieName); err == nil && c.Value != "" {
		return c.Value, "cookie"
	}
	return "", ""
}

// Check returns http.StatusOK when token may reach namespace, 401 when the token is missing or unknown and
// 403 when it is known but not granted namespace.
func (t Tokens) Check(token, namespace string) int {
	if token == "" {
		return http.StatusUnauthorized
	}
	var found *Grant
	for i := range t.grants {
		// Compare against every grant in constant time per grant.
		if subtle.ConstantTimeCompare([]byte(t.grants[i].Token), []byte(token)) == 1 {
			found = &t.grants[i]
		}
	}
	if found == nil {
		return http.StatusUnauthorized
	}
	if slices.Contains(found.Namespaces, "*") || slices.Contains(found.Namespaces, namespace) {
		return http.StatusOK
	}
	return http.StatusForbidden
}
