package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/sluice-ml/sluice/libs/auth"
)

// MaxPublishBytes bounds a published event's HTTP body (1 MiB); a longer one is answered 413.
const MaxPublishBytes = 1 << 20

// HTTP paths of the event gateway (hosted by `sluice dev` and by any service binary that mounts it).
const (
	// PublishPath takes one CloudEvent over HTTP (binary or structured mode, per the CloudEvents HTTP
	// binding) and publishes it; 202 with {"id": ...} once stored, 400 naming the problem otherwise.
	PublishPath = "/apis/events/v1/publish"
	// TailPath streams events as newline-delimited JSON (structured-mode CloudEvents with stream and
	// sequence extensions): ?type=<glob>&all=true replays what the streams hold first.
	TailPath = "/apis/events/v1/tail"
)

// Routes registers the event gateway on mux.
func (b *Bus) Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST "+PublishPath, b.servePublish)
	mux.HandleFunc("GET "+TailPath, b.serveTail)
}

func writeErr(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
}

func (b *Bus) servePublish(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, MaxPublishBytes)
	ev, err := cehttp.NewEventFromHTTPRequest(r)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		writeErr(w, http.StatusRequestEntityTooLarge, fmt.Errorf("publish: the event is larger than %d bytes", MaxPublishBytes))
		return
	}
	if err != nil {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("not a CloudEvent: %w", err))
		return
	}
	if err := ev.Validate(); err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	if err := ValidateType(ev.Type()); err != nil {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("type: %w", err))
		return
	}
	// Outside callers may publish request types only, into namespaces they may write; services publish
	// internal types over NATS (whose own permissions enforce the same split for the bus).
	if id, ok := auth.FromContext(r.Context()); ok {
		if !id.Service && !IsRequestType(ev.Type()) {
			writeErr(w, http.StatusForbidden, fmt.Errorf("publish: type %q is internal to Sluice; callers may publish request types (io.sluice.<domain>.<entity>.requested.v<major>) only", ev.Type()))
			return
		}
		SetAuthContext(ev, id)
	} else {
		// No gateway authenticated the caller (a handler on a bare mux): an authcontext it sent names
		// nobody Sluice checked, so it is dropped rather than passed on as the publisher ([Publisher]).
		ev.SetExtension("authtype", nil)
		ev.SetExtension("authid", nil)
	}
	if ns := Namespace(*ev); !auth.Allowed(r.Context(), ns, auth.RoleContributor) {
		writeErr(w, http.StatusForbidden, fmt.Errorf("publish: not allowed to write in namespace %q", ns))
		return
	}
	if err := b.Publish(r.Context(), *ev); err != nil {
		writeErr(w, http.StatusServiceUnavailable, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(map[string]string{"id": ev.ID(), "subject": SubjectFor(ev.Type())})
}

func (b *Bus) serveTail(w http.ResponseWriter, r *http.Request) {
	all, _ := strconv.ParseBool(r.URL.Query().Get("all"))
	ctx := r.Context()
	flusher, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	if flusher != nil {
		flusher.Flush()
	}
	enc := json.NewEncoder(w)
	err := b.Tail(r.Context(), r.URL.Query().Get("type"), all, func(rc Received) {
		if rc.Err != nil {
			if !auth.Allowed(ctx, DefaultNamespace, auth.RoleOwner) {
				return
			}
			_ = enc.Encode(map[string]any{"stream": rc.Stream, "sequence": rc.Sequence, "subject": rc.Subject, "error": rc.Err.Error()})
		} else {
			if !auth.Allowed(ctx, Namespace(rc.Event), auth.RoleViewer) {
				return
			}
			ev := rc.Event.Clone()
			forJSON(&ev)
			ev.SetExtension("stream", rc.Stream)
			ev.SetExtension("sequence", strconv.FormatUint(rc.Sequence, 10))
			_ = enc.Encode(ev)
		}
		if flusher != nil {
			flusher.Flush()
		}
	})
	if err != nil {
		_ = enc.Encode(map[string]string{"error": err.Error()})
	}
}
