package tfevents

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/sluice-ml/sluice/libs/tfevents/tfeventspb"
)

// FileVersion is the file_version of the first record of every file TensorFlow 1.x and 2.x write.
const FileVersion = "brain.Event:2"

// ScalarsPlugin is the plugin name TensorBoard's scalar dashboard reads.
const ScalarsPlugin = "scalars"

// FilePrefix starts the name of every event file TensorBoard loads.
const FilePrefix = "events.out.tfevents."

// FileName returns a conventional event-file name, "events.out.tfevents.<unix seconds>.<host>.<pid>.<n>":
// the prefix TensorBoard looks for, then what tf.summary.create_file_writer appends so that concurrent
// writers in one directory never collide.
func FileName(t time.Time, host string, pid, n int) string {
	return fmt.Sprintf("%s%d.%s.%d.%d.v2", FilePrefix, t.Unix(), host, pid, n)
}

// Writer writes events as TFRecords. It is safe for concurrent use. Call Flush (or Close) to push buffered
// records to the underlying writer; readers see complete records only.
type Writer struct {
	mu      sync.Mutex
	w       *bufio.Writer
	c       io.Closer
	now     func() time.Time
	tagged  map[string]bool // tags whose metadata has been written in this file
	scratch []byte
	err     error
}

// WriterOption configures NewWriter.
type WriterOption func(*Writer)

// WithClock sets the source of wall times for events written without one (default time.Now).
func WithClock(now func() time.Time) WriterOption { return func(w *Writer) { w.now = now } }

// NewWriter writes the file_version record to w and returns a Writer appending events after it. If w is an
// io.Closer, Close closes it.
func NewWriter(w io.Writer, opts ...WriterOption) (*Writer, error) {
	ew := &Writer{w: bufio.NewWriter(w), now: time.Now, tagged: map[string]bool{}}
	if c, ok := w.(io.Closer); ok {
		ew.c = c
	}
	for _, o := range opts {
		o(ew)
	}
	ev := &tfeventspb.Event{WallTime: wallTime(ew.now()), What: &tfeventspb.Event_FileVersion{FileVersion: FileVersion}}
	if err := ew.WriteEvent(ev); err != nil {
		return nil, err
	}
	return ew, ew.Flush()
}

// Create creates (truncating) the event file path and returns a Writer on it.
func Create(path string, opts ...WriterOption) (*Writer, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("tfevents: %w", err)
	}
	w, err := NewWriter(f, opts...)
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return w, nil
}

// WriteEvent appends ev as one record (buffered).
func (w *Writer) WriteEvent(ev *tfeventspb.Event) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writeLocked(ev)
}

func (w *Writer) writeLocked(ev *tfeventspb.Event) error {
	if w.err != nil {
		return w.err
	}
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(ev)
	if err != nil {
		return fmt.Errorf("tfevents: encode event: %w", err)
	}
	w.scratch = AppendRecord(w.scratch[:0], data)
	if _, err := w.w.Write(w.scratch); err != nil {
		w.err = fmt.Errorf("tfevents: write: %w", err)
	}
	return w.err
}

// AddScalar appends a TF2 scalar (what tf.summary.scalar writes): a rank-0 DT_FLOAT tensor, with the
// "scalars" plugin metadata and DATA_CLASS_SCALAR on the first value of each tag in this file. A zero t
// means now.
func (w *Writer) AddScalar(tag string, step int64, value float32, t time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	v := &tfeventspb.Summary_Value{
		Tag: tag,
		Value: &tfeventspb.Summary_Value_Tensor{Tensor: &tfeventspb.TensorProto{
			Dtype:       tfeventspb.DataType_DT_FLOAT,
			TensorShape: &tfeventspb.TensorShapeProto{},
			FloatVal:    []float32{value},
		}},
	}
	if !w.tagged[tag] {
		v.Metadata = &tfeventspb.SummaryMetadata{
			PluginData: &tfeventspb.SummaryMetadata_PluginData{PluginName: ScalarsPlugin},
			DataClass:  tfeventspb.DataClass_DATA_CLASS_SCALAR,
		}
	}
	if err := w.writeLocked(w.summaryEvent(step, t, v)); err != nil {
		return err
	}
	w.tagged[tag] = true
	return nil
}

// AddSimpleValue appends a TF1 scalar (Summary.Value.simple_value, as tf.compat.v1.summary.scalar,
// tensorboardX and PyTorch's SummaryWriter write). A zero t means now.
func (w *Writer) AddSimpleValue(tag string, step int64, value float32, t time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writeLocked(w.summaryEvent(step, t, &tfeventspb.Summary_Value{Tag: tag, Value: &tfeventspb.Summary_Value_SimpleValue{SimpleValue: value}}))
}

func (w *Writer) summaryEvent(step int64, t time.Time, v *tfeventspb.Summary_Value) *tfeventspb.Event {
	if t.IsZero() {
		t = w.now()
	}
	return &tfeventspb.Event{WallTime: wallTime(t), Step: step, What: &tfeventspb.Event_Summary{Summary: &tfeventspb.Summary{Value: []*tfeventspb.Summary_Value{v}}}}
}

// Flush writes buffered records through.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if err := w.w.Flush(); err != nil {
		w.err = fmt.Errorf("tfevents: flush: %w", err)
	}
	return w.err
}

// Close flushes and closes the underlying writer when it is an io.Closer.
func (w *Writer) Close() error {
	err := w.Flush()
	if w.c != nil {
		if cerr := w.c.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("tfevents: close: %w", cerr)
		}
	}
	return err
}

// wallTime converts t to seconds since the epoch, as Event.wall_time holds it.
func wallTime(t time.Time) float64 {
	return float64(t.UnixNano()) / 1e9
}

// Time converts an Event.wall_time back to a time.Time (microsecond precision, what a float64 keeps).
func Time(wall float64) time.Time {
	sec, frac := math.Modf(wall)
	return time.Unix(int64(sec), int64(math.Round(frac*1e6))*1e3).UTC()
}
