package devstack

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/server/common/log/tag"
)

// With's tags are applied only when a record is emitted, but must still reach every record of that
// logger (and of SLog), and never a sibling's.
func TestTemporalLoggerWithTags(t *testing.T) {
	var buf bytes.Buffer
	l := newTemporalLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), slog.LevelWarn)
	parent := l.With(tag.NewStringTag("shard", "1")).(temporalLogger)
	a := parent.With(tag.NewStringTag("wf-id", "a")).(temporalLogger)
	b := parent.With(tag.NewStringTag("wf-id", "b")).(temporalLogger)

	a.Info("dropped below warn")
	require.Empty(t, buf.String())

	a.Warn("from a", tag.NewStringTag("extra", "x"))
	b.Error("from b")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 2)
	require.Contains(t, lines[0], "shard=1 wf-id=a extra=x")
	require.Contains(t, lines[1], "shard=1 wf-id=b")
	require.NotContains(t, lines[1], "wf-id=a")

	buf.Reset()
	a.SLog().Warn("slog", "k", "v")
	require.Contains(t, buf.String(), "shard=1 wf-id=a k=v")
	buf.Reset()
	a.SLog().Info("dropped")
	require.Empty(t, buf.String())
}
