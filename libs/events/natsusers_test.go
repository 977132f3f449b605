package events_test

import (
	"context"
	"flag"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ml/sluice/libs/events"
)

var updateNATSConf = flag.Bool("update-nats-conf", false, "rewrite deploy/nats/nats.conf from libs/events/natsusers.go")

const composeNATSConf = "../../deploy/nats/nats.conf"

// The compose deployment's NATS configuration is the one rendered from the permission table the embedded
// server uses too; run with -update-nats-conf after changing the table.
func TestComposeNATSConfigIsGenerated(t *testing.T) {
	want := events.NATSAuthorization()
	if *updateNATSConf {
		if err := os.WriteFile(composeNATSConf, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(composeNATSConf)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("%s is not what libs/events/natsusers.go renders: go test ./libs/events -run TestComposeNATSConfigIsGenerated -update-nats-conf", composeNATSConf)
	}
}

// A real nats-server started from deploy/nats/nats.conf (passwords from the environment, as in compose)
// refuses anonymous clients, lets each service publish its own events only, and the gateway request
// types only.
func TestComposeNATSConfigPermissions(t *testing.T) {
	users := []string{events.GatewayUser}
	for s := range events.ServiceEvents {
		users = append(users, s)
	}
	for _, u := range users {
		t.Setenv(events.NATSPasswordVar(u), "pw-"+u+"-0123456789")
	}
	opts, err := natsserver.ProcessConfigFile(composeNATSConf)
	if err != nil {
		t.Fatal(err)
	}
	opts.Host, opts.Port, opts.JetStream, opts.StoreDir, opts.NoSigs, opts.NoLog = "127.0.0.1", natsserver.RANDOM_PORT, true, filepath.Join(t.TempDir(), "js"), true, true
	ns, err := natsserver.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(30 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	urlOf := func(user string) string {
		u, _ := url.Parse(ns.ClientURL())
		if user != "" {
			u.User = url.UserPassword(user, "pw-"+user+"-0123456789")
		}
		return u.String()
	}
	if nc, err := nats.Connect(urlOf("")); err == nil {
		nc.Close()
		t.Fatal("anonymous client accepted")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	connect := func(user string) *events.Bus {
		b, err := events.Connect(ctx, urlOf(user), "natsconf-"+user, nil)
		if err != nil {
			t.Fatalf("%s: %v", user, err)
		}
		t.Cleanup(b.Close)
		return b
	}
	training := connect("training")
	if err := training.EnsureStreams(ctx); err != nil {
		t.Fatalf("a service creates the streams: %v", err)
	}
	publish := func(b *events.Bus, typ string) error {
		ev, _ := events.New("/test", typ, "", map[string]string{"k": "v"})
		pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
		defer pcancel()
		return b.Publish(pctx, ev)
	}
	gw := connect(events.GatewayUser)
	pipelines := connect("pipelines")
	dashboard := connect("dashboard")
	if err := dashboard.EnsureStreams(ctx); err != nil {
		t.Fatalf("the dashboard connects as a service process does: %v", err)
	}
	tuning := connect("tuning")
	for _, c := range []struct {
		who  string
		bus  *events.Bus
		typ  string
		want bool
	}{
		{"training", training, events.TrainingModelExportedV1, true},
		{"training", training, events.PipelineTaskSucceededV1, false},
		{"pipelines", pipelines, events.PipelineTaskSucceededV1, true},
		{"pipelines", pipelines, events.TrainingModelExportedV1, false},
		// Tuning runs trials as training jobs: it may request jobs and their deletion, nothing else of training.
		{"tuning", tuning, events.TuningTrialSucceededV1, true},
		{"tuning", tuning, events.TrainingJobRequestedV1, true},
		{"tuning", tuning, events.TrainingJobDeletionRequestedV1, true},
		{"tuning", tuning, events.TrainingJobSucceededV1, false},
		{"tuning", tuning, events.TrainingJobDeletedV1, false},
		{"tuning", tuning, events.TrainingModelExportedV1, false},
		{"tuning", tuning, events.PipelineRunRequestedV1, false},
		{"pipelines", pipelines, events.TrainingJobRequestedV1, false},
		{"gateway", gw, events.TrainingJobDeletionRequestedV1, true},
		{"gateway", gw, events.PipelineRunRequestedV1, true},
		{"gateway", gw, events.TrainingJobRequestedV1, true},
		{"gateway", gw, events.TrainingModelExportedV1, false},
		{"dashboard", dashboard, events.TrainingModelExportedV1, false},
		{"dashboard", dashboard, events.PipelineRunRequestedV1, false},
		{"gateway", gw, events.PipelineTaskSucceededV1, false},
	} {
		err := publish(c.bus, c.typ)
		if (err == nil) != c.want {
			t.Errorf("%s publishing %s: err %v, want allowed=%v", c.who, c.typ, err, c.want)
		}
	}

	// The tuning service follows the training job events (its trials' state) with an ordered consumer.
	cons, err := tuning.JetStream().OrderedConsumer(ctx, events.StreamTraining, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"sluice.training.job.>"}, DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		t.Fatalf("tuning: ordered consumer on %s: %v", events.StreamTraining, err)
	}
	got := make(chan string, 1)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case got <- m.Subject():
		default:
		}
	})
	if err != nil {
		t.Fatalf("tuning: consume %s: %v", events.StreamTraining, err)
	}
	defer cc.Stop()
	if err := publish(training, events.TrainingJobSucceededV1); err != nil {
		t.Fatal(err)
	}
	select {
	case subj := <-got:
		if subj != events.SubjectFor(events.TrainingJobSucceededV1) {
			t.Fatalf("tuning received %s", subj)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("tuning received no training job event")
	}
}
