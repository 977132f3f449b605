// Package replaytest replays recorded workflow histories against today's workflow code, the way Temporal
// recommends catching non-determinism: a change to a workflow's commands that is not guarded by
// workflow.GetVersion fails the replay of a history recorded before it.
package replaytest

import (
	"log/slog"
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/worker"

	wf "github.com/sluice-ml/sluice/libs/workflow"
)

// Replay replays every dir/*.json (histories exported as JSON, e.g. by `temporal workflow show -o json` or
// the services' recording tests) in a subtest named after the file, with a fresh replayer on which
// register registers the workflows. It fails when dir holds no history, so a lost testdata directory
// cannot pass silently.
func Replay(t *testing.T, dir string, register func(worker.WorkflowReplayer)) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no recorded histories in %s", dir)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			register(r)
			if err := r.ReplayWorkflowHistoryFromJSONFile(wf.NewLogger(slog.New(slog.DiscardHandler)), f); err != nil {
				t.Fatalf("replay %s: %v", f, err)
			}
		})
	}
}
