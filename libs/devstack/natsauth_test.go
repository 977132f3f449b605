package devstack_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluice-ml/sluice/libs/devstack/devstacktest"
	"github.com/sluice-ml/sluice/libs/events"
)

// The service-to-bus path is guarded by NATS's own authorization: no anonymous clients; the gateway's
// user publishes request types only (an internal type is a permissions violation at the server) and can
// still tail the streams.
func TestNATSUsersAndGatewayPermissions(t *testing.T) {
	st := devstacktest.Stack(t)
	u, _ := url.Parse(st.NATSURL)
	u.User = nil
	if nc, err := nats.Connect(u.String()); err == nil {
		nc.Close()
		t.Fatal("anonymous NATS client accepted")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	svc, err := events.Connect(ctx, st.NATSURL, "natsauth-service", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	if err := svc.EnsureStreams(ctx); err != nil {
		t.Fatal(err)
	}
	gw, err := events.Connect(ctx, st.NATSGatewayURL, "natsauth-gateway", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	req, _ := events.New("/test", events.TrainingJobRequestedV1, "", map[string]string{"kind": "TFJob"})
	if err := gw.Publish(ctx, req); err != nil {
		t.Fatalf("gateway publishing a request type: %v", err)
	}
	nb, _ := events.New("/test", events.NotebookRequestedV1, "", map[string]string{"kind": "Notebook"})
	if err := gw.Publish(ctx, nb); err != nil {
		t.Fatalf("gateway publishing a notebook request: %v", err)
	}
	for _, typ := range []string{events.TrainingModelExportedV1, events.PipelineTaskSucceededV1} {
		ev, _ := events.New("/sluice/training", typ, "", map[string]string{"uri": "s3://sluice/models/forged/"})
		pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
		err := gw.Publish(pctx, ev)
		pcancel()
		if err == nil {
			t.Fatalf("gateway user published internal type %s", typ)
		}
	}
	if err := svc.Publish(ctx, func() events.Event {
		ev, _ := events.New("/sluice/training", events.TrainingModelExportedV1, "", map[string]string{"uri": "s3://x"})
		return ev
	}()); err != nil {
		t.Fatalf("service user publishing an internal type: %v", err)
	}
	tctx, tcancel := context.WithTimeout(ctx, 20*time.Second)
	defer tcancel()
	found := false
	_ = gw.Tail(tctx, events.TrainingJobRequestedV1, true, func(r events.Received) {
		if r.Err == nil && r.Event.ID() == req.ID() {
			found = true
			tcancel()
		}
	})
	if !found {
		t.Fatal("gateway user cannot tail the request it published")
	}
}
