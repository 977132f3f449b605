package events

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

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
	ev, err := cehttp.NewEventFromHTTPRequest(r)
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
	flusher, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	if flusher != nil {
		flusher.Flush()
	}
	enc := json.NewEncoder(w)
	err := b.Tail(r.Context(), r.URL.Query().Get("type"), all, func(rc Received) {
		if rc.Err != nil {
			_ = enc.Encode(map[string]any{"stream": rc.Stream, "sequence": rc.Sequence, "subject": rc.Subject, "error": rc.Err.Error()})
		} else {
			ev := rc.Event.Clone()
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
