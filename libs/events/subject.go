package events

import (
	"fmt"
	"strings"
)

// DeadLetterPrefix starts every dead-letter subject: "sluice.deadletter.<original subject>".
const DeadLetterPrefix = "sluice.deadletter."

// SubjectFor returns the NATS subject of an event type: the type without its "io." prefix, so
// "io.sluice.pipeline.run.requested.v1" is published on "sluice.pipeline.run.requested.v1".
func SubjectFor(eventType string) string {
	return strings.TrimPrefix(eventType, "io.")
}

// TypeForSubject is the inverse of [SubjectFor].
func TypeForSubject(subject string) string { return "io." + subject }

// StreamFor returns the stream that stores events of the given type, or "" when no stream holds it.
func StreamFor(eventType string) string {
	subj := SubjectFor(eventType)
	for _, s := range Streams {
		for _, f := range s.Subjects {
			if strings.HasPrefix(subj, strings.TrimSuffix(f, ">")) {
				return s.Name
			}
		}
	}
	return ""
}

// ValidateType checks that t has the form io.sluice.<domain>.<entity>.<event>.v<major> and that a stream
// holds it.
func ValidateType(t string) error {
	parts := strings.Split(t, ".")
	if len(parts) < 5 || parts[0] != "io" || parts[1] != "sluice" {
		return fmt.Errorf("events: type %q: want io.sluice.<domain>.<entity>.<event>.v<major>", t)
	}
	for i, p := range parts {
		if err := ValidateToken(p); err != nil {
			return fmt.Errorf("events: type %q: token %d: %w", t, i, err)
		}
	}
	last := parts[len(parts)-1]
	if len(last) < 2 || last[0] != 'v' || strings.Trim(last[1:], "0123456789") != "" {
		return fmt.Errorf("events: type %q: last token %q must be v<major>", t, last)
	}
	if StreamFor(t) == "" {
		return fmt.Errorf("events: type %q: no stream holds domain %q", t, parts[2])
	}
	return nil
}

// ValidateToken reports whether s can stand as one subject token unchanged: non-empty, and only
// ASCII letters, digits, '-' and '_'. Spaces, '.', '*', '>' and control characters are refused.
func ValidateToken(s string) error {
	if s == "" {
		return fmt.Errorf("empty subject token")
	}
	for i := 0; i < len(s); i++ {
		if !tokenByte(s[i]) {
			return fmt.Errorf("subject token %q: byte %q at %d is not allowed (letters, digits, '-', '_')", s, s[i], i)
		}
	}
	return nil
}

func tokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// Token escapes a user-given name (a run, model or notebook name) into one safe subject token.
// Safe bytes are kept; '_' and every other byte become "_XX" (upper-case hex), so distinct names give
// distinct tokens and no space, '.', '*' or '>' ever reaches a subject. The empty name is "_".
func Token(name string) string {
	if name == "" {
		return "_"
	}
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if tokenByte(c) && c != '_' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "_%02X", c)
	}
	return b.String()
}
