package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

const replicaSpec = `apiVersion: sluice.io/v1
kind: Pipeline
metadata:
  name: integration-replicas
spec:
  inputs:
    n: {type: STRING, default: "0"}
  tasks:
    hello:
      image: sluice-local/step:dev
      command: [sh, -c, 'echo "run $0 on $(hostname)"']
      args: ["{{inputs.n}}"]
      inputs:
        n: {fromInput: n}
`

type runSummary struct {
	RunID   string `json:"run_id"`
	RunName string `json:"run_name"`
	State   string `json:"state"`
}

// runsNamed lists every run (all pages) called name.
func runsNamed(t testing.TB, name string) ([]runSummary, error) {
	var out []runSummary
	token := ""
	for {
		var page struct {
			Runs          []runSummary `json:"runs"`
			NextPageToken string       `json:"next_page_token"`
		}
		u := st.url(t, "pipelines") + "/apis/v1/runs?page_size=1000"
		if token != "" {
			u += "&page_token=" + url.QueryEscape(token)
		}
		if _, err := getJSON(u, &page); err != nil {
			return nil, err
		}
		for _, r := range page.Runs {
			if r.RunName == name {
				out = append(out, r)
			}
		}
		if page.NextPageToken == "" {
			return out, nil
		}
		token = page.NextPageToken
	}
}

// d. Two replicas of the pipelines service share the run requests: 100 events carrying 90 distinct
// CloudEvent ids (10 ids sent twice — half with Nats-Msg-Id, so the stream drops them, half without,
// so the service itself must) start exactly 90 runs, and both replicas run some of them.
func TestTwoPipelinesReplicasDeduplicateAndShare(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), startupDeadline)
	defer cancel()
	if err := st.startService(ctx, "pipelines-2", "pipelines", nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.remove("pipelines-2") })
	hosts := map[string]bool{}
	for _, alias := range []string{"pipelines", "pipelines-2"} {
		h, err := docker("inspect", "-f", "{{.Config.Hostname}}", st.name(alias))
		if err != nil {
			t.Fatal(err)
		}
		hosts[h] = true
	}

	_, js := connectNATS(t)
	name := "integration replicas " + randomSuffix()
	ids := make([]string, 90)
	for i := range ids {
		ids[i] = newID(fmt.Sprintf("replica%02d", i))
	}
	publish := func(i int, withMsgID bool) {
		req := runRequest{RunName: name, Spec: replicaSpec, Parameters: map[string]any{"n": fmt.Sprint(i)}, DisableCache: true}
		if withMsgID {
			publishRunRequest(t, js, ids[i], req)
			return
		}
		publishRunRequestNoMsgID(t, js, ids[i], req)
	}
	for i := range ids {
		publish(i, true)
		if i < 10 {
			publish(i, i%2 == 0) // the duplicate
		}
	}

	waitFor(t, 10*time.Minute, "90 runs to succeed", func() (bool, string) {
		runs, err := runsNamed(t, name)
		if err != nil {
			return false, err.Error()
		}
		done := 0
		for _, r := range runs {
			if r.State == "SUCCEEDED" {
				done++
			}
		}
		return done == len(ids), fmt.Sprintf("%d runs, %d succeeded", len(runs), done)
	})
	runs, err := runsNamed(t, name)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, r := range runs {
		seen[r.RunID]++
	}
	if len(runs) != len(ids) || len(seen) != len(ids) {
		t.Fatalf("%d runs with %d distinct ids, want exactly %d", len(runs), len(seen), len(ids))
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("run %s started %d times", id, seen[id])
		}
	}

	ran := map[string]int{}
	for _, id := range ids {
		log := runLog(t, id, "hello")
		_, host, ok := strings.Cut(strings.TrimSpace(log), " on ")
		if !ok || !hosts[host] {
			t.Fatalf("run %s log %q: no replica hostname (replicas %v)", id, log, hosts)
		}
		ran[host]++
	}
	t.Logf("runs per replica: %v", ran)
	if len(ran) != 2 {
		keys := make([]string, 0, len(ran))
		for h := range ran {
			keys = append(keys, h)
		}
		sort.Strings(keys)
		t.Fatalf("runs ran on replicas %v, want both of %v", keys, hosts)
	}
}

func runLog(t testing.TB, id, task string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, st.url(t, "pipelines")+"/apis/v1/runs/"+url.PathEscape(id)+"/logs?task="+task, nil)
	resp, err := authorized(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("logs of %s: %s: %s", id, resp.Status, b)
	}
	return string(b)
}

// publishRunRequestNoMsgID publishes like publishRunRequest but without Nats-Msg-Id, so JetStream
// stores a duplicate and only the service's own deduplication (CE id = workflow id) can drop it.
func publishRunRequestNoMsgID(t testing.TB, js jetstream.JetStream, id string, req runRequest) {
	t.Helper()
	msg := buildRunRequest(t, id, req)
	msg.Header.Del(jetstream.MsgIDHeader)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		t.Fatalf("publish %s: %v", id, err)
	}
}
