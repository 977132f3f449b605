package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
)

// jobData is a training job's page: the job view, each replica with its TF_CONFIG pretty-printed and
// its attempts' log links, and Kubernetes-style events.
type jobData struct {
	trainingv1.JobView
	Rows   []replicaRow
	Events []k8sEvent
	Spec   string
}

type replicaRow struct {
	trainingv1.ReplicaView
	LogName  string
	TFConfig string
	Attempts []int
}

// k8sEvent is one row of the events table, shaped as `kubectl describe` shows events (type Normal or
// Warning, reason, time, source, message).
type k8sEvent struct {
	Type    string
	Reason  string
	Time    time.Time
	From    string
	Message string
}

// jobPage builds the page data of jv: the job's events come from its status conditions (each a
// transition training-operator records with a reason such as TFJobRunning) and from each replica's
// current attempt (started, exited with its code, backing off before a restart), newest first.
func jobPage(jv trainingv1.JobView) jobData {
	d := jobData{JobView: jv}
	from := strings.ToLower(jv.Kind) + "-controller"
	if st := jv.Job.Status(); st != nil {
		for _, c := range st.Conditions {
			typ := "Normal"
			if c.Type == trainingv1.JobFailed || c.Type == trainingv1.JobRestarting {
				typ = "Warning"
			}
			reason := c.Reason
			if reason == "" {
				reason = jv.Kind + string(c.Type)
			}
			t := c.LastTransitionTime.Time
			if t.IsZero() {
				t = c.LastUpdateTime.Time
			}
			d.Events = append(d.Events, k8sEvent{Type: typ, Reason: reason, Time: t, From: from, Message: c.Message})
		}
	}
	for _, r := range jv.Replicas {
		row := replicaRow{ReplicaView: r, LogName: r.LogName()}
		for n := r.Attempt; n >= 1; n-- {
			row.Attempts = append(row.Attempts, n)
		}
		if r.TFConfig != "" {
			var b bytes.Buffer
			if json.Indent(&b, []byte(r.TFConfig), "", "  ") == nil {
				row.TFConfig = b.String()
			} else {
				row.TFConfig = r.TFConfig
			}
		}
		d.Rows = append(d.Rows, row)
		if r.StartedAt != nil {
			d.Events = append(d.Events, k8sEvent{Type: "Normal", Reason: "Started", Time: *r.StartedAt, From: from,
				Message: fmt.Sprintf("Started replica %s (attempt %d)", r.Name, r.Attempt)})
		}
		if r.ExitCode != nil {
			typ := "Normal"
			if *r.ExitCode != 0 {
				typ = "Warning"
			}
			var t time.Time
			if r.StartedAt != nil {
				t = *r.StartedAt
			}
			d.Events = append(d.Events, k8sEvent{Type: typ, Reason: "ExitedWithCode", Time: t, From: from,
				Message: fmt.Sprintf("Replica %s exited with code %d (%s)", r.Name, *r.ExitCode, r.Reason)})
		}
		if r.RestartAt != nil {
			d.Events = append(d.Events, k8sEvent{Type: "Warning", Reason: "BackOff", Time: *r.RestartAt, From: from,
				Message: fmt.Sprintf("Back-off restarting failed replica %s; next attempt at %s", r.Name, r.RestartAt.UTC().Format(time.RFC3339))})
		}
	}
	sort.SliceStable(d.Events, func(i, j int) bool { return d.Events[i].Time.After(d.Events[j].Time) })
	if b, err := json.MarshalIndent(jv.Job, "", "  "); err == nil {
		d.Spec = string(b)
	}
	return d
}
