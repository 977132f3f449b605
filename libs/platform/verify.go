package platform

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/sluice-ml/sluice/libs/auth"
)

// VerifyPath is the gateway's forward-auth endpoint (see [Verify]); every service hosts it.
const VerifyPath = "/apis/auth/v1/verify"

// Verify is the forward-auth endpoint of a gateway in front of the services (Caddy forward_auth, Traefik
// ForwardAuth, nginx auth_request): it authenticates the request the proxy is about to forward — its
// method and request URI in X-Forwarded-Method and X-Forwarded-Uri, the client's headers as they came —
// and answers 200 with the signed [auth.IdentityHeader] the proxy copies onto that request, or 401 with
// the reason (which the proxy returns to the client). Bearer tokens count (static, namespace-scoped or
// OIDC ID tokens, as [auth.Authenticator] decides); a browser's ?token= or cookie counts only for the
// browser routes of rules, as it does at the guard. Public routes (/healthz, /readyz) answer 200 without
// an identity. An identity header the client sent is ignored: the proxy removes it before the request
// goes on. Authorization (roles per namespace) stays with the guard of the service that serves the route.
func Verify(a *auth.Authenticator, rules []Rule) http.Handler {
	match := sync.OnceValue(func() func(*http.Request) (Rule, bool) { return ruleMatcher(rules) })
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method, uri := r.Header.Get("X-Forwarded-Method"), r.Header.Get("X-Forwarded-Uri")
		if method == "" {
			method = http.MethodGet
		}
		if uri == "" {
			uri = "/"
		}
		u, err := url.ParseRequestURI(uri)
		if err != nil {
			WriteError(w, http.StatusBadRequest, fmt.Errorf("verify: X-Forwarded-Uri %q: %v", uri, err))
			return
		}
		orig := &http.Request{Method: method, URL: u, Header: r.Header, Host: r.Header.Get("X-Forwarded-Host")}
		rule, _ := match()(orig)
		if rule.Pattern != "" && rule.Scope == ScopePublic {
			w.WriteHeader(http.StatusOK)
			return
		}
		id, err := a.Authenticate(r.Context(), auth.Presented(orig, rule.Browser))
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
			WriteError(w, http.StatusUnauthorized, err)
			return
		}
		h, err := a.Signer().Sign(id, time.Now())
		if err != nil {
			WriteError(w, http.StatusInternalServerError, fmt.Errorf("verify: sign identity: %w", err))
			return
		}
		w.Header().Set(auth.IdentityHeader, h)
		WriteJSON(w, http.StatusOK, id)
	})
}

// ruleMatcher returns the rule a request's route matches, routing as the services' muxes do.
func ruleMatcher(rules []Rule) func(*http.Request) (Rule, bool) {
	routes := http.NewServeMux()
	byPattern := map[string]Rule{}
	nop := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	for _, r := range rules {
		if err := register(routes, r.Pattern, nop); err != nil {
			continue
		}
		byPattern[r.Pattern] = r
	}
	return func(r *http.Request) (Rule, bool) {
		_, pattern := routes.Handler(r)
		rule, ok := byPattern[pattern]
		return rule, ok
	}
}

// register is m.Handle, with a pattern that conflicts with one already there as an error.
func register(m *http.ServeMux, pattern string, h http.Handler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = errors.New(fmt.Sprint(p))
		}
	}()
	m.Handle(pattern, h)
	return nil
}
