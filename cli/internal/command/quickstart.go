package command

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
)

// quickstartTextsAddr serves examples/pipelines/texts on loopback for the quickstart pipeline's downloads.
const quickstartTextsAddr = "127.0.0.1:8099"

var quickstartExamples = "examples"

func init() {
	devHooks = append(devHooks, runQuickstart)
}

// runQuickstart serves the example texts over loopback HTTP, publishes the CloudEvent that runs the seed's
// download_and_join pipeline, and follows the run to its end.
func runQuickstart(ctx context.Context, o *Options, env DevEnv) error {
	texts := filepath.Join(quickstartExamples, "pipelines", "texts")
	if _, err := os.Stat(texts); err != nil {
		return fmt.Errorf("quickstart needs %s (run from the repository root or pass --examples-dir): %w", texts, err)
	}
	ln, err := net.Listen("tcp", quickstartTextsAddr)
	if err != nil {
		return fmt.Errorf("serve example texts on %s: %w", quickstartTextsAddr, err)
	}
	srv := &http.Server{Handler: http.StripPrefix("/texts/", http.FileServer(http.Dir(texts))), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	go func() { <-ctx.Done(); _ = srv.Close() }()

	specPath := filepath.Join(quickstartExamples, "pipelines", "download_and_join.yaml")
	src, err := os.ReadFile(specPath)
	if err != nil {
		return err
	}
	ev, err := events.New("/sluice/quickstart", events.PipelineRunRequestedV1, "", pipelinesv1.RunRequest{Spec: string(src), RunName: "quickstart download_and_join"})
	if err != nil {
		return err
	}
	ev.SetID(uuid.Must(uuid.NewV7()).String())
	ev.SetSubject("runs/" + ev.ID())
	body := ev.Data()
	h := http.Header{}
	h.Set("ce-specversion", "1.0")
	h.Set("ce-id", ev.ID())
	h.Set("ce-type", ev.Type())
	h.Set("ce-source", ev.Source())
	h.Set("ce-subject", ev.Subject())
	h.Set("Content-Type", "application/json")
	if err := o.client().do(ctx, http.MethodPost, events.PublishPath, h, strings.NewReader(string(body)), nil); err != nil {
		return fmt.Errorf("publish quickstart event: %w", err)
	}
	fmt.Fprintf(o.Out, "\nQuickstart: published %s (id %s) for %s\n", events.PipelineRunRequestedV1, ev.ID(), specPath)
	fmt.Fprintf(o.Out, "  Temporal UI: %s/namespaces/%s/workflows/%s\n", env.TemporalUI, env.Namespace, ev.ID())
	// The run id is the event id; wait for the consumer to start it.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := o.getRun(ctx, ev.ID()); err == nil {
			break
		} else if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("run %s did not start: %w", ev.ID(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := o.watchRun(ctx, ev.ID()); err != nil {
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}
	fmt.Fprintf(o.Out, "\nThe joined text:  bin/sluice run logs %s --task join\n", ev.ID())
	fmt.Fprintf(o.Out, "Same pipeline as KFP v2 IR: bin/sluice pipeline run %s --watch\n", filepath.Join(quickstartExamples, "pipelines", "download_and_join.kfp.yaml"))
	fmt.Fprintln(o.Out, "Sluice dev keeps running; press Ctrl-C to stop.")
	return nil
}
