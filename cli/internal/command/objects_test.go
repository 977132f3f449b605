package command

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-ml/sluice/libs/platform"
	pipelinesapp "github.com/sluice-ml/sluice/services/pipelines/app"
)

// The secret and configmap verbs send Kubernetes-shaped objects to the pipelines service's namespaced
// paths (a secret's values base64, a file's content under its key) and print names and keys, never a
// secret's values. The server is a recording stand-in that decodes bodies as strictly as the service
// (whose API is tested in services/pipelines/app TestSecretsAndConfigMapsAPI).
func TestSecretAndConfigMapVerbs(t *testing.T) {
	var got []pipelinesapp.ObjectBody
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.Method+" "+r.URL.Path)
		w.Header().Set("Content-Type", "application/json")
		switch r.Method {
		case http.MethodPost:
			b, _ := io.ReadAll(r.Body)
			var ob pipelinesapp.ObjectBody
			if err := platform.StrictJSON(b, &ob); err != nil {
				w.WriteHeader(400)
				_, _ = w.Write([]byte(`{"error":"` + err.Error() + `"}`))
				return
			}
			got = append(got, ob)
			w.WriteHeader(201)
			_, _ = w.Write(b)
		case http.MethodGet:
			_ = json.NewEncoder(w).Encode(pipelinesapp.ObjectList{Kind: "SecretList", Items: []pipelinesapp.ObjectBody{
				{Metadata: pipelinesapp.ObjectMeta{Name: "db"}, Keys: []string{"password", "user"}}}})
		case http.MethodDelete:
			w.WriteHeader(204)
		}
	}))
	t.Cleanup(srv.Close)
	run := func(args ...string) (string, error) {
		var out, errw bytes.Buffer
		root := NewRoot(&out, &errw)
		root.SetArgs(append([]string{"--server", srv.URL}, args...))
		err := root.Execute()
		return out.String(), err
	}
	pw := filepath.Join(t.TempDir(), "pw.txt")
	if err := os.WriteFile(pw, []byte("pa55\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := run("secret", "create", "db", "-n", "team-a", "--from-literal", "user=alice", "--from-file", "password="+pw)
	if err != nil || out != "secret team-a/db created (keys: password, user)\n" {
		t.Fatalf("create: %q %v", out, err)
	}
	if want := map[string]string{"user": base64.StdEncoding.EncodeToString([]byte("alice")), "password": base64.StdEncoding.EncodeToString([]byte("pa55\n"))}; len(got) != 1 ||
		got[0].Metadata.Name != "db" || got[0].Data["user"] != want["user"] || got[0].Data["password"] != want["password"] {
		t.Fatalf("sent %+v", got)
	}
	out, err = run("configmap", "create", "settings", "-n", "team-a", "--from-file", pw)
	if err != nil || got[1].Data["pw.txt"] != "pa55\n" {
		t.Fatalf("configmap create: %q %v %+v", out, err, got)
	}
	out, err = run("secret", "list", "-n", "team-a")
	if err != nil || !strings.Contains(out, "db    password,user") || strings.Contains(out, "pa55") {
		t.Fatalf("list:\n%s %v", out, err)
	}
	if _, err := run("secret", "delete", "db", "-n", "team-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := run("secret", "create", "db", "--from-literal", "novalue"); err == nil || !strings.Contains(err.Error(), "KEY=VALUE") {
		t.Fatalf("a literal without = : %v", err)
	}
	want := []string{"POST /apis/v1/namespaces/team-a/secrets", "POST /apis/v1/namespaces/team-a/configmaps",
		"GET /apis/v1/namespaces/team-a/secrets", "DELETE /apis/v1/namespaces/team-a/secrets/db"}
	if strings.Join(paths, "\n") != strings.Join(want, "\n") {
		t.Fatalf("paths:\n%s", strings.Join(paths, "\n"))
	}
}
