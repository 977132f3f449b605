package platform_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sluice-ml/sluice/libs/platform"
)

type doc struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Replicas map[string]struct {
			Count int `json:"count"`
		} `json:"replicas"`
		Items []struct {
			Name string `json:"name"`
		} `json:"items"`
	} `json:"spec"`
}

func TestStrictDecodingNamesTheFieldPath(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		in, want string
	}{
		"top level":     {`{"kind":"TFJob","bogus_field":1}`, `"bogus_field" (at bogus_field)`},
		"nested":        {`{"spec":{"items":[{"name":"a"},{"name":"b","oops":2}]}}`, `spec.items[1].oops`},
		"in a map":      {`{"spec":{"replicas":{"Worker":{"count":1,"cnt":2}}}}`, `spec.replicas.Worker.cnt`},
		"wrong type":    {`{"metadata":{"name":5}}`, `metadata.name`},
		"trailing data": {`{"kind":"a"} {}`, `data after the document`},
	} {
		t.Run(name, func(t *testing.T) {
			var d doc
			err := platform.StrictJSON([]byte(tc.in), &d)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	var d doc
	if err := platform.StrictYAML([]byte("kind: TFJob\nmetadata: {name: a}\nspec:\n  bogus: 1\n"), &d); !errors.Is(err, platform.ErrUnknownField) || !strings.Contains(err.Error(), "spec.bogus") {
		t.Fatalf("yaml: %v", err)
	}
	if err := platform.StrictYAML([]byte("kind: TFJob\nmetadata: {name: a}\n"), &d); err != nil || d.Metadata.Name != "a" {
		t.Fatalf("valid yaml: %v %+v", err, d)
	}
}

func TestBodyLimitAnswers413NamingTheLimit(t *testing.T) {
	t.Parallel()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var d doc
		if err := platform.DecodeJSON(w, r, 64, &d); err != nil {
			platform.WriteDecodeError(w, "create job", err)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/", strings.NewReader(`{"kind":"`+strings.Repeat("x", 100)+`"}`)))
	if rec.Code != http.StatusRequestEntityTooLarge || !strings.Contains(rec.Body.String(), "64 bytes") || !strings.Contains(rec.Body.String(), "create job") {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/", strings.NewReader(`{"kind":"a","x":1}`)))
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `create job: unknown field \"x\"`) {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
}

func TestPageTokens(t *testing.T) {
	t.Parallel()
	type pos struct {
		After string `json:"after"`
	}
	tok, err := platform.EncodePageToken(pos{After: "run-9"})
	if err != nil {
		t.Fatal(err)
	}
	var p pos
	if err := platform.DecodePageToken(tok, &p); err != nil || p.After != "run-9" {
		t.Fatalf("round trip: %v %+v", err, p)
	}
	for _, bad := range []string{"garbage", "p1.!!!", "p1." + "e30", "p1.eyJ4IjoxfQ"} {
		if err := platform.DecodePageToken(bad, &p); !errors.Is(err, platform.ErrBadPageToken) && bad != "p1.e30" {
			t.Errorf("%q: %v, want ErrBadPageToken", bad, err)
		}
	}
}

func TestStrictKeepingPassesKubernetesFields(t *testing.T) {
	t.Parallel()
	var d doc
	in := `{"kind":"TFJob","metadata":{"name":"a","uid":"u","labels":{"x":"y"}},"spec":{"items":[{"name":"a","template":{"spec":{"volumes":[]}}}]}}`
	if err := platform.StrictJSONKeeping([]byte(in), &d, "metadata", "spec.items.template"); err != nil {
		t.Fatalf("kept fields refused: %v", err)
	}
	bad := `{"kind":"TFJob","bogus_field":1,"metadata":{"name":"a","uid":"u"}}`
	if err := platform.StrictJSONKeeping([]byte(bad), &d, "metadata"); !errors.Is(err, platform.ErrUnknownField) || !strings.Contains(err.Error(), "bogus_field") {
		t.Fatalf("top-level unknown field: %v", err)
	}
}
