package auth

import (
	"testing"
	"time"
)

// TestVerifiedCache: a verified credential is remembered until its own expiry or VerifiedTTL,
// whichever comes first; an expired one is never stored; the cache is bounded.
func TestVerifiedCache(t *testing.T) {
	var c verifiedCache
	now := time.Now()
	c.put("tok", Identity{Subject: "alice"}, now.Add(time.Hour), now)
	if id, ok := c.get("tok", now.Add(VerifiedTTL-time.Second)); !ok || id.Subject != "alice" {
		t.Fatalf("within the TTL: %+v %v", id, ok)
	}
	if _, ok := c.get("tok", now.Add(VerifiedTTL)); ok {
		t.Fatal("trusted past VerifiedTTL")
	}
	if _, ok := c.get("other", now); ok {
		t.Fatal("an unseen credential was found")
	}
	c.put("short", Identity{Subject: "bob"}, now.Add(10*time.Second), now)
	if _, ok := c.get("short", now.Add(10*time.Second)); ok {
		t.Fatal("trusted past the credential's expiry")
	}
	c.put("expired", Identity{Subject: "eve"}, now.Add(-time.Second), now)
	if _, ok := c.get("expired", now); ok {
		t.Fatal("an expired credential was stored")
	}
	for i := range verifiedMax + 10 {
		c.put(string(rune(i))+"-tok", Identity{Subject: "x"}, now.Add(time.Hour), now)
	}
	if len(c.m) > verifiedMax {
		t.Fatalf("cache holds %d entries, max %d", len(c.m), verifiedMax)
	}
}

// TestSignerRemembersVerifiedHeaders: Verify of a header seen before answers from the cache, and a
// header with a bad signature is still refused.
func TestSignerRemembersVerifiedHeaders(t *testing.T) {
	s, _ := NewSigner("0123456789abcdef0123456789abcdef")
	h, err := s.Sign(Identity{Subject: "alice"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(h); err != nil {
		t.Fatal(err)
	}
	if id, ok := s.verified.get(h, time.Now()); !ok || id.Subject != "alice" {
		t.Fatalf("verified header not remembered: %+v %v", id, ok)
	}
	if id, err := s.Verify(h); err != nil || id.Subject != "alice" {
		t.Fatalf("second verify: %+v %v", id, err)
	}
	if _, err := s.Verify(h[:len(h)-2] + "xx"); err == nil {
		t.Fatal("a tampered header verified")
	}
}

// BenchmarkVerifyIdentityHeader: verifying the same header again (cache) vs a fresh signature check.
func BenchmarkVerifyIdentityHeader(b *testing.B) {
	s, _ := NewSigner("0123456789abcdef0123456789abcdef")
	h, _ := s.Sign(Identity{Subject: "alice"}, time.Now())
	b.Run("cached", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Verify(h); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("uncached", func(b *testing.B) {
		for b.Loop() {
			s.verified = verifiedCache{}
			if _, err := s.Verify(h); err != nil {
				b.Fatal(err)
			}
		}
	})
}
