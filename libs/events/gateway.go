package events

import (
	"encoding/json"
	"strings"
	"unicode/utf8"

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
// DefaultNamespace.
func Namespace(ev Event) string {
	if isJSON(ev.DataContentType()) && len(ev.Data()) > 0 {
		var d struct {
			Metadata struct {
				Namespace string `json:"namespace"`
			} `json:"metadata"`
			Namespace string `json:"namespace"`
		}
		if json.Unmarshal(ev.Data(), &d) == nil {
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
