package auth

import (
	"context"
	"sort"
)

// Lister is a [Decider] that can enumerate the profiles it decides over (*Profiles does).
type Lister interface {
	List() []Profile
}

// Readable says which namespaces the caller of ctx may read (hold [RoleViewer] in): All for admins,
// services, a "*" grant and callers outside a gateway (no identity and no decider in ctx, as [Allowed]),
// else the namespaces of Namespaces, sorted. It is what a list that filters in its store (SQL) rather
// than row by row passes down.
type Readable struct {
	All        bool
	Namespaces []string
}

// Has reports whether namespace ns is readable.
func (r Readable) Has(ns string) bool {
	if r.All {
		return true
	}
	i := sort.SearchStrings(r.Namespaces, ns)
	return i < len(r.Namespaces) && r.Namespaces[i] == ns
}

// ReadableNamespaces returns the namespaces the caller of ctx may read: its own grants, and the
// profiles of the decider in ctx (when it is a [Lister]) that give it a role.
func ReadableNamespaces(ctx context.Context) Readable {
	id, ok := FromContext(ctx)
	d, dok := DeciderFrom(ctx)
	if !ok && !dok {
		return Readable{All: true}
	}
	if !ok || !dok {
		return Readable{}
	}
	if id.Admin || id.Service || roleFromGrants(id, "*") >= RoleViewer {
		return Readable{All: true}
	}
	seen := map[string]bool{}
	for ns := range id.Grants {
		if ns != "*" && d.Role(id, ns) >= RoleViewer {
			seen[ns] = true
		}
	}
	if l, ok := d.(Lister); ok {
		for _, p := range l.List() {
			if d.Role(id, p.Name) >= RoleViewer {
				seen[p.Name] = true
			}
		}
	}
	out := Readable{Namespaces: make([]string, 0, len(seen))}
	for ns := range seen {
		out.Namespaces = append(out.Namespaces, ns)
	}
	sort.Strings(out.Namespaces)
	return out
}
