package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Profile is a namespace and who may use it (Kubeflow's Profile: one owner; contributors edit, viewers read).
type Profile struct {
	Name         string    `json:"name"`
	Owner        string    `json:"owner"`
	Contributors []string  `json:"contributors,omitempty"`
	Viewers      []string  `json:"viewers,omitempty"`
	Created      time.Time `json:"created"`
}

// RoleOf returns subject's role in the profile.
func (p Profile) RoleOf(subject string) Role {
	switch {
	case subject == p.Owner:
		return RoleOwner
	case slices.Contains(p.Contributors, subject):
		return RoleContributor
	case slices.Contains(p.Viewers, subject):
		return RoleViewer
	}
	return RoleNone
}

// Errors of [Profiles].
var (
	ErrNamespaceExists   = errors.New("namespace already exists")
	ErrNamespaceNotFound = errors.New("namespace not found")
	ErrInvalidNamespace  = errors.New("invalid namespace")
)

var dns1123 = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// ValidNamespace checks that ns is a DNS-1123 label (what Kubernetes requires of a namespace).
func ValidNamespace(ns string) error {
	if len(ns) > 63 || !dns1123.MatchString(ns) {
		return fmt.Errorf("%w: %q is not a DNS-1123 label (lower-case letters, digits and '-', at most 63)", ErrInvalidNamespace, ns)
	}
	return nil
}

// ProfilesBucket is the NATS KV bucket holding profiles, one key per namespace.
const ProfilesBucket = "sluice_profiles"

// Profiles stores namespaces in a NATS KV bucket and keeps a watched copy in memory, so every process of
// a deployment sees the same members and a lookup costs a map read.
type Profiles struct {
	kv  jetstream.KeyValue
	mu  sync.RWMutex
	m   map[string]Profile
	rev map[string]uint64
}

// OpenProfiles opens (creating if needed) the profiles bucket and loads it; the copy follows changes
// until ctx ends.
func OpenProfiles(ctx context.Context, js jetstream.JetStream) (*Profiles, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: ProfilesBucket, History: 5, Storage: jetstream.FileStorage})
	if err != nil {
		return nil, fmt.Errorf("auth: profiles bucket: %w", err)
	}
	p := &Profiles{kv: kv, m: map[string]Profile{}, rev: map[string]uint64{}}
	w, err := kv.WatchAll(context.WithoutCancel(ctx))
	if err != nil {
		return nil, fmt.Errorf("auth: watch profiles: %w", err)
	}
	initial := make(chan struct{})
	go func() {
		defer w.Stop()
		once := sync.OnceFunc(func() { close(initial) })
		for {
			select {
			case <-ctx.Done():
				once()
				return
			case e, ok := <-w.Updates():
				if !ok {
					once()
					return
				}
				if e == nil {
					once()
					continue
				}
				p.apply(e)
			}
		}
	}()
	select {
	case <-initial:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return p, nil
}

func (p *Profiles) apply(e jetstream.KeyValueEntry) {
	if e.Operation() != jetstream.KeyValuePut {
		p.mu.Lock()
		delete(p.m, e.Key())
		p.mu.Unlock()
		return
	}
	var pr Profile
	if json.Unmarshal(e.Value(), &pr) == nil {
		p.set(e.Key(), pr, e.Revision())
	}
}

// set records pr at revision rev unless a newer revision is known.
func (p *Profiles) set(key string, pr Profile, rev uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if rev < p.rev[key] {
		return
	}
	p.m[key], p.rev[key] = pr, rev
}

// Get returns the profile of ns.
func (p *Profiles) Get(ns string) (Profile, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	pr, ok := p.m[ns]
	return pr, ok
}

// List returns every profile, by name.
func (p *Profiles) List() []Profile {
	p.mu.RLock()
	out := make([]Profile, 0, len(p.m))
	for _, pr := range p.m {
		out = append(out, pr)
	}
	p.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Create stores a new namespace owned by owner; ErrNamespaceExists when it is taken.
func (p *Profiles) Create(ctx context.Context, ns, owner string, now time.Time) (Profile, error) {
	if err := ValidNamespace(ns); err != nil {
		return Profile{}, err
	}
	pr := Profile{Name: ns, Owner: owner, Created: now.UTC()}
	b, _ := json.Marshal(pr)
	rev, err := p.kv.Create(ctx, ns, b)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return Profile{}, fmt.Errorf("%w: %s", ErrNamespaceExists, ns)
	}
	if err != nil {
		return Profile{}, fmt.Errorf("auth: create namespace %s: %w", ns, err)
	}
	p.set(ns, pr, rev)
	return pr, nil
}

// SetMember gives subject role in ns (RoleNone removes it); the owner changes only with RoleOwner, and the
// previous owner becomes a contributor.
func (p *Profiles) SetMember(ctx context.Context, ns, subject string, role Role) (Profile, error) {
	for attempt := 0; ; attempt++ {
		e, err := p.kv.Get(ctx, ns)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return Profile{}, fmt.Errorf("%w: %s", ErrNamespaceNotFound, ns)
		}
		if err != nil {
			return Profile{}, fmt.Errorf("auth: read namespace %s: %w", ns, err)
		}
		var pr Profile
		if err := json.Unmarshal(e.Value(), &pr); err != nil {
			return Profile{}, fmt.Errorf("auth: namespace %s: %w", ns, err)
		}
		pr.Contributors = slices.DeleteFunc(pr.Contributors, func(s string) bool { return s == subject })
		pr.Viewers = slices.DeleteFunc(pr.Viewers, func(s string) bool { return s == subject })
		switch role {
		case RoleOwner:
			if pr.Owner != subject && pr.Owner != "" {
				pr.Contributors = append(pr.Contributors, pr.Owner)
			}
			pr.Owner = subject
		case RoleContributor:
			pr.Contributors = append(pr.Contributors, subject)
		case RoleViewer:
			pr.Viewers = append(pr.Viewers, subject)
		}
		if role != RoleOwner && pr.Owner == subject {
			return Profile{}, fmt.Errorf("%w: %s is the owner of %s; make someone else the owner first", ErrInvalidNamespace, subject, ns)
		}
		b, _ := json.Marshal(pr)
		rev, err := p.kv.Update(ctx, ns, b, e.Revision())
		if err == nil {
			p.set(ns, pr, rev)
			return pr, nil
		}
		if attempt > 5 {
			return Profile{}, fmt.Errorf("auth: update namespace %s: %w", ns, err)
		}
	}
}

// Role implements [Decider]: admins own everything, services too; otherwise the better of the identity's
// own grants and its membership of the namespace's profile.
func (p *Profiles) Role(id Identity, namespace string) Role {
	if id.Admin || id.Service {
		return RoleOwner
	}
	r := roleFromGrants(id, namespace)
	if p == nil {
		return r
	}
	if pr, ok := p.Get(namespace); ok {
		if m := pr.RoleOf(id.Subject); m > r {
			r = m
		}
	}
	return r
}
