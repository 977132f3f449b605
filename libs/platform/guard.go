package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sluice-ml/sluice/libs/auth"
)

// Guard is the gateway's authentication and the route table's authorization, in front of every route of
// a process: a request is authenticated by the signed identity header of a gateway in front
// ([auth.IdentityHeader]) or by its bearer token, then allowed only when its identity holds the role the
// route's [Rule] asks in the route's namespace. Refusals: 401 without a valid credential, 403 with one
// that is not granted the namespace, decided before the handler runs, so the answer does not depend on
// whether the resource exists.
type Guard struct {
	auth    *auth.Authenticator
	decider auth.Decider
	rules   map[string]Rule
	log     *slog.Logger
}

// NewGuard builds a guard from an authenticator and a decider (usually *auth.Profiles) over rules
// (usually [Rules]).
func NewGuard(a *auth.Authenticator, d auth.Decider, rules []Rule, log *slog.Logger) *Guard {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &Guard{auth: a, decider: d, rules: map[string]Rule{}, log: log}
	for _, r := range rules {
		g.rules[r.Pattern] = r
	}
	return g
}

// Authenticator returns the guard's authenticator.
func (g *Guard) Authenticator() *auth.Authenticator { return g.auth }

// Decider returns the guard's decider.
func (g *Guard) Decider() auth.Decider { return g.decider }

// Rule returns the entry of a route pattern.
func (g *Guard) Rule(pattern string) (Rule, bool) {
	r, ok := g.rules[pattern]
	return r, ok
}

// Credentials are what a caller presents: the gateway's signed identity header ([auth.IdentityHeader])
// and a bearer token. Over HTTP they come from the request's headers (and, on browser routes, the token
// query parameter or cookie); over gRPC from the call's metadata ([GRPCCredentials]).
type Credentials struct {
	IdentityHeader string
	Bearer         string
}

// identify returns the caller's identity: the verified identity header, else the bearer token (refused
// when the service accepts only the gateway's signed identity, SLUICE_AUTH_MODE=gateway).
func (g *Guard) identify(ctx context.Context, c Credentials) (auth.Identity, error) {
	if c.IdentityHeader != "" {
		id, err := g.auth.Signer().Verify(c.IdentityHeader)
		if err != nil {
			return auth.Identity{}, fmt.Errorf("%w: %v", auth.ErrBadCredential, err)
		}
		return id, nil
	}
	if g.auth.GatewayOnly() {
		if c.Bearer == "" {
			return auth.Identity{}, auth.ErrNoCredential
		}
		return auth.Identity{}, ErrGatewayOnly
	}
	return g.auth.Authenticate(ctx, c.Bearer)
}

// ErrGatewayOnly refuses a bearer token presented to a service that accepts only the gateway's signed
// identity (SLUICE_AUTH_MODE=gateway).
var ErrGatewayOnly = fmt.Errorf("%w: this service accepts only the gateway's signed identity (SLUICE_AUTH_MODE=gateway): send the request through the gateway", auth.ErrBadCredential)

// Decision is what the guard decided for one request.
type Decision struct {
	Code     int // 0 = allowed; else 401, 403 or 404
	Err      error
	Identity auth.Identity
	Rule     Rule
}

// Decide authorises r for the route pattern the mux matched ("" when none matched).
func (g *Guard) Decide(r *http.Request, pattern string) Decision {
	return g.decide(r.Context(), pattern, func(browser bool) Credentials {
		return Credentials{IdentityHeader: r.Header.Get(auth.IdentityHeader), Bearer: auth.Presented(r, browser)}
	}, func(name string) string { return PathValues(pattern, r.URL)[name] })
}

// DecideCall authorises a call that does not come through the mux (a gRPC call) exactly as a request
// of the REST route pattern that does the same, with the credentials c and, for a [ScopePath] route,
// the wildcard values pathValues: the same rule, identity and answer (Code 401, 403 or 404 as HTTP).
// Unlike [Guard.Decide], an empty or unknown pattern is refused (403): a call always names its method.
func (g *Guard) DecideCall(ctx context.Context, pattern string, c Credentials, pathValues map[string]string) Decision {
	if pattern == "" {
		pattern = "(no route)"
	}
	return g.decide(ctx, pattern, func(bool) Credentials { return c }, func(name string) string { return pathValues[name] })
}

// decide is Decide over the credentials creds returns (browser: the rule accepts browser credentials)
// and the path wildcard values pathValue returns.
func (g *Guard) decide(ctx context.Context, pattern string, creds func(browser bool) Credentials, pathValue func(string) string) Decision {
	rule, known := g.rules[pattern]
	if known && rule.Scope == ScopePublic {
		return Decision{Rule: rule}
	}
	if pattern == "" {
		// No route matched: the mux answers 404 (or 405) whoever asks. A credential would change nothing
		// (no handler runs), and a sign-in redirect or 401 there would make every mistyped URL look like a
		// page behind a login.
		return Decision{}
	}
	id, err := g.identify(ctx, creds(rule.Browser))
	if err != nil {
		return Decision{Code: http.StatusUnauthorized, Err: err, Rule: rule}
	}
	d := Decision{Identity: id, Rule: rule}
	if !known {
		g.log.Error("route has no authorization rule; refused", "route", pattern)
		d.Code, d.Err = http.StatusForbidden, fmt.Errorf("route %q has no authorization rule", pattern)
		return d
	}
	switch rule.Scope {
	case ScopeAuthenticated, ScopeResource: // the handler authorises per resource (see ScopeResource)
		return d
	case ScopeAdmin:
		if id.Admin || id.Service {
			return d
		}
		d.Code, d.Err = http.StatusForbidden, fmt.Errorf("%s: %q is not an admin", rule.Verb, id.Subject)
		return d
	}
	ns := rule.Namespace
	if rule.Scope == ScopePath {
		ns = pathValue(rule.Namespace)
		if err := auth.ValidNamespace(ns); err != nil {
			d.Code, d.Err = http.StatusNotFound, fmt.Errorf("%s: %w", rule.Verb, err)
			return d
		}
	}
	if g.decider.Role(id, ns) < rule.Role {
		d.Code, d.Err = http.StatusForbidden, fmt.Errorf("%s: %q may not %s in namespace %q (needs %s)", rule.Verb, id.Subject, rule.Verb, ns, rule.Role)
	}
	return d
}

// serve authorises r for the route pattern the mux matched, then serves it through mux.
func (g *Guard) serve(mux *http.ServeMux, pattern string, w http.ResponseWriter, r *http.Request) {
	d := g.Decide(r, pattern)
	switch d.Code {
	case 0:
	case http.StatusUnauthorized:
		if d.Rule.LoginPage != "" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			http.Redirect(w, r, d.Rule.LoginPage+"?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
		WriteError(w, d.Code, d.Err)
		return
	default:
		WriteError(w, d.Code, d.Err)
		return
	}
	r.Header.Del(auth.IdentityHeader)
	if d.Rule.Scope != ScopePublic {
		r = r.WithContext(auth.WithIdentity(auth.WithDecider(r.Context(), g.decider), d.Identity))
	}
	mux.ServeHTTP(w, r)
}

// PathValues returns the wildcard values of pattern (a ServeMux pattern, "[METHOD ]/path/{name}/...")
// in u's path, unescaped segment by segment as ServeMux does. Missing wildcards are absent.
func PathValues(pattern string, u *url.URL) map[string]string {
	if _, p, ok := strings.Cut(pattern, " "); ok {
		pattern = p
	}
	out := map[string]string{}
	pseg := strings.Split(strings.TrimPrefix(pattern, "/"), "/")
	useg := strings.Split(strings.TrimPrefix(u.EscapedPath(), "/"), "/")
	for i, ps := range pseg {
		if !strings.HasPrefix(ps, "{") || !strings.HasSuffix(ps, "}") || i >= len(useg) {
			continue
		}
		name := strings.TrimSuffix(strings.TrimPrefix(ps, "{"), "}")
		if rest, ok := strings.CutSuffix(name, "..."); ok {
			v, err := url.PathUnescape(strings.Join(useg[i:], "/"))
			if err == nil {
				out[rest] = v
			}
			continue
		}
		if v, err := url.PathUnescape(useg[i]); err == nil {
			out[name] = v
		}
	}
	return out
}

// ServiceTransport adds the signed identity of a Sluice service to every request, so one service can
// call another's API through the gateway or directly (e.g. pipelines creating training jobs).
type ServiceTransport struct {
	Base   http.RoundTripper
	Signer *auth.Signer
	// Service names the calling service ("pipelines").
	Service string
}

// RoundTrip implements http.RoundTripper.
func (t *ServiceTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.Signer == nil {
		return nil, errors.New("platform: service transport without a signer")
	}
	h, err := t.Signer.Sign(auth.Identity{Subject: auth.ServiceSubject(t.Service), Service: true}, time.Now())
	if err != nil {
		return nil, err
	}
	r = r.Clone(r.Context())
	r.Header.Set(auth.IdentityHeader, h)
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(r)
}

// EnableAuth builds the gateway of d's process from cfg (see [auth.ConfigFromEnv]): the authenticator,
// the namespace profiles in NATS KV, and the guard over [Rules]. Handlers built with [HandlerConfig.Guard]
// = d.Guard() then authenticate every request, and d.ServiceClient signs service calls.
func (d *Deps) EnableAuth(ctx context.Context, cfg auth.Config) error {
	a, err := auth.NewAuthenticator(ctx, cfg)
	if err != nil {
		return err
	}
	profiles, err := auth.OpenProfiles(ctx, d.Bus.JetStream())
	if err != nil {
		return err
	}
	d.guard = NewGuard(a, profiles, Rules, d.Log)
	d.profiles = profiles
	return nil
}

// Guard returns the guard EnableAuth built (nil before).
func (d *Deps) Guard() *Guard { return d.guard }

// Profiles returns the namespace profiles EnableAuth opened (nil before).
func (d *Deps) Profiles() *auth.Profiles { return d.profiles }

// ServiceClient returns an HTTP client whose requests carry the signed identity of service (see
// [ServiceTransport]); without EnableAuth it is a plain client.
func (d *Deps) ServiceClient(service string) *http.Client {
	if d.guard == nil {
		return &http.Client{}
	}
	return &http.Client{Transport: &ServiceTransport{Signer: d.guard.auth.Signer(), Service: service}}
}
