package workflow

import (
	"context"
	"strings"
	"testing"

	"github.com/sluice-ml/sluice/libs/auth"
)

func TestUIWorkflowURLEscapesChildIDs(t *testing.T) {
	got := UIWorkflowURL("http://127.0.0.1:8233/", "sluice", "run-1/square/batch-0")
	if want := "http://127.0.0.1:8233/namespaces/sluice/workflows/run-1%2Fsquare%2Fbatch-0"; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if UIWorkflowURL("", "sluice", "x") != "" {
		t.Fatal("a link without a UI base URL")
	}
}

func TestDetailsLinksUnderThePublicURL(t *testing.T) {
	SetPublicURL("")
	d := Details("Pipeline run x", [][2]string{{"Run ID", "r1"}, {"Experiment", ""}}, [2]string{"Run page", "/ui/runs/r1"})
	if !strings.Contains(d, "- **Run ID:** `r1`") || strings.Contains(d, "Experiment") || !strings.Contains(d, "- **Run page:** `/ui/runs/r1`") {
		t.Fatalf("details without a public URL:\n%s", d)
	}
	SetPublicURL("https://sluice.example.com/")
	defer SetPublicURL("")
	d = Details("Pipeline run x", nil, [2]string{"Run page", "/ui/runs/r1"})
	if !strings.Contains(d, "- [Run page](https://sluice.example.com/ui/runs/r1)") {
		t.Fatalf("details with a public URL:\n%s", d)
	}
}

func TestAttributesLeaveEmptyKeywordsUnset(t *testing.T) {
	sa := Attributes("TFJob", "kubeflow", Keyword(SAJobName, "mnist"), Keyword(SAOwner, ""))
	if v, _ := sa.GetKeyword(SAKind); v != "TFJob" {
		t.Fatalf("SluiceKind = %q", v)
	}
	if v, _ := sa.GetKeyword(SAJobName); v != "mnist" {
		t.Fatalf("SluiceJobName = %q", v)
	}
	if _, ok := sa.GetKeyword(SAOwner); ok {
		t.Fatal("an empty owner is set")
	}
	if len(SearchAttributeTypes()) != 9 {
		t.Fatalf("%d search attributes", len(SearchAttributeTypes()))
	}
}

func TestOwnerIsTheCallerElseThePublisher(t *testing.T) {
	ctx := context.Background()
	pub := auth.WithPublisher(ctx, auth.Identity{Subject: "carl"})
	both := auth.WithIdentity(pub, auth.Identity{Subject: "olivia"})
	for _, c := range []struct {
		ctx  context.Context
		want string
	}{{ctx, ""}, {pub, "carl"}, {both, "olivia"}} {
		if got := Owner(c.ctx); got != c.want {
			t.Fatalf("Owner = %q, want %q (an authenticated caller, else the publisher)", got, c.want)
		}
	}
}
