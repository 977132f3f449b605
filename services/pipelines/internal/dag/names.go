package dag

import (
	"regexp"
	"strings"
)

// MaxNameLength bounds task, component and pipeline names (they become NATS
// subject tokens, S3 key segments and Temporal workflow ID parts).
const MaxNameLength = 128

var (
	safeNameRe = regexp.MustCompile(`^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$`)
	ioNameRe   = regexp.MustCompile(`^[A-Za-z0-9_][-A-Za-z0-9_.]*$`)
)

// SafeName reports whether s may be used as a pipeline, task or component
// name: lowercase letters, digits, '-' and '_', starting and ending with a
// letter or digit, at most MaxNameLength bytes (KFP names such as
// "comp-producer", "for-loop-2" and "exit-handler-1" pass). Such a name is a
// valid NATS subject token and S3 key segment.
func SafeName(s string) bool {
	return len(s) <= MaxNameLength && safeNameRe.MatchString(s)
}

// SafeIOName reports whether s may name an input or output (parameter or
// artifact): letters, digits, '_', '-', '.', not starting with '-' or '.',
// no "..", no '/', at most MaxNameLength bytes. Output names become S3 key
// segments and local file names, so path traversal is impossible.
func SafeIOName(s string) bool {
	return len(s) <= MaxNameLength && ioNameRe.MatchString(s) && !strings.Contains(s, "..")
}

// Slug maps a display name (e.g. KFP pipelineInfo.name "Parallel pipeline")
// to a SafeName ("parallel-pipeline"): lowercased, every run of other
// characters replaced by one '-', trimmed, cut to MaxNameLength. It returns
// "" when nothing usable remains.
func Slug(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_':
			b.WriteRune(r)
			dash = false
		default:
			if !dash && b.Len() > 0 {
				b.WriteByte('-')
				dash = true
			}
		}
	}
	out := strings.Trim(b.String(), "-_")
	if len(out) > MaxNameLength {
		out = strings.Trim(out[:MaxNameLength], "-_")
	}
	return out
}
