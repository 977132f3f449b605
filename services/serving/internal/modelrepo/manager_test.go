package modelrepo_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sluice-ml/sluice/services/serving/internal/modelrepo"
	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime"
	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime/onnxtest"
)

func writeVersion(t *testing.T, base, dir string, model []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(base, dir), 0o755); err != nil {
		t.Fatal(err)
	}
	if model != nil {
		if err := os.WriteFile(filepath.Join(base, dir, "model.onnx"), model, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func newManager(t *testing.T, base string, p modelrepo.Policy) *modelrepo.Manager {
	t.Helper()
	m, err := modelrepo.NewManager(modelrepo.Config{Name: "m", Source: modelrepo.DirSource{Path: base}, Loader: &modelruntime.ONNXLoader{Instances: 1}, Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

func available(s *modelrepo.Snapshot) []int64 {
	var vs []int64
	for v := range s.Available {
		vs = append(vs, v)
	}
	slices.Sort(vs)
	return vs
}

var small = onnxtest.NewMLP(1, []int{4, 3}, "x", "y").ONNX

func TestDiscoveryAndPolicies(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		policy modelrepo.Policy
		want   []int64
	}{
		"default is latest 1": {modelrepo.Policy{}, []int64{10}},
		"latest 2":            {modelrepo.Policy{Latest: 2}, []int64{3, 10}},
		"all":                 {modelrepo.Policy{All: true}, []int64{1, 3, 10}},
		"specific":            {modelrepo.Policy{Specific: []int64{1, 3, 7}}, []int64{1, 3}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			base := t.TempDir()
			writeVersion(t, base, "1", small)
			writeVersion(t, base, "0003", small) // leading zeros: version 3
			writeVersion(t, base, "10", small)
			writeVersion(t, base, "tmp-upload", small) // not a version: ignored
			writeVersion(t, base, "-2", small)
			if err := os.WriteFile(filepath.Join(base, "42"), []byte("a file, not a dir"), 0o644); err != nil {
				t.Fatal(err)
			}
			m := newManager(t, base, tc.policy)
			if err := m.Poll(t.Context()); err != nil {
				t.Fatal(err)
			}
			s := m.Snapshot()
			if got := available(s); !slices.Equal(got, tc.want) {
				t.Fatalf("available = %v, want %v", got, tc.want)
			}
			latest, err := s.Latest()
			if err != nil || latest.Version != tc.want[len(tc.want)-1] {
				t.Fatalf("Latest() = %v, %v", latest, err)
			}
		})
	}
}

func TestPolicyValidate(t *testing.T) {
	t.Parallel()
	err := modelrepo.Policy{Latest: 2, All: true}.Validate()
	if err == nil || !strings.Contains(err.Error(), "versionPolicy: exactly one") {
		t.Fatalf("err = %v", err)
	}
	err = modelrepo.Policy{Specific: []int64{-1}}.Validate()
	if err == nil || !strings.Contains(err.Error(), "versionPolicy.specific[0]") {
		t.Fatalf("err = %v", err)
	}
}

func TestNewVersionReplacesOldAndLabels(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	writeVersion(t, base, "1", small)
	m := newManager(t, base, modelrepo.Policy{})
	m.SetLabels(map[string]int64{"stable": 1, "canary": 2})
	if err := m.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	if sv, err := m.Snapshot().Label("stable"); err != nil || sv.Version != 1 {
		t.Fatalf("label stable: %v %v", sv, err)
	}
	if _, err := m.Snapshot().Label("canary"); !errors.Is(err, modelrepo.ErrLabelNotFound) {
		t.Fatalf("label canary before v2: %v", err)
	}
	writeVersion(t, base, "2", small)
	if err := m.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	s := m.Snapshot()
	if got := available(s); !slices.Equal(got, []int64{2}) {
		t.Fatalf("available = %v", got)
	}
	if st, _ := s.Status(1); st.State != modelrepo.StateEnd || st.ErrorCode != "OK" {
		t.Fatalf("v1 status = %+v", st)
	}
	if _, err := s.Version(1); !errors.Is(err, modelrepo.ErrVersionNotFound) {
		t.Fatalf("v1 lookup: %v", err)
	}
}

func TestLoadFailureKeepsServingPreviousVersion(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	writeVersion(t, base, "1", small)
	m := newManager(t, base, modelrepo.Policy{})
	if err := m.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	writeVersion(t, base, "2", []byte("corrupt"))
	writeVersion(t, base, "3", nil) // no model file
	for range 2 {                   // a failed version is not retried on the next poll
		if err := m.Poll(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	s := m.Snapshot()
	if got := available(s); !slices.Equal(got, []int64{1}) {
		t.Fatalf("available = %v, want [1]", got)
	}
	st2, _ := s.Status(2)
	if st2.State != modelrepo.StateEnd || st2.ErrorCode != "INVALID_ARGUMENT" || !strings.Contains(st2.ErrorMessage, "decode ONNX protobuf") {
		t.Fatalf("v2 status = %+v", st2)
	}
	st3, _ := s.Status(3)
	if st3.State != modelrepo.StateEnd || st3.ErrorCode != "NOT_FOUND" || !strings.Contains(st3.ErrorMessage, "model.onnx") {
		t.Fatalf("v3 status = %+v", st3)
	}
	if st1, _ := s.Status(1); st1.State != modelrepo.StateAvailable {
		t.Fatalf("v1 status = %+v", st1)
	}
}

// TestHotLoadDropsNoRequest keeps predicting on the latest version while new versions arrive
// and old ones are unloaded; no request may fail.
func TestHotLoadDropsNoRequest(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	writeVersion(t, base, "1", small)
	m := newManager(t, base, modelrepo.Policy{})
	if err := m.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var served, failed atomic.Int64
	seen := sync.Map{}
	in := map[string]modelruntime.Tensor{"x": {DataType: modelruntime.FP32, Shape: []int64{1, 4}, Data: []float32{1, 2, 3, 4}}}
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				var err error
				for attempt := 0; attempt < 3; attempt++ {
					var sv *modelrepo.Servable
					if sv, err = m.Snapshot().Latest(); err != nil {
						break
					}
					if _, err = sv.Predict(context.Background(), in); !errors.Is(err, modelrepo.ErrUnloaded) {
						seen.Store(sv.Version, true)
						break
					}
				}
				if err != nil {
					failed.Add(1)
				} else {
					served.Add(1)
				}
			}
		})
	}
	waitServed := func() {
		for start := served.Load(); served.Load() < start+20 && failed.Load() == 0; {
			runtime.Gosched()
		}
	}
	for v := 2; v <= 6; v++ {
		waitServed()
		writeVersion(t, base, modelrepo.FormatVersion(int64(v)), small)
		if err := m.Poll(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	waitServed()
	cancel()
	wg.Wait()
	if failed.Load() != 0 || served.Load() == 0 {
		t.Fatalf("served %d, failed %d", served.Load(), failed.Load())
	}
	if _, ok := seen.Load(int64(6)); !ok {
		t.Fatal("version 6 never served")
	}
}
