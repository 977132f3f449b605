package tfevents

import (
	"context"
	"fmt"
	"path"
	"sort"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/sluice-ml/sluice/libs/tfevents/tfeventspb"
)

// TagInfo describes a scalar tag, as TensorBoard's /data/plugin/scalars/tags reports it.
type TagInfo struct {
	DisplayName string `json:"displayName"`
	Description string `json:"description"`
}

// Logdir follows the event files of a Source incrementally. Each directory holding event files is a run,
// named by its path relative to the root ("." for the root itself), as TensorBoard names runs. Reload
// reads what was appended since the previous Reload; the accessors return copies and are safe to call
// concurrently with Reload.
type Logdir struct {
	src Source

	reload sync.Mutex // one Reload at a time
	mu     sync.RWMutex
	files  map[string]*fileState
	runs   map[string]*runState
	bad    []Corruption
}

type fileState struct {
	run      string
	offset   int64             // bytes consumed
	reported map[int64]bool    // corruption offsets already reported
	plugins  map[string]string // tag -> plugin, from metadata seen in this file
}

type runState struct {
	tags map[string]*series
}

type series struct {
	info   TagInfo
	points []ScalarPoint
}

// NewLogdir returns a Logdir over src; call Reload to read it.
func NewLogdir(src Source) *Logdir {
	return &Logdir{src: src, files: map[string]*fileState{}, runs: map[string]*runState{}}
}

// Location is the source's root.
func (l *Logdir) Location() string { return l.src.Location() }

// RunName is the run an event file belongs to: its directory relative to the root, "." for the root.
func RunName(file string) string { return path.Dir(file) }

// Reload lists the source and reads every file's new complete records. Corrupt records are skipped and
// recorded (see Corruptions); a failure to list or read returns an error and leaves the state as it was
// for the files not yet read.
func (l *Logdir) Reload(ctx context.Context) error {
	l.reload.Lock()
	defer l.reload.Unlock()
	files, err := l.src.Files(ctx)
	if err != nil {
		return err
	}
	// TensorBoard reads a run's files in name order (names start with the creation time).
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	for _, f := range files {
		l.mu.Lock()
		st := l.files[f.Name]
		if st == nil {
			st = &fileState{run: RunName(f.Name), reported: map[int64]bool{}, plugins: map[string]string{}}
			l.files[f.Name] = st
			if l.runs[st.run] == nil {
				l.runs[st.run] = &runState{tags: map[string]*series{}}
			}
		}
		offset := st.offset
		l.mu.Unlock()
		if f.Size <= offset {
			continue
		}
		buf, err := l.src.ReadFrom(ctx, f.Name, offset)
		if err != nil {
			return err
		}
		recs, consumed, bad := ParseRecords(buf, offset)
		l.mu.Lock()
		for _, c := range bad {
			if !st.reported[c.Offset] {
				st.reported[c.Offset] = true
				c.File = f.Name
				l.bad = append(l.bad, c)
			}
		}
		for _, r := range recs {
			var ev tfeventspb.Event
			if err := proto.Unmarshal(r.Data, &ev); err != nil {
				l.bad = append(l.bad, Corruption{File: f.Name, Offset: r.Offset, Length: int64(headerLen + len(r.Data) + footerLen), Reason: fmt.Sprintf("not an Event: %v", err)})
				continue
			}
			l.addEventLocked(st, &ev)
		}
		st.offset = offset + int64(consumed)
		l.mu.Unlock()
	}
	return nil
}

func (l *Logdir) addEventLocked(st *fileState, ev *tfeventspb.Event) {
	run := l.runs[st.run]
	for _, v := range ev.GetSummary().GetValue() {
		if p := PluginOf(v); p != "" {
			st.plugins[v.GetTag()] = p
		}
		x, ok := ScalarValue(v, st.plugins[v.GetTag()])
		if !ok {
			continue
		}
		s := run.tags[v.GetTag()]
		if s == nil {
			s = &series{}
			run.tags[v.GetTag()] = s
		}
		if md := v.GetMetadata(); md != nil {
			if md.GetDisplayName() != "" {
				s.info.DisplayName = md.GetDisplayName()
			}
			if md.GetSummaryDescription() != "" {
				s.info.Description = md.GetSummaryDescription()
			}
		}
		s.points = append(s.points, ScalarPoint{WallTime: ev.GetWallTime(), Step: ev.GetStep(), Value: x})
	}
}

// Runs returns every run's name, sorted, including runs without scalars.
func (l *Logdir) Runs() []string {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]string, 0, len(l.runs))
	for r := range l.runs {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// ScalarTags returns run -> tag -> info for every run that has scalar tags.
func (l *Logdir) ScalarTags() map[string]map[string]TagInfo {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := map[string]map[string]TagInfo{}
	for name, r := range l.runs {
		if len(r.tags) == 0 {
			continue
		}
		tags := make(map[string]TagInfo, len(r.tags))
		for t, s := range r.tags {
			tags[t] = s.info
		}
		out[name] = tags
	}
	return out
}

// Scalars returns the points of run's tag in the order they were read, and whether the series exists.
func (l *Logdir) Scalars(run, tag string) ([]ScalarPoint, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	r := l.runs[run]
	if r == nil || r.tags[tag] == nil {
		return nil, false
	}
	return append([]ScalarPoint(nil), r.tags[tag].points...), true
}

// Corruptions returns every skipped stretch of bytes found so far, each reported once.
func (l *Logdir) Corruptions() []Corruption {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return append([]Corruption(nil), l.bad...)
}
