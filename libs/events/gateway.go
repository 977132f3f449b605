package events

import (
	"context"
	"encoding/json"
	"strings"
	"unicode/utf8"

	"sigs.k8s.io/yaml"

	"github.com/sluice-ml/sluice/libs/auth"
)

// DefaultNamespace is the namespace of an event whose data names none.
const DefaultNamespace = "default"

// IsRequestType reports whether t is a request type, io.sluice.<domain>[.<entity>].requested.v<major>: the
// only kind of event a caller outside Sluice may publish. Every other type (task, job, model, deployment
// state, dead letters) is internal and published by the services alone.
func IsRequestType(t string) bool {
	parts := strings.Split(t, ".")
	return len(parts) >= 5 && parts[0] == "io" && parts[1] == "sluice" && parts[len(parts)-2] == "requested"
}

// Namespace returns the namespace an event belongs to: its data's metadata.namespace (Kubernetes-shaped
// documents: TFJob, InferenceService, Notebook) or namespace field, else its "namespace" extension, else
// DefaultNamespace. JSON and YAML data are read (the services take request documents in either). It is
// the namespace the event gateway authorises the publisher in, so a request handler creates what it asks
// for in this namespace and no other.
func Namespace(ev Event) string {
	if data := ev.Data(); len(data) > 0 && (isJSON(ev.DataContentType()) || isYAML(ev.DataContentType())) {
		var d struct {
			Metadata struct {
				Namespace string `json:"namespace"`
			} `json:"metadata"`
			Namespace string `json:"namespace"`
		}
		if yaml.Unmarshal(data, &d) == nil { // JSON is YAML
			if d.Metadata.Namespace != "" {
				return d.Metadata.Namespace
			}
			if d.Namespace != "" {
				return d.Namespace
			}
		}
	}
	if v, ok := ev.Extensions()["namespace"].(string); ok && v != "" {
		return v
	}
	return DefaultNamespace
}

// SetAuthContext records who published ev with the CloudEvents authcontext extension (authtype, authid),
// replacing whatever the caller put there.
func SetAuthContext(ev *Event, id auth.Identity) {
	ev.SetExtension("authtype", id.Kind())
	ev.SetExtension("authid", id.Subject)
}

// Publisher is the identity of the publisher of a request event, from its authcontext extension (authid,
// authtype; see [SetAuthContext]): Subject and Service only, no admin flag or grants. ok is false when ev
// carries no authid.
//
// When the authcontext can be trusted: for request types (see [IsRequestType]) only. A request type
// reaches the bus through one of two doors, and both fix the authcontext: the event gateway (the HTTP
// publish endpoint, `sluice events publish`), whose NATS user may publish request subjects only
// ([GatewayPermissions]), authenticates the caller and overwrites any authcontext the caller sent; a
// Sluice service's NATS user may publish only the request subjects [ServiceRequests] lists, and a service
// publishes them as itself (tuning's trial jobs carry no authcontext: their owner is empty). Anonymous
// NATS clients are refused. So the authid of a request event is who the gateway authenticated, or empty.
// The authcontext of any other event, or of events read from a NATS server that does not enforce these
// users (a bare test server), says nothing; and an authid is never grounds for authorisation (the gateway
// authorised the publisher in the event's [Namespace] when it accepted the event).
func Publisher(ev Event) (auth.Identity, bool) {
	sub, _ := ev.Extensions()["authid"].(string)
	if sub == "" {
		return auth.Identity{}, false
	}
	kind, _ := ev.Extensions()["authtype"].(string)
	return auth.Identity{Subject: sub, Service: kind == "service_account"}, true
}

// WithPublisher returns ctx carrying the [Publisher] of the request event ev (auth.WithPublisher), so
// what a request handler starts is owned by who published the request (workflow.Owner, the SluiceOwner
// search attribute); ctx unchanged when ev has no authcontext. Every handler of a request type calls it
// first.
func WithPublisher(ctx context.Context, ev Event) context.Context {
	if id, ok := Publisher(ev); ok {
		return auth.WithPublisher(ctx, id)
	}
	return ctx
}

func isYAML(ct string) bool {
	ct = strings.ToLower(strings.TrimSpace(strings.Split(ct, ";")[0]))
	return ct == "application/yaml" || ct == "application/x-yaml" || ct == "text/yaml" || ct == "text/x-yaml" || strings.HasSuffix(ct, "+yaml")
}

func isJSON(ct string) bool {
	ct = strings.ToLower(strings.TrimSpace(strings.Split(ct, ";")[0]))
	return ct == "" || ct == "application/json" || ct == "text/json" || strings.HasSuffix(ct, "+json")
}

// forJSON prepares ev for the CloudEvents JSON format: data that is not JSON (or not valid JSON) and not
// valid UTF-8 text is written as data_base64, so every line of a tail is valid JSON.
func forJSON(ev *Event) {
	data := ev.Data()
	if len(data) == 0 || ev.DataBase64 {
		return
	}
	ct := ev.DataContentType()
	switch {
	case isJSON(ct):
		if !json.Valid(data) {
			ev.DataBase64 = true
		}
	case strings.HasPrefix(strings.ToLower(ct), "text/") && utf8.Valid(data):
	default:
		ev.DataBase64 = true
	}
}
