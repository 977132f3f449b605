package nbspec_test

import (
	"strings"
	"testing"

	"github.com/sluice-ml/sluice/services/notebooks/internal/nbspec"
)

// security/create-unknown-fields, notebooks' share: an unknown field is a 400 naming its path in both
// forms, while the pod template's Kubernetes fields pass as Kubeflow writes them.
func TestUnknownFieldsAreRefusedByPath(t *testing.T) {
	t.Parallel()
	kf := `{"apiVersion":"kubeflow.org/v1","kind":"Notebook","metadata":{"name":"n","namespace":"team-a","uid":"u"},"bogus_field":1,
 "spec":{"template":{"spec":{"volumes":[{"name":"v"}],"containers":[{"name":"n","image":"jupyter/base-notebook"}]}}}}`
	if _, err := nbspec.Parse([]byte(kf), "default"); err == nil || !strings.Contains(err.Error(), "bogus_field") {
		t.Fatalf("Kubeflow form with bogus_field: %v", err)
	}
	if _, err := nbspec.Parse([]byte(strings.Replace(kf, `"bogus_field":1,`, "", 1)), "default"); err != nil {
		t.Fatalf("Kubeflow form with pod fields: %v", err)
	}
	if _, err := nbspec.Parse([]byte(`{"name":"n","image":"x","imagePullPolicy":"Always"}`), "team-a"); err == nil || !strings.Contains(err.Error(), "imagePullPolicy") {
		t.Fatalf("local form with an unknown field: %v", err)
	}
}
