// Package auth is who may do what in Sluice: identities authenticated from bearer tokens (static tokens,
// namespace-scoped tokens, or OIDC ID tokens verified against an issuer's JWKS), the signed identity header
// a gateway hands to services, and namespaces as Kubeflow profiles (an owner, contributors who edit and
// viewers who read).
//
// The route table that maps each API route to the role it needs lives in libs/platform ([platform.Rules]);
// this package decides a role for an identity in a namespace.
package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// Role is what an identity may do in a namespace. Roles are ordered: each includes the ones below it.
type Role int

const (
	// RoleNone grants nothing.
	RoleNone Role = iota
	// RoleViewer may list and get (Kubeflow's "view" cluster role).
	RoleViewer
	// RoleContributor may also create, change and delete resources (Kubeflow's "edit").
	RoleContributor
	// RoleOwner may also manage the namespace's members (Kubeflow's profile owner, "admin").
	RoleOwner
)

var roleNames = []string{"none", "viewer", "contributor", "owner"}

// String returns "none", "viewer", "contributor" or "owner".
func (r Role) String() string {
	if r < 0 || int(r) >= len(roleNames) {
		return fmt.Sprintf("Role(%d)", int(r))
	}
	return roleNames[r]
}

// ParseRole reads a role name; "edit" and "view" (Kubeflow's names) are accepted too.
func ParseRole(s string) (Role, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "viewer", "view":
		return RoleViewer, nil
	case "contributor", "edit":
		return RoleContributor, nil
	case "owner", "admin":
		return RoleOwner, nil
	}
	return RoleNone, fmt.Errorf("role %q: want viewer, contributor or owner", s)
}

// MarshalText writes the role's name.
func (r Role) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText reads a role's name.
func (r *Role) UnmarshalText(b []byte) error {
	if string(b) == "none" {
		*r = RoleNone
		return nil
	}
	v, err := ParseRole(string(b))
	*r = v
	return err
}

// Identity is an authenticated caller.
type Identity struct {
	// Subject names the caller: a user ("alice@example.com"), "system:admin" for the dev admin token,
	// "system:service:<name>" for a Sluice service, or "token:<hash prefix>" for a namespace-scoped token.
	Subject string `json:"sub"`
	// Admin may do anything in every namespace.
	Admin bool `json:"admin,omitempty"`
	// Service marks a Sluice service itself; it may publish internal event types.
	Service bool `json:"service,omitempty"`
	// Grants are roles given by the credential itself, per namespace ("*" = every namespace); used by
	// namespace-scoped tokens (SLUICE_NOTEBOOKS_TOKENS).
	Grants map[string]Role `json:"grants,omitempty"`
}

// AdminSubject is the subject of the admin token `sluice dev` creates.
const AdminSubject = "system:admin"

// ServiceSubject returns the subject of a Sluice service's own identity.
func ServiceSubject(name string) string { return "system:service:" + name }

// Kind is the identity's CloudEvents authcontext authtype: "service_account" for services, "user" otherwise.
func (id Identity) Kind() string {
	if id.Service {
		return "service_account"
	}
	return "user"
}

func (id Identity) String() string {
	b, _ := json.Marshal(id)
	return string(b)
}

type ctxKey int

const (
	identityKey ctxKey = iota
	deciderKey
	publisherKey
)

// WithIdentity returns ctx carrying id.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey, id)
}

// FromContext returns the identity of the request ctx belongs to, if the gateway authenticated one.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey).(Identity)
	return id, ok
}

// WithPublisher returns ctx carrying id as the publisher of the request event a consumer is handling
// (events.WithPublisher reads it from the event's authcontext). It is not an authenticated caller of
// ctx: [FromContext] does not return it and [Allowed] ignores it (the event gateway authorised the
// publisher in the event's namespace when it accepted the event). It only names who submitted what the
// handler creates (workflow.Owner: the SluiceOwner search attribute).
func WithPublisher(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, publisherKey, id)
}

// PublisherFrom returns the publisher [WithPublisher] put in ctx.
func PublisherFrom(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(publisherKey).(Identity)
	return id, ok
}

// Decider tells the role of an identity in a namespace.
type Decider interface {
	Role(id Identity, namespace string) Role
}

// WithDecider returns ctx carrying d, so handlers can authorise what the route table cannot see (the
// namespace of each event of a publish or tail).
func WithDecider(ctx context.Context, d Decider) context.Context {
	return context.WithValue(ctx, deciderKey, d)
}

// DeciderFrom returns the decider the gateway put in ctx.
func DeciderFrom(ctx context.Context) (Decider, bool) {
	d, ok := ctx.Value(deciderKey).(Decider)
	return d, ok
}

// Allowed reports whether the caller of ctx has at least role in namespace. Without a gateway (no identity
// and no decider in ctx: a handler mounted on a bare mux, as in a service's unit tests) it returns true:
// authentication is the gateway's job and every process that listens uses one ([platform.NewGuard]).
func Allowed(ctx context.Context, namespace string, role Role) bool {
	id, ok := FromContext(ctx)
	d, dok := DeciderFrom(ctx)
	if !ok && !dok {
		return true
	}
	if !ok || !dok {
		return false
	}
	return d.Role(id, namespace) >= role
}

// roleFromGrants is the role id's own grants give in namespace.
func roleFromGrants(id Identity, namespace string) Role {
	r := id.Grants[namespace]
	if g := id.Grants["*"]; g > r {
		r = g
	}
	return r
}
