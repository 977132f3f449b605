package auth

import (
	"context"
	"testing"
)

type listDecider []Profile

func (d listDecider) Role(id Identity, ns string) Role {
	r := roleFromGrants(id, ns)
	for _, p := range d {
		if p.Name == ns && p.RoleOf(id.Subject) > r {
			r = p.RoleOf(id.Subject)
		}
	}
	return r
}

func (d listDecider) List() []Profile { return d }

func TestReadableNamespaces(t *testing.T) {
	d := listDecider{{Name: "a", Owner: "olivia", Viewers: []string{"vera"}}, {Name: "b", Owner: "mallory", Contributors: []string{"vera"}}, {Name: "c", Owner: "x"}}
	in := func(id Identity) context.Context { return WithIdentity(WithDecider(context.Background(), d), id) }
	for name, tc := range map[string]struct {
		ctx  context.Context
		all  bool
		want []string
	}{
		"outside a gateway everything":     {ctx: context.Background(), all: true},
		"an identity without decider none": {ctx: WithIdentity(context.Background(), Identity{Subject: "vera"})},
		"admin everything":                 {ctx: in(Identity{Subject: AdminSubject, Admin: true}), all: true},
		"service everything":               {ctx: in(Identity{Subject: ServiceSubject("x"), Service: true}), all: true},
		"a * grant everything":             {ctx: in(Identity{Subject: "tok", Grants: map[string]Role{"*": RoleContributor}}), all: true},
		"member of a and b":                {ctx: in(Identity{Subject: "vera"}), want: []string{"a", "b"}},
		"grant plus membership":            {ctx: in(Identity{Subject: "olivia", Grants: map[string]Role{"z": RoleViewer}}), want: []string{"a", "z"}},
		"stranger nothing":                 {ctx: in(Identity{Subject: "nobody"}), want: []string{}},
	} {
		t.Run(name, func(t *testing.T) {
			got := ReadableNamespaces(tc.ctx)
			if got.All != tc.all {
				t.Fatalf("All = %v, want %v", got.All, tc.all)
			}
			if !tc.all && len(got.Namespaces) != len(tc.want) {
				t.Fatalf("Namespaces = %v, want %v", got.Namespaces, tc.want)
			}
			for i, ns := range tc.want {
				if got.Namespaces[i] != ns || !got.Has(ns) {
					t.Fatalf("Namespaces = %v, want %v", got.Namespaces, tc.want)
				}
			}
			if !tc.all && got.Has("c") {
				t.Fatal("c is not readable")
			}
		})
	}
}
