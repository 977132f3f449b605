package events

import (
	"fmt"
	"sort"
	"strings"
)

// Who may send what on the bus, in NATS's own terms (users with per-subject permissions, enforced by the
// NATS server, not by Sluice code). The embedded server of `sluice dev` (libs/devstack) and the compose
// deployment's server (deploy/nats/nats.conf, rendered by [NATSAuthorization]) are both built from here.

// Permissions are the subjects one NATS user may publish to and subscribe to (NATS wildcards).
type Permissions struct {
	Publish, Subscribe []string
}

// GatewayUser is the NATS user of the event gateway (the HTTP publish and tail endpoints).
const GatewayUser = "gateway"

// jetStreamClient are the subjects a JetStream client publishes to besides its events: the JetStream and
// KV APIs, acknowledgements and flow control.
var jetStreamClient = []string{"$JS.API.>", "$JS.ACK.>", "$JS.FC.>", "$KV.>"}

// GatewayPermissions: the gateway publishes request types only (sluice.<domain>[.<entity>].requested.v<major>),
// so an event that reaches the bus from outside can never be an internal type (task, job, model state,
// dead letters); it may read the streams (publish, then tail through ordered consumers).
func GatewayPermissions() Permissions {
	return Permissions{
		Publish: []string{
			"sluice.*.requested.*", "sluice.*.*.requested.*",
			"$JS.API.INFO", "$JS.API.STREAM.INFO.*", "$JS.API.STREAM.NAMES", "$JS.API.STREAM.LIST",
			"$JS.API.CONSUMER.CREATE.>", "$JS.API.CONSUMER.DELETE.>", "$JS.API.CONSUMER.INFO.>",
			"$JS.API.CONSUMER.MSG.NEXT.>", "$JS.ACK.>", "$JS.FC.>",
		},
		Subscribe: []string{"_INBOX.>"},
	}
}

// ServiceEvents lists, per service, the subjects of the events it emits (its own domain). Every service
// may also dead-letter what it consumes.
var ServiceEvents = map[string][]string{
	"pipelines": {"sluice.pipeline.>"},
	"training":  {"sluice.training.>"},
	"serving":   {"sluice.serving.>"},
	"notebooks": {"sluice.notebook.>"},
	"metadata":  {"sluice.metadata.>"},
	"tuning":    {"sluice.tuning.>"},
	// The dashboard emits no events of its own (its pages call the other services' APIs); it connects
	// as every service process does (streams, namespace profiles in KV) and may only dead-letter.
	"dashboard": nil,
}

// ServiceRequests lists, per service, the subjects of other services' request types it may publish
// (exact subjects, no wildcards): the tuning service runs its trials as training jobs, so it requests
// training jobs and their deletion, and nothing else of the training domain.
var ServiceRequests = map[string][]string{
	"tuning": {SubjectFor(TrainingJobRequestedV1), SubjectFor(TrainingJobDeletionRequestedV1)},
}

// ServicePermissions are a service's own: its domain's events, the requests of [ServiceRequests], dead
// letters, and the JetStream client subjects (streams, consumers, the namespace profiles in KV). It may
// not publish another service's events: a compromised or confused service cannot forge, say, a model export.
func ServicePermissions(service string) (Permissions, error) {
	subjects, ok := ServiceEvents[service]
	if !ok {
		return Permissions{}, fmt.Errorf("events: no NATS permissions for service %q", service)
	}
	subjects = append(append([]string(nil), subjects...), ServiceRequests[service]...)
	pub := append(append(subjects, DeadLetterPrefix+">"), jetStreamClient...)
	return Permissions{Publish: pub, Subscribe: []string{"_INBOX.>"}}, nil
}

// NATSPasswordVar is the environment variable that holds a NATS user's password in the compose
// deployment: NATS_<USER>_PASSWORD (deploy/compose/auth-env.sh creates them).
func NATSPasswordVar(user string) string {
	return "NATS_" + strings.ToUpper(user) + "_PASSWORD"
}

// NATSAuthorization renders the authorization block of a nats-server configuration file: one user per
// service ([ServicePermissions]) and the gateway ([GatewayPermissions]); each password is read by the
// server from the environment variable [NATSPasswordVar] names. Anonymous clients are refused.
func NATSAuthorization() string {
	var b strings.Builder
	b.WriteString("# Generated from libs/events/natsusers.go (TestComposeNATSConfigIsGenerated): do not edit.\n")
	b.WriteString("# One NATS user per Sluice service and one for the event gateway, with per-subject permissions;\n")
	b.WriteString("# passwords come from the environment (deploy/compose/auth-env.sh). Anonymous clients are refused.\n")
	b.WriteString("authorization {\n  users = [\n")
	services := make([]string, 0, len(ServiceEvents))
	for s := range ServiceEvents {
		services = append(services, s)
	}
	sort.Strings(services)
	write := func(user string, p Permissions) {
		fmt.Fprintf(&b, "    {\n      user: %q\n      password: $%s\n      permissions: {\n", user, NATSPasswordVar(user))
		fmt.Fprintf(&b, "        publish: { allow: [%s] }\n", quoteAll(p.Publish))
		fmt.Fprintf(&b, "        subscribe: { allow: [%s] }\n", quoteAll(p.Subscribe))
		b.WriteString("      }\n    }\n")
	}
	for _, s := range services {
		p, _ := ServicePermissions(s)
		write(s, p)
	}
	write(GatewayUser, GatewayPermissions())
	b.WriteString("  ]\n}\n")
	return b.String()
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}
