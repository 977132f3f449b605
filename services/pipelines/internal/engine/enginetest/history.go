// Package enginetest records run workflow histories for the engine's replay tests.
package enginetest

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	enums "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"
)

// RecordEnv turns recording on: `SLUICE_RECORD_HISTORIES=1 go test -run X ./...` rewrites the histories
// the tests record; without it RecordHistory does nothing.
const RecordEnv = "SLUICE_RECORD_HISTORIES"

// HistoriesDir is where the replay test of package engine reads histories.
func HistoriesDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata", "histories")
}

// RecordHistory writes the history of workflow id, and of every child workflow it started, to
// HistoriesDir()/<name>[-child-<n>].json, when RecordEnv is set. Call it after the run ended.
func RecordHistory(t testing.TB, c client.Client, id, name string) {
	t.Helper()
	if os.Getenv(RecordEnv) == "" {
		return
	}
	n := 0
	var walk func(id, file string)
	walk = func(id, file string) {
		h := &historypb.History{}
		it := c.GetWorkflowHistory(t.Context(), id, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		var children []string
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				t.Fatalf("history of %s: %v", id, err)
			}
			h.Events = append(h.Events, ev)
			if a := ev.GetChildWorkflowExecutionStartedEventAttributes(); a != nil {
				children = append(children, a.GetWorkflowExecution().GetWorkflowId())
			}
		}
		b, err := protojson.MarshalOptions{Indent: " "}.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(HistoriesDir(), file+".json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, child := range children {
			n++
			walk(child, strings.TrimSuffix(name, ".json")+"-child-"+itoa(n))
		}
	}
	walk(id, name)
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}
