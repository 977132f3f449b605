package manifests

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/yaml"

	"github.com/sluice-ml/sluice/libs/events"
)

// charts are the official Helm charts infra/ takes NATS, Temporal and MinIO from.
var charts = map[string]string{
	"nats":     "https://nats-io.github.io/k8s/helm/charts",
	"temporal": "https://go.temporal.io/helm-charts",
	"minio":    "https://charts.min.io",
}

var pinned = regexp.MustCompile(`^\d+\.\d+\.\d+$`)

// values reads the values file of one helmCharts entry.
func values(t *testing.T, c types.HelmChart) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "infra", c.ValuesFile))
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatalf("%s: %v", c.ValuesFile, err)
	}
	return v
}

func get(t *testing.T, v map[string]any, path ...string) any {
	t.Helper()
	x, ok, err := unstructured.NestedFieldNoCopy(v, path...)
	if err != nil || !ok {
		t.Fatalf("values: no %s (%v)", strings.Join(path, "."), err)
	}
	return x
}

// TestInfraCharts: infra/kustomization.yaml names the three official charts with exact versions (helm is
// needed to render them, so this test reads them: kustomize's own types, strict) into sluice-infra; the
// values agree with base's configuration and secrets.sh: NATS has JetStream on and exactly the users and
// permissions of libs/events (as deploy/nats/nats.conf), MinIO and Temporal take their credentials from
// the Secrets secrets.sh makes, Temporal creates TEMPORAL_NAMESPACE, and the Services the charts name
// (fullnameOverride) are the hosts base's ConfigMap points at.
func TestInfraCharts(t *testing.T) {
	var kz types.Kustomization
	readYAML(t, "infra/kustomization.yaml", &kz)
	if kz.Namespace != "sluice-infra" {
		t.Errorf("namespace %q", kz.Namespace)
	}
	got := map[string]types.HelmChart{}
	for _, c := range kz.HelmCharts {
		got[c.Name] = c
		if charts[c.Name] != c.Repo || !pinned.MatchString(c.Version) || c.ReleaseName != c.Name || c.Namespace != "sluice-infra" {
			t.Errorf("helmCharts %s: repo %q version %q release %q namespace %q: want repo %q, an exact version", c.Name, c.Repo, c.Version, c.ReleaseName, c.Namespace, charts[c.Name])
		}
	}
	if len(got) != len(charts) || len(kz.HelmCharts) != len(charts) {
		t.Fatalf("helmCharts %v: want one each of %v", kz.HelmCharts, charts)
	}
	made := secretKeys(secrets(t))
	base := render(t, "base")
	cfg, _, _ := unstructured.NestedStringMap(find(base, "ConfigMap", "sluice", "sluice-config").Object, "data")
	host := func(hostport string) string {
		h, _, err := net.SplitHostPort(hostport)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	s3, err := url.Parse(cfg["S3_ENDPOINT"])
	if err != nil {
		t.Fatal(err)
	}

	nats := values(t, got["nats"])
	if get(t, nats, "config", "jetstream", "enabled") != true {
		t.Error("NATS: config.jetstream.enabled is not true")
	}
	if want := get(t, nats, "fullnameOverride").(string) + ".sluice-infra.svc.cluster.local"; host(cfg["NATS_HOSTPORT"]) != want {
		t.Errorf("NATS_HOSTPORT %q: the chart's Service is %s", cfg["NATS_HOSTPORT"], want)
	}
	users := get(t, nats, "config", "merge", "authorization", "users").([]any)
	env := get(t, nats, "container", "env").(map[string]any)
	var names []string
	for _, u := range users {
		u := u.(map[string]any)
		name := u["user"].(string)
		names = append(names, name)
		want, err := events.ServicePermissions(name)
		if name == events.GatewayUser {
			want, err = events.GatewayPermissions(), nil
		}
		if err != nil {
			t.Errorf("NATS user %q: %v", name, err)
			continue
		}
		perms := u["permissions"].(map[string]any)
		pub := fmt.Sprint(perms["publish"].(map[string]any)["allow"])
		sub := fmt.Sprint(perms["subscribe"].(map[string]any)["allow"])
		if pub != fmt.Sprint(want.Publish) || sub != fmt.Sprint(want.Subscribe) {
			t.Errorf("NATS user %s: publish %s subscribe %s, want %v %v (libs/events/natsusers.go)", name, pub, sub, want.Publish, want.Subscribe)
		}
		v := events.NATSPasswordVar(name)
		if u["password"] != "<< $"+v+" >>" {
			t.Errorf("NATS user %s: password %q, want the variable %s", name, u["password"], v)
		}
		ref, _, _ := unstructured.NestedStringMap(env, v, "valueFrom", "secretKeyRef")
		if !made["sluice-infra/"+ref["name"]][ref["key"]] || ref["key"] != name {
			t.Errorf("NATS container env %s: %v is not the user's key of a Secret secrets.sh makes in sluice-infra", v, ref)
		}
	}
	sort.Strings(names)
	var want []string
	for s := range events.ServiceEvents {
		want = append(want, s)
	}
	want = append(want, events.GatewayUser)
	sort.Strings(want)
	if fmt.Sprint(names) != fmt.Sprint(want) {
		t.Errorf("NATS users %v, want %v", names, want)
	}

	minio := values(t, got["minio"])
	if sec := get(t, minio, "existingSecret").(string); !made["sluice-infra/"+sec]["rootUser"] || !made["sluice-infra/"+sec]["rootPassword"] || !made["sluice/"+sec]["rootUser"] {
		t.Errorf("MinIO existingSecret %q: secrets.sh makes no rootUser/rootPassword of it in both namespaces", sec)
	}
	if want := get(t, minio, "fullnameOverride").(string) + ".sluice-infra.svc.cluster.local"; s3.Hostname() != want || s3.Port() != "9000" {
		t.Errorf("S3_ENDPOINT %q: MinIO's Service is %s:9000", cfg["S3_ENDPOINT"], want)
	}
	if !strings.Contains(fmt.Sprint(get(t, minio, "buckets")), "name:"+cfg["S3_BUCKET"]) {
		t.Errorf("MinIO buckets do not include S3_BUCKET %q", cfg["S3_BUCKET"])
	}

	temporal := values(t, got["temporal"])
	if want := get(t, temporal, "fullnameOverride").(string) + "-frontend.sluice-infra.svc.cluster.local"; host(cfg["TEMPORAL_ADDRESS"]) != want {
		t.Errorf("TEMPORAL_ADDRESS %q: the chart's frontend Service is %s", cfg["TEMPORAL_ADDRESS"], want)
	}
	for _, store := range []string{"default", "visibility"} {
		sec := get(t, temporal, "server", "config", "persistence", store, "sql", "existingSecret").(string)
		if !made["sluice-infra/"+sec]["password"] {
			t.Errorf("Temporal %s store: existingSecret %q has no password from secrets.sh", store, sec)
		}
		if h := get(t, temporal, "server", "config", "persistence", store, "sql", "host"); find(readObjects(t, "infra/postgres.yaml"), "Service", "sluice-infra", h.(string)) == nil {
			t.Errorf("Temporal %s store: host %v is not postgres.yaml's Service", store, h)
		}
	}
	if !strings.Contains(fmt.Sprint(get(t, temporal, "server", "config", "namespaces", "namespace")), "name:"+cfg["TEMPORAL_NAMESPACE"]) {
		t.Errorf("Temporal does not create TEMPORAL_NAMESPACE %q", cfg["TEMPORAL_NAMESPACE"])
	}
	for _, r := range kz.Resources {
		if _, err := os.Stat(filepath.Join(dir, "infra", r)); err != nil {
			t.Errorf("resource %s: %v", r, err)
		}
	}
}
