package devstack

import (
	"context"
	"log/slog"
	"sync/atomic"

	tlog "go.temporal.io/server/common/log"
	"go.temporal.io/server/common/log/tag"
)

// temporalLogger adapts *slog.Logger to the Temporal server's log.Logger,
// dropping records below min (Temporal is chatty at info level).
type temporalLogger struct {
	log *slog.Logger
	min slog.Level
	// stopping, once set, turns every record into a debug record: while the
	// server stops (and afterwards, from connections Temporal does not close)
	// it reports each cancelled poll, dial and persistence call as a warning
	// or error, which is expected then.
	stopping *atomic.Bool
	// with holds the tags of With, turned into attributes only when a record is emitted: Temporal calls
	// With for every task and request it handles (1.4% of the process's CPU in a burst of 1,000 runs when
	// it formatted them eagerly), and nearly every such logger logs nothing at the warn level.
	with []tag.Tag
}

var (
	_ tlog.Logger      = temporalLogger{}
	_ tlog.WithLogger  = temporalLogger{}
	_ tlog.SLogWrapper = temporalLogger{}
)

func newTemporalLogger(log *slog.Logger, min slog.Level) temporalLogger {
	return temporalLogger{log: log, min: min, stopping: new(atomic.Bool)}
}

func (l temporalLogger) emit(level slog.Level, msg string, tags []tag.Tag) {
	ctx := context.Background()
	if l.stopping.Load() {
		level = slog.LevelDebug
	} else if level < l.min {
		return
	}
	if !l.log.Enabled(ctx, level) {
		return
	}
	if len(l.with) > 0 {
		tags = append(append(make([]tag.Tag, 0, len(l.with)+len(tags)), l.with...), tags...)
	}
	l.log.LogAttrs(ctx, level, msg, tagAttrs(tags)...)
}

func tagAttrs(tags []tag.Tag) []slog.Attr {
	attrs := make([]slog.Attr, 0, len(tags))
	for _, t := range tags {
		attrs = append(attrs, slog.Any(t.Key(), t.Value()))
	}
	return attrs
}

func (l temporalLogger) Debug(msg string, tags ...tag.Tag) { l.emit(slog.LevelDebug, msg, tags) }
func (l temporalLogger) Info(msg string, tags ...tag.Tag)  { l.emit(slog.LevelInfo, msg, tags) }
func (l temporalLogger) Warn(msg string, tags ...tag.Tag)  { l.emit(slog.LevelWarn, msg, tags) }
func (l temporalLogger) Error(msg string, tags ...tag.Tag) { l.emit(slog.LevelError, msg, tags) }

// DPanic logs at error level; it panics only in Temporal's development mode.
func (l temporalLogger) DPanic(msg string, tags ...tag.Tag) { l.emit(slog.LevelError, msg, tags) }

// Panic logs at error level, then panics with msg.
func (l temporalLogger) Panic(msg string, tags ...tag.Tag) {
	l.emit(slog.LevelError, msg, tags)
	panic(msg)
}

// Fatal logs at error level, then panics: an embedded server must not exit
// the host process, but the caller relies on Fatal not returning.
func (l temporalLogger) Fatal(msg string, tags ...tag.Tag) {
	l.emit(slog.LevelError, msg, tags)
	panic(msg)
}

// With returns a logger that adds tags to every record.
func (l temporalLogger) With(tags ...tag.Tag) tlog.Logger {
	if len(tags) == 0 {
		return l
	}
	// A new slice: loggers derived from the same parent must not share an appended tail.
	l.with = append(append(make([]tag.Tag, 0, len(l.with)+len(tags)), l.with...), tags...)
	return l
}

// SLog lets Temporal components that want a *slog.Logger use ours directly
// (see tlog.NewSlogLogger), with the same minimum level.
func (l temporalLogger) SLog() *slog.Logger {
	h := l.log.Handler()
	if len(l.with) > 0 {
		h = h.WithAttrs(tagAttrs(l.with))
	}
	return slog.New(minLevelHandler{Handler: h, min: l.min, stopping: l.stopping})
}

// minLevelHandler drops records below min, and all records once stopping
// (optional) is set.
type minLevelHandler struct {
	slog.Handler
	min      slog.Level
	stopping *atomic.Bool
}

func (h minLevelHandler) Enabled(ctx context.Context, level slog.Level) bool {
	if level < h.min || (h.stopping != nil && h.stopping.Load()) {
		return false
	}
	return h.Handler.Enabled(ctx, level)
}

func (h minLevelHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevelHandler{Handler: h.Handler.WithAttrs(attrs), min: h.min, stopping: h.stopping}
}

func (h minLevelHandler) WithGroup(name string) slog.Handler {
	return minLevelHandler{Handler: h.Handler.WithGroup(name), min: h.min, stopping: h.stopping}
}
