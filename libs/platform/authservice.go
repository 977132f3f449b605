package platform

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/sluice-ml/sluice/libs/auth"
)

// AuthService hosts the namespaces (profiles) API and the gateway check on d's guard:
//
//	GET  /apis/auth/v1/whoami                    the caller's identity
//	GET  /apis/auth/v1/check                     200 with the signed X-Sluice-Identity header (a reverse
//	                                             proxy's forward-auth endpoint, e.g. Caddy forward_auth)
//	GET  /apis/auth/v1/verify                    the gateway's forward-auth endpoint ([Verify]): the signed
//	                                             X-Sluice-Identity header of the request named by
//	                                             X-Forwarded-Method and X-Forwarded-Uri
//	GET  /apis/auth/v1/namespaces                the namespaces the caller is a member of (all for admins)
//	POST /apis/auth/v1/namespaces                {"name": "team-a", "owner": "alice"} → 201; the owner is
//	                                             the caller unless an admin names one; 409 when taken
//	GET  /apis/auth/v1/namespaces/{ns}           the profile (viewers and up)
//	POST /apis/auth/v1/namespaces/{ns}/members   {"user": "bob", "role": "contributor"|"viewer"|"owner"|"none"} (owner)
func AuthService(d *Deps) Service { return authService{d} }

type authService struct{ d *Deps }

func (a authService) Name() string                { return "auth" }
func (a authService) Start(context.Context) error { return nil }
func (a authService) Ready(context.Context) error { return nil }
func (a authService) Close() error                { return nil }

func (a authService) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /apis/auth/v1/whoami", func(w http.ResponseWriter, r *http.Request) {
		id, _ := auth.FromContext(r.Context())
		WriteJSON(w, http.StatusOK, id)
	})
	mux.HandleFunc("GET /apis/auth/v1/check", func(w http.ResponseWriter, r *http.Request) {
		id, ok := auth.FromContext(r.Context())
		if !ok || a.d.guard == nil {
			WriteError(w, http.StatusUnauthorized, auth.ErrNoCredential)
			return
		}
		h, err := a.d.guard.auth.Signer().Sign(id, time.Now())
		if err != nil {
			WriteError(w, http.StatusInternalServerError, fmt.Errorf("check: %w", err))
			return
		}
		w.Header().Set(auth.IdentityHeader, h)
		WriteJSON(w, http.StatusOK, id)
	})
	verify := sync.OnceValue(func() http.Handler { return Verify(a.d.guard.auth, Rules) })
	mux.HandleFunc("GET "+VerifyPath, func(w http.ResponseWriter, r *http.Request) {
		if a.d.guard == nil {
			WriteError(w, http.StatusServiceUnavailable, errors.New("verify: authentication is not enabled"))
			return
		}
		verify().ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /apis/auth/v1/namespaces", a.list)
	mux.HandleFunc("POST /apis/auth/v1/namespaces", a.create)
	mux.HandleFunc("GET /apis/auth/v1/namespaces/{ns}", a.get)
	mux.HandleFunc("POST /apis/auth/v1/namespaces/{ns}/members", a.addMember)
}

// NamespaceList is the answer of GET /apis/auth/v1/namespaces.
type NamespaceList struct {
	Namespaces []NamespaceEntry `json:"namespaces"`
}

// NamespaceEntry is one profile with the caller's role in it.
type NamespaceEntry struct {
	auth.Profile
	Role auth.Role `json:"role"`
}

func (a authService) profiles(w http.ResponseWriter) (*auth.Profiles, bool) {
	if a.d.profiles == nil {
		WriteError(w, http.StatusServiceUnavailable, errors.New("namespaces: authentication is not enabled"))
		return nil, false
	}
	return a.d.profiles, true
}

func (a authService) list(w http.ResponseWriter, r *http.Request) {
	p, ok := a.profiles(w)
	if !ok {
		return
	}
	id, _ := auth.FromContext(r.Context())
	out := NamespaceList{Namespaces: []NamespaceEntry{}}
	for _, pr := range p.List() {
		if role := p.Role(id, pr.Name); role > auth.RoleNone {
			out.Namespaces = append(out.Namespaces, NamespaceEntry{Profile: pr, Role: role})
		}
	}
	WriteJSON(w, http.StatusOK, out)
}

func (a authService) create(w http.ResponseWriter, r *http.Request) {
	p, ok := a.profiles(w)
	if !ok {
		return
	}
	var req struct {
		Name  string `json:"name"`
		Owner string `json:"owner,omitempty"`
	}
	if err := DecodeJSON(w, r, MaxBodyBytes, &req); err != nil {
		WriteDecodeError(w, "create namespace", err)
		return
	}
	id, _ := auth.FromContext(r.Context())
	owner := id.Subject
	if req.Owner != "" && req.Owner != owner {
		if !id.Admin {
			WriteError(w, http.StatusForbidden, errors.New("create namespace: owner: only an admin may name another owner"))
			return
		}
		owner = req.Owner
	}
	pr, err := p.Create(r.Context(), req.Name, owner, time.Now())
	switch {
	case errors.Is(err, auth.ErrInvalidNamespace):
		WriteError(w, http.StatusBadRequest, fmt.Errorf("create namespace: name: %w", err))
	case errors.Is(err, auth.ErrNamespaceExists):
		WriteError(w, http.StatusConflict, fmt.Errorf("create namespace: %w", err))
	case err != nil:
		WriteError(w, http.StatusServiceUnavailable, fmt.Errorf("create namespace: %w", err))
	default:
		WriteJSON(w, http.StatusCreated, NamespaceEntry{Profile: pr, Role: auth.RoleOwner})
	}
}

func (a authService) get(w http.ResponseWriter, r *http.Request) {
	p, ok := a.profiles(w)
	if !ok {
		return
	}
	ns := r.PathValue("ns")
	pr, found := p.Get(ns)
	if !found {
		WriteError(w, http.StatusNotFound, fmt.Errorf("get namespace: %w: %s", auth.ErrNamespaceNotFound, ns))
		return
	}
	id, _ := auth.FromContext(r.Context())
	WriteJSON(w, http.StatusOK, NamespaceEntry{Profile: pr, Role: p.Role(id, ns)})
}

func (a authService) addMember(w http.ResponseWriter, r *http.Request) {
	p, ok := a.profiles(w)
	if !ok {
		return
	}
	var req struct {
		User string    `json:"user"`
		Role auth.Role `json:"role"`
	}
	if err := DecodeJSON(w, r, MaxBodyBytes, &req); err != nil {
		WriteDecodeError(w, "add member", err)
		return
	}
	if req.User == "" {
		WriteError(w, http.StatusBadRequest, errors.New("add member: user: required"))
		return
	}
	pr, err := p.SetMember(r.Context(), r.PathValue("ns"), req.User, req.Role)
	switch {
	case errors.Is(err, auth.ErrNamespaceNotFound):
		WriteError(w, http.StatusNotFound, fmt.Errorf("add member: %w", err))
	case errors.Is(err, auth.ErrInvalidNamespace):
		WriteError(w, http.StatusBadRequest, fmt.Errorf("add member: %w", err))
	case err != nil:
		WriteError(w, http.StatusServiceUnavailable, fmt.Errorf("add member: %w", err))
	default:
		id, _ := auth.FromContext(r.Context())
		WriteJSON(w, http.StatusOK, NamespaceEntry{Profile: pr, Role: p.Role(id, pr.Name)})
	}
}
