package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/sluice-ml/sluice/libs/auth"
	"github.com/sluice-ml/sluice/libs/platform"
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
	"github.com/sluice-ml/sluice/services/pipelines/internal/catalog"
)

// Namespaces (KFP v2 multi-user mode): an experiment belongs to a namespace, a run and a recurring run
// to their experiment's, a pipeline to one namespace or to none (shared). Every route is a
// platform.ScopeResource route: the handler finds the resource's namespace and authorises with
// platform.Authorize, so a resource of a namespace the caller may not read is answered exactly as one
// that does not exist, and lists leave it out. Resources stored before namespaces belong to "default".

// errRunNotFound is a run that does not exist, or that the caller may not read.
var errRunNotFound = errors.New("run not found")

func runNotFound(id string) error { return fmt.Errorf("run %q: %w", id, errRunNotFound) }

// orDefault is the namespace of a resource stored without one.
func orDefault(ns string) string {
	if ns == "" {
		return catalog.DefaultNamespace
	}
	return ns
}

// namespaceParam reads the optional ?namespace= of a list or create (KFP v2's namespace query parameter).
// listNamespace is the ?namespace= of a list request, checked against the caller's role for the route in
// that namespace ("" lists everything the caller may read).
func listNamespace(r *http.Request) (string, error) {
	ns, err := namespaceParam(r)
	if err == nil && ns != "" {
		err = platform.AuthorizeIn(r, ns)
	}
	return ns, err
}

func namespaceParam(r *http.Request) (string, error) {
	ns := r.URL.Query().Get("namespace")
	if ns == "" {
		return "", nil
	}
	if err := auth.ValidNamespace(ns); err != nil {
		return "", &invalidError{problems: []string{"namespace: " + err.Error()}}
	}
	return ns, nil
}

// readable reports whether the caller of ctx may read namespace ns ("" = shared: everyone may).
func readable(ctx context.Context, ns string) bool {
	return ns == "" || auth.Allowed(ctx, ns, auth.RoleViewer)
}

// sharedWriter reports whether the caller of ctx may create or change shared pipelines: admins and
// services (and callers outside a gateway, as auth.Allowed).
func sharedWriter(ctx context.Context) bool {
	id, ok := auth.FromContext(ctx)
	if !ok {
		_, dok := auth.DeciderFrom(ctx)
		return !dok
	}
	return id.Admin || id.Service
}

// authorizePipeline checks the caller of r against pipeline p for r's route: a pipeline of a namespace
// it may not read is notFound; a shared pipeline is read by everyone and changed by admins only.
func authorizePipeline(r *http.Request, p catalog.Pipeline, notFound error) error {
	if p.Namespace != "" {
		return platform.Authorize(r, p.Namespace, notFound)
	}
	if rule, _ := platform.RuleFor(r); rule.Role > auth.RoleViewer && !sharedWriter(r.Context()) {
		return fmt.Errorf("%w: %s: pipeline %q is shared (no namespace): only an admin may change it", platform.ErrForbidden, rule.Verb, p.ID)
	}
	return nil
}

// describeRun reads run id's workflow and its namespace; errRunNotFound unless it is a pipeline run (a
// run id, or the workflow ID a recurring run gave one of its runs; not a nested DAG's child workflow).
func (a *App) describeRun(ctx context.Context, id string) (*workflowservice.DescribeWorkflowExecutionResponse, string, error) {
	if id == "" || len(id) > 1000 {
		return nil, "", runNotFound(id)
	}
	desc, err := a.tc.DescribeWorkflowExecution(ctx, id, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return nil, "", runNotFound(id)
	}
	if err != nil {
		return nil, "", err
	}
	info := desc.WorkflowExecutionInfo
	if info == nil || info.Type == nil || info.Type.Name != pipelinesv1.WorkflowType {
		return nil, "", runNotFound(id)
	}
	ns := ""
	if info.Memo != nil {
		ns = memoString(info.Memo, "namespace")
	}
	return desc, orDefault(ns), nil
}

// authorizeRun finds run id and authorises the caller of r for r's route in the run's namespace.
func (a *App) authorizeRun(r *http.Request, id string) (*workflowservice.DescribeWorkflowExecutionResponse, string, error) {
	desc, ns, err := a.describeRun(r.Context(), id)
	if err != nil {
		return nil, "", err
	}
	if err := platform.Authorize(r, ns, runNotFound(id)); err != nil {
		return nil, "", err
	}
	return desc, ns, nil
}
