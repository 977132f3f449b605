package app_test

import (
	"os"
	"path/filepath"

	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/services/serving/api/servingv1"
)

// recordHistory writes the deployment workflow's history to
// internal/control/testdata/histories/<file>.json when SLUICE_SERVING_RECORD_HISTORIES is set;
// TestReplayRecordedHistories in internal/control replays every file there.
func (e *env) recordHistory(name, file string) {
	e.t.Helper()
	if os.Getenv("SLUICE_SERVING_RECORD_HISTORIES") == "" {
		return
	}
	it := e.deps.Temporal.GetWorkflowHistory(e.t.Context(), servingv1.WorkflowID(e.ns, name), "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	h := &historypb.History{}
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(e.t, err)
		h.Events = append(h.Events, ev)
	}
	b, err := protojson.MarshalOptions{Indent: " "}.Marshal(h)
	require.NoError(e.t, err)
	dir := filepath.Join("..", "internal", "control", "testdata", "histories")
	require.NoError(e.t, os.MkdirAll(dir, 0o755))
	require.NoError(e.t, os.WriteFile(filepath.Join(dir, file+".json"), b, 0o644))
}
