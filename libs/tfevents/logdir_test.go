package tfevents_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/libs/devstack"
	"github.com/sluice-ml/sluice/libs/tfevents"
	"github.com/sluice-ml/sluice/libs/tfevents/tfeventspb"
)

// TestMain lets the test binary serve as devstack's S3 child (TestS3Source).
func TestMain(m *testing.M) {
	devstack.RunChild()
	os.Exit(m.Run())
}

func writeFile(t *testing.T, path string, fn func(w *tfevents.Writer)) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := tfevents.NewWriter(&buf)
	require.NoError(t, err)
	fn(w)
	require.NoError(t, w.Flush())
	if path != "" {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
	}
	return buf.Bytes()
}

func values(ps []tfevents.ScalarPoint) []float64 {
	out := make([]float64, len(ps))
	for i, p := range ps {
		out[i] = p.Value
	}
	return out
}

// Every directory below the root holding event files is a run; other files are ignored.
func TestRunsAcrossSubdirectories(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "train", "events.out.tfevents.1.h"), func(w *tfevents.Writer) {
		require.NoError(t, w.AddScalar("loss", 1, 2, time.Time{}))
	})
	writeFile(t, filepath.Join(dir, "replica-1", "eval", "events.out.tfevents.1.h"), func(w *tfevents.Writer) {
		require.NoError(t, w.AddScalar("accuracy", 1, 0.5, time.Time{}))
	})
	writeFile(t, filepath.Join(dir, "empty", "events.out.tfevents.1.h"), func(*tfevents.Writer) {})
	require.NoError(t, os.WriteFile(filepath.Join(dir, "train", "checkpoint"), []byte("x"), 0o644))
	l := tfevents.NewLogdir(tfevents.Dir(dir))
	require.NoError(t, l.Reload(t.Context()))
	require.Equal(t, []string{"empty", "replica-1/eval", "train"}, l.Runs())
	require.Equal(t, map[string]map[string]tfevents.TagInfo{
		"replica-1/eval": {"accuracy": {}},
		"train":          {"loss": {}},
	}, l.ScalarTags())
}

// A file still being written: each Reload picks up what was appended, a record cut short is not an
// error and is read once complete; a missing directory is simply empty.
func TestIncrementalReadOfAGrowingFile(t *testing.T) {
	dir := t.TempDir()
	l := tfevents.NewLogdir(tfevents.Dir(filepath.Join(dir, "logs")))
	require.NoError(t, l.Reload(t.Context()))
	require.Empty(t, l.Runs())

	full := writeFile(t, "", func(w *tfevents.Writer) {
		for i := range 5 {
			require.NoError(t, w.AddScalar("loss", int64(i), float32(10-i), time.Time{}))
		}
	})
	path := filepath.Join(dir, "logs", "events.out.tfevents.1.h")
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	f, err := os.Create(path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	// Append in uneven chunks, including cuts inside headers, data and footers.
	var got []float64
	for off := 0; off < len(full); {
		end := min(len(full), off+7)
		_, err := f.Write(full[off:end])
		require.NoError(t, err)
		off = end
		require.NoError(t, l.Reload(t.Context()))
		ps, _ := l.Scalars(".", "loss")
		require.GreaterOrEqual(t, len(ps), len(got), "points never disappear")
		got = values(ps)
	}
	require.Equal(t, []float64{10, 9, 8, 7, 6}, got)
	require.Empty(t, l.Corruptions())
}

// A record whose data checksum fails is skipped and reported once; one whose length checksum fails is
// skipped up to the next valid record. The records around them are read.
func TestCorruptRecordsAreSkippedAndReported(t *testing.T) {
	ev := func(step int64, v float32) []byte {
		data := mustMarshal(t, &tfeventspb.Event{WallTime: 1, Step: step, What: &tfeventspb.Event_Summary{Summary: &tfeventspb.Summary{
			Value: []*tfeventspb.Summary_Value{{Tag: "x", Value: &tfeventspb.Summary_Value_SimpleValue{SimpleValue: v}}}}}})
		return tfevents.AppendRecord(nil, data)
	}
	badData := ev(2, 2)
	badData[len(badData)-6] ^= 0xff // flip a data byte
	badLen := ev(3, 3)
	badLen[2] ^= 0x01 // flip a length byte
	var file []byte
	file = append(file, ev(1, 1)...)
	off2 := len(file)
	file = append(file, badData...)
	off3 := len(file)
	file = append(file, badLen...)
	file = append(file, ev(4, 4)...)
	file = append(file, ev(5, 5)[:10]...) // truncated tail: not an error

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "events.out.tfevents.1.h"), file, 0o644))
	l := tfevents.NewLogdir(tfevents.Dir(dir))
	require.NoError(t, l.Reload(t.Context()))
	require.NoError(t, l.Reload(t.Context())) // re-reading must not report twice
	ps, ok := l.Scalars(".", "x")
	require.True(t, ok)
	require.Equal(t, []float64{1, 4}, values(ps))
	bad := l.Corruptions()
	require.Len(t, bad, 2)
	require.Equal(t, int64(off2), bad[0].Offset)
	require.Equal(t, int64(len(badData)), bad[0].Length)
	require.Contains(t, bad[0].Error(), "data checksum")
	require.Equal(t, int64(off3), bad[1].Offset)
	require.Equal(t, int64(len(badLen)), bad[1].Length)
	require.Contains(t, bad[1].Error(), "length checksum")
	require.Contains(t, bad[1].Error(), "events.out.tfevents.1.h")
}

func mustMarshal(t *testing.T, ev *tfeventspb.Event) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := tfevents.NewWriter(&buf)
	require.NoError(t, err)
	require.NoError(t, w.WriteEvent(ev))
	require.NoError(t, w.Flush())
	recs, _, _ := tfevents.ParseRecords(buf.Bytes(), 0)
	require.Len(t, recs, 2)
	return recs[1].Data
}

// TF2 writers in C++ put a scalar in tensor_content; the metadata is on the tag's first value only.
func TestScalarTensorEncodings(t *testing.T) {
	le32 := binary.LittleEndian.AppendUint32(nil, math.Float32bits(0.75))
	le64 := binary.LittleEndian.AppendUint64(nil, math.Float64bits(1.25))
	scalarMD := &tfeventspb.SummaryMetadata{PluginData: &tfeventspb.SummaryMetadata_PluginData{PluginName: "scalars"}}
	tests := map[string]struct {
		v      *tfeventspb.Summary_Value
		plugin string
		want   float64
		ok     bool
	}{
		"float tensor_content with metadata":                  {v: &tfeventspb.Summary_Value{Metadata: scalarMD, Value: &tfeventspb.Summary_Value_Tensor{Tensor: &tfeventspb.TensorProto{Dtype: tfeventspb.DataType_DT_FLOAT, TensorContent: le32}}}, want: 0.75, ok: true},
		"double tensor_content, plugin from an earlier value": {v: &tfeventspb.Summary_Value{Value: &tfeventspb.Summary_Value_Tensor{Tensor: &tfeventspb.TensorProto{Dtype: tfeventspb.DataType_DT_DOUBLE, TensorContent: le64}}}, plugin: "scalars", want: 1.25, ok: true},
		"half_val":                              {v: &tfeventspb.Summary_Value{Value: &tfeventspb.Summary_Value_Tensor{Tensor: &tfeventspb.TensorProto{Dtype: tfeventspb.DataType_DT_HALF, HalfVal: []int32{0x3c00}}}}, plugin: "scalars", want: 1, ok: true},
		"int64_val":                             {v: &tfeventspb.Summary_Value{Value: &tfeventspb.Summary_Value_Tensor{Tensor: &tfeventspb.TensorProto{Dtype: tfeventspb.DataType_DT_INT64, Int64Val: []int64{-7}}}}, plugin: "scalars", want: -7, ok: true},
		"data class scalar without plugin name": {v: &tfeventspb.Summary_Value{Metadata: &tfeventspb.SummaryMetadata{DataClass: tfeventspb.DataClass_DATA_CLASS_SCALAR}, Value: &tfeventspb.Summary_Value_Tensor{Tensor: &tfeventspb.TensorProto{Dtype: tfeventspb.DataType_DT_FLOAT, FloatVal: []float32{2}}}}, want: 2, ok: true},
		"tensor of another plugin":              {v: &tfeventspb.Summary_Value{Value: &tfeventspb.Summary_Value_Tensor{Tensor: &tfeventspb.TensorProto{Dtype: tfeventspb.DataType_DT_FLOAT, FloatVal: []float32{2}}}}, plugin: "histograms"},
		"vector is not a scalar":                {v: &tfeventspb.Summary_Value{Value: &tfeventspb.Summary_Value_Tensor{Tensor: &tfeventspb.TensorProto{Dtype: tfeventspb.DataType_DT_FLOAT, TensorShape: &tfeventspb.TensorShapeProto{Dim: []*tfeventspb.TensorShapeProto_Dim{{Size: 2}}}, FloatVal: []float32{1, 2}}}}, plugin: "scalars"},
		"histogram":                             {v: &tfeventspb.Summary_Value{Value: &tfeventspb.Summary_Value_Histo{Histo: &tfeventspb.HistogramProto{Num: 1}}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, ok := tfevents.ScalarValue(tc.v, tc.plugin)
			require.Equal(t, tc.ok, ok)
			require.Equal(t, tc.want, got)
		})
	}
}

// The same reader follows event files under an S3 prefix, with ranged reads as the files grow.
func TestS3Source(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	srv, err := devstack.StartS3(ctx, devstack.S3Config{DataDir: t.TempDir()}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	mc, err := minio.New(srv.Addr, &minio.Options{Creds: credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, ""), Region: srv.Region})
	require.NoError(t, err)
	require.NoError(t, mc.MakeBucket(ctx, "logs", minio.MakeBucketOptions{Region: srv.Region}))

	full := writeFile(t, "", func(w *tfevents.Writer) {
		for i := range 3 {
			require.NoError(t, w.AddScalar("loss", int64(i), float32(i), time.Time{}))
		}
	})
	put := func(key string, b []byte) {
		_, err := mc.PutObject(ctx, "logs", key, bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{})
		require.NoError(t, err)
	}
	key := "job-1/replica-0/events.out.tfevents.1.h"
	put(key, full[:len(full)-5]) // last record incomplete
	put("job-1/other/readme.txt", []byte("not an event file"))
	put("job-2/events.out.tfevents.1.h", full) // outside the prefix

	l := tfevents.NewLogdir(tfevents.S3{Client: mc, Bucket: "logs", Prefix: "job-1/"})
	require.Equal(t, "s3://logs/job-1", l.Location())
	require.NoError(t, l.Reload(ctx))
	require.Equal(t, []string{"replica-0"}, l.Runs())
	ps, _ := l.Scalars("replica-0", "loss")
	require.Equal(t, []float64{0, 1}, values(ps))
	put(key, full) // S3 objects are replaced whole; the reader continues from its offset
	require.NoError(t, l.Reload(ctx))
	ps, _ = l.Scalars("replica-0", "loss")
	require.Equal(t, []float64{0, 1, 2}, values(ps))
	require.Empty(t, l.Corruptions())
}
