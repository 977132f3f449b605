package app

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-ml/sluice/libs/auth"
	"github.com/sluice-ml/sluice/libs/events"
)

// The events page tails Sluice's CloudEvents live through the event gateway's public tail
// (GET /apis/events/v1/tail, newline-delimited structured-mode CloudEvents, each event shown only to a
// caller who may read its namespace), filtered here by type prefix, source prefix and namespace, and
// sent to the browser as server-sent events.

// eventFilter is the events page's filter form.
type eventFilter struct {
	TypePrefix string
	Source     string
	Namespace  string
	Replay     bool
}

// parseEventFilter reads the filter from q; errors name the field.
func parseEventFilter(q url.Values) (eventFilter, error) {
	f := eventFilter{TypePrefix: strings.TrimSpace(q.Get("type_prefix")), Source: strings.TrimSpace(q.Get("source")),
		Namespace: strings.TrimSpace(q.Get("namespace"))}
	f.Replay, _ = strconv.ParseBool(q.Get("replay"))
	if q.Get("replay") == "on" {
		f.Replay = true
	}
	if strings.Trim(f.TypePrefix, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") != "" {
		return f, fmt.Errorf("type_prefix: %q may hold letters, digits, '.', '-' and '_' only (e.g. io.sluice.training.)", f.TypePrefix)
	}
	if f.Namespace != "" {
		if err := auth.ValidNamespace(f.Namespace); err != nil {
			return f, fmt.Errorf("namespace: %w", err)
		}
	}
	return f, nil
}

// query is the filter as the page's own query string (for the live stream's URL).
func (f eventFilter) query() string {
	q := url.Values{}
	if f.TypePrefix != "" {
		q.Set("type_prefix", f.TypePrefix)
	}
	if f.Source != "" {
		q.Set("source", f.Source)
	}
	if f.Namespace != "" {
		q.Set("namespace", f.Namespace)
	}
	if f.Replay {
		q.Set("replay", "true")
	}
	return q.Encode()
}

// tailEvent is one event as the page shows it.
type tailEvent struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	Source    string `json:"source"`
	Subject   string `json:"subject,omitempty"`
	Time      string `json:"time,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Stream    string `json:"stream,omitempty"`
	Sequence  string `json:"sequence,omitempty"`
	// Data is the event's data as JSON text, cut at maxEventData bytes.
	Data string `json:"data,omitempty"`
}

const maxEventData = 4 << 10

// decodeTailLine reads one line of the tail: a structured-mode CloudEvent (ok) or a record the page
// does not show (an undecodable message, which the gateway reports to owners only, or an error).
func decodeTailLine(line []byte) (tailEvent, string, bool) {
	var raw struct {
		ID       string          `json:"id"`
		Type     string          `json:"type"`
		Source   string          `json:"source"`
		Subject  string          `json:"subject"`
		Time     string          `json:"time"`
		Stream   string          `json:"stream"`
		Sequence any             `json:"sequence"`
		Data     json.RawMessage `json:"data"`
		DataB64  string          `json:"data_base64"`
		Error    string          `json:"error"`
	}
	if err := json.Unmarshal(line, &raw); err != nil {
		return tailEvent{}, "tail: " + err.Error(), false
	}
	if raw.Type == "" {
		if raw.Error != "" {
			return tailEvent{}, raw.Error, false
		}
		return tailEvent{}, "", false
	}
	ev := tailEvent{ID: raw.ID, Type: raw.Type, Source: raw.Source, Subject: raw.Subject, Time: raw.Time, Stream: raw.Stream}
	if raw.Sequence != nil {
		ev.Sequence = fmt.Sprint(raw.Sequence)
	}
	var ns struct {
		Metadata struct {
			Namespace string `json:"namespace"`
		} `json:"metadata"`
		Namespace string `json:"namespace"`
	}
	if len(raw.Data) > 0 && json.Unmarshal(raw.Data, &ns) == nil {
		ev.Namespace = ns.Metadata.Namespace
		if ev.Namespace == "" {
			ev.Namespace = ns.Namespace
		}
	}
	if ev.Namespace == "" {
		ev.Namespace = events.DefaultNamespace
	}
	ev.Data = string(raw.Data)
	if ev.Data == "" && raw.DataB64 != "" {
		ev.Data = "(binary, base64) " + raw.DataB64
	}
	if len(ev.Data) > maxEventData {
		ev.Data = ev.Data[:maxEventData] + "…"
	}
	return ev, "", true
}

// match reports whether ev passes the filter (type and source by prefix, namespace exactly).
func (f eventFilter) match(ev tailEvent) bool {
	return strings.HasPrefix(ev.Type, f.TypePrefix) && strings.HasPrefix(ev.Source, f.Source) &&
		(f.Namespace == "" || ev.Namespace == f.Namespace)
}

type eventsData struct {
	Filter eventFilter
	Live   string
}

func (a *App) eventsPage(w http.ResponseWriter, r *http.Request) {
	f, err := parseEventFilter(r.URL.Query())
	if err != nil {
		a.render(w, r, http.StatusBadRequest, "events", view{Title: "Events", Nav: "events", Error: err.Error(), Data: eventsData{Filter: f}})
		return
	}
	a.render(w, r, http.StatusOK, "events", view{Title: "Events", Nav: "events", Data: eventsData{Filter: f, Live: "/ui/events/live?" + f.query()}})
}

// eventsLive streams the filtered tail as server-sent events: "cloudevent" per event (a tailEvent),
// "problem" when the tail refuses or breaks; a comment every 15 s keeps idle connections open.
func (a *App) eventsLive(w http.ResponseWriter, r *http.Request) {
	f, err := parseEventFilter(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c, err := a.callerFor(r)
	if err != nil {
		a.fail(w, r, "Events", err)
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	stream := *c
	stream.hc = &http.Client{Transport: a.hc.Transport} // no overall timeout: the tail lasts as long as the page
	q := url.Values{}
	if f.TypePrefix != "" {
		q.Set("type", f.TypePrefix+"*")
	}
	if f.Replay {
		q.Set("all", "true")
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	resp, err := stream.do(r.Context(), http.MethodGet, events.TailPath+"?"+q.Encode(), "", nil)
	if err != nil {
		fmt.Fprintf(w, "event: problem\ndata: %s\n\n", jsonLine(err.Error()))
		fl.Flush()
		return
	}
	defer resp.Body.Close()
	fmt.Fprint(w, ": tailing\n\n")
	fl.Flush()
	lines := make(chan []byte)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), events.MaxPublishBytes*2)
		for sc.Scan() {
			select {
			case lines <- append([]byte(nil), sc.Bytes()...):
			case <-r.Context().Done():
				return
			}
		}
	}()
	keep := time.NewTicker(15 * time.Second)
	defer keep.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-keep.C:
			fmt.Fprint(w, ": keep-alive\n\n")
		case line, ok := <-lines:
			if !ok {
				fmt.Fprintf(w, "event: problem\ndata: %s\n\n", jsonLine("the event tail ended"))
				fl.Flush()
				return
			}
			ev, problem, ok := decodeTailLine(line)
			switch {
			case ok && f.match(ev):
				b, _ := json.Marshal(ev)
				fmt.Fprintf(w, "event: cloudevent\ndata: %s\n\n", b)
			case !ok && problem != "":
				fmt.Fprintf(w, "event: problem\ndata: %s\n\n", jsonLine(problem))
			default:
				continue
			}
		}
		fl.Flush()
	}
}
