package workflow

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	enums "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	sdkworkflow "go.temporal.io/sdk/workflow"

	"github.com/sluice-ml/sluice/libs/auth"
)

// Custom search attributes every Sluice workflow carries, so the Temporal Web UI's workflow list can be
// filtered by what a Sluice user knows (pipeline, job name, namespace) rather than by workflow ID. All are
// Keyword (exact match) except SAFailedTasks (KeywordList). They are registered per Temporal namespace by
// [RegisterSearchAttributes] (idempotent; run at every service start, by `sluice temporal setup`, and by
// the embedded dev stack before its server starts).
var (
	// SANamespace is the Kubernetes-style namespace of the Sluice resource ("kubeflow", "default").
	SANamespace = temporal.NewSearchAttributeKeyKeyword("SluiceNamespace")
	// SAKind is the resource kind: PipelineRun, PipelineDAG, TFJob, PyTorchJob, InferenceService,
	// Notebook, Tensorboard, Experiment.
	SAKind = temporal.NewSearchAttributeKeyKeyword("SluiceKind")
	// SAPipeline is a run's pipeline name.
	SAPipeline = temporal.NewSearchAttributeKeyKeyword("SluicePipeline")
	// SAExperiment is a run's experiment id, or a tuning experiment's name.
	SAExperiment = temporal.NewSearchAttributeKeyKeyword("SluiceExperiment")
	// SARunName is a pipeline run's display name.
	SARunName = temporal.NewSearchAttributeKeyKeyword("SluiceRunName")
	// SAJobName is the resource's name (training job, deployment, notebook, tensorboard, experiment).
	SAJobName = temporal.NewSearchAttributeKeyKeyword("SluiceJobName")
	// SAOwner is the user or service account that submitted the resource ("" when unknown).
	SAOwner = temporal.NewSearchAttributeKeyKeyword("SluiceOwner")
	// SAPhase is the resource's current phase or state as its API reports it (Running, Succeeded,
	// Failed, Restarting, Ready, …), upserted by the workflow as it changes.
	SAPhase = temporal.NewSearchAttributeKeyKeyword("SluicePhase")
	// SAFailedTasks lists the paths of a pipeline run's failed tasks, upserted as they fail.
	SAFailedTasks = temporal.NewSearchAttributeKeyKeywordList("SluiceFailedTasks")
)

// SearchAttributeTypes returns Sluice's custom search attributes by name with their index types.
func SearchAttributeTypes() map[string]enums.IndexedValueType {
	out := map[string]enums.IndexedValueType{}
	for _, k := range []temporal.SearchAttributeKeyKeyword{SANamespace, SAKind, SAPipeline, SAExperiment, SARunName, SAJobName, SAOwner, SAPhase} {
		out[k.GetName()] = enums.INDEXED_VALUE_TYPE_KEYWORD
	}
	out[SAFailedTasks.GetName()] = enums.INDEXED_VALUE_TYPE_KEYWORD_LIST
	return out
}

// registerWait bounds how long RegisterSearchAttributes waits for new attributes to become usable
// (the frontend's namespace cache refreshes every 2 s by default).
const registerWait = 30 * time.Second

// RegisterSearchAttributes adds the attributes of [SearchAttributeTypes] that namespace lacks, through the
// operator API, and returns their names (empty when all existed). Idempotent. When it added any, it waits
// until the frontend accepts a list query on them (the server's namespace cache refreshes periodically).
// An attribute that exists with another type is an error naming it.
func RegisterSearchAttributes(ctx context.Context, c client.Client, namespace string) ([]string, error) {
	op := c.OperatorService()
	have, err := op.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return nil, fmt.Errorf("workflow: list search attributes of namespace %s: %w", namespace, err)
	}
	want := SearchAttributeTypes()
	missing := map[string]enums.IndexedValueType{}
	for name, typ := range want {
		got, ok := have.GetCustomAttributes()[name]
		if !ok {
			got, ok = have.GetSystemAttributes()[name]
		}
		switch {
		case !ok:
			missing[name] = typ
		case got != typ:
			return nil, fmt.Errorf("workflow: search attribute %s exists in namespace %s as %s, Sluice needs %s", name, namespace, got, typ)
		}
	}
	if len(missing) == 0 {
		return nil, nil
	}
	_, err = op.AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: namespace, SearchAttributes: missing})
	var exists *serviceerror.AlreadyExists
	if err != nil && !errors.As(err, &exists) {
		return nil, fmt.Errorf("workflow: add search attributes to namespace %s: %w", namespace, err)
	}
	names := make([]string, 0, len(missing))
	for n := range missing {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, waitSearchAttributes(ctx, c, namespace, names)
}

// waitSearchAttributes polls a count query naming every attribute until the frontend accepts it.
func waitSearchAttributes(ctx context.Context, c client.Client, namespace string, names []string) error {
	ctx, cancel := context.WithTimeout(ctx, registerWait)
	defer cancel()
	var q []string
	for _, n := range names {
		q = append(q, n+" IS NULL")
	}
	query := strings.Join(q, " AND ")
	for {
		_, err := c.WorkflowService().CountWorkflowExecutions(ctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: namespace, Query: query})
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("workflow: search attributes %v added but not usable yet: %w", names, errors.Join(err, ctx.Err()))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// UIWorkflowURL is the Temporal Web UI page of the latest run of workflowID: uiBase (e.g.
// "http://127.0.0.1:8233") + "/namespaces/<ns>/workflows/<id>". Empty when uiBase is.
func UIWorkflowURL(uiBase, namespace, workflowID string) string {
	if uiBase == "" {
		return ""
	}
	return strings.TrimSuffix(uiBase, "/") + "/namespaces/" + url.PathEscape(namespace) + "/workflows/" + url.PathEscape(workflowID)
}

// Details renders a workflow's static details for the Temporal UI: a Markdown heading, then one
// "**key:** value" line per pair in order (pairs with an empty value are left out), then links as
// {title, target}: a target starting with "/" is a path of the Sluice API or dashboard, linked under
// [PublicURL] (shown as text while none is set).
// Values are rendered as inline code so names with Markdown characters stay literal.
func Details(title string, pairs [][2]string, links ...[2]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### %s\n\n", title)
	for _, p := range pairs {
		if p[1] == "" {
			continue
		}
		fmt.Fprintf(&b, "- **%s:** `%s`\n", p[0], strings.ReplaceAll(p[1], "`", "'"))
	}
	base := PublicURL()
	for _, l := range links {
		switch {
		case l[1] == "":
		case base == "" && strings.HasPrefix(l[1], "/"):
			fmt.Fprintf(&b, "- **%s:** `%s`\n", l[0], l[1])
		case strings.HasPrefix(l[1], "/"):
			fmt.Fprintf(&b, "- [%s](%s)\n", l[0], base+l[1])
		default:
			fmt.Fprintf(&b, "- [%s](%s)\n", l[0], l[1])
		}
	}
	return b.String()
}

// Attributes builds the typed search attributes of a workflow start from [AttributeUpdates].
func Attributes(kind, namespace string, more ...temporal.SearchAttributeUpdate) temporal.SearchAttributes {
	return temporal.NewSearchAttributes(AttributeUpdates(kind, namespace, more...)...)
}

// AttributeUpdates sets kind and resource namespace always, and every update of more that is not nil
// (see [Keyword]: a Keyword attribute set to "" would match `= ""` instead of `IS NULL`). For a start's
// TypedSearchAttributes use [Attributes]; for workflow.UpsertTypedSearchAttributes, this.
func AttributeUpdates(kind, namespace string, more ...temporal.SearchAttributeUpdate) []temporal.SearchAttributeUpdate {
	ups := []temporal.SearchAttributeUpdate{SAKind.ValueSet(kind)}
	if namespace != "" {
		ups = append(ups, SANamespace.ValueSet(namespace))
	}
	for _, u := range more {
		if u != nil {
			ups = append(ups, u)
		}
	}
	return ups
}

// Keyword returns the update setting key to v, or nil when v is empty (for [Attributes]).
func Keyword(key temporal.SearchAttributeKeyKeyword, v string) temporal.SearchAttributeUpdate {
	if v == "" {
		return nil
	}
	return key.ValueSet(v)
}

// Owner is the submitter of what is started under ctx: the subject of its authenticated identity (a REST
// call through the gateway), else of the publisher of the request event being handled
// ([auth.WithPublisher], set by the consumers through events.WithPublisher from the event's authcontext);
// "" when there is neither (an event published without authcontext, a test).
func Owner(ctx context.Context) string {
	if id, ok := auth.FromContext(ctx); ok {
		return id.Subject
	}
	if id, ok := auth.PublisherFrom(ctx); ok {
		return id.Subject
	}
	return ""
}

var publicURL atomic.Pointer[string]

// SetPublicURL sets the base URL under which users reach Sluice's API and dashboard (SLUICE_PUBLIC_URL,
// e.g. "https://sluice.example.com"; `sluice dev` uses its API address), for the links in workflow
// details. Called once at start-up by platform.Connect.
func SetPublicURL(u string) {
	u = strings.TrimSuffix(u, "/")
	publicURL.Store(&u)
}

// PublicURL is the base set by [SetPublicURL] ("" when none).
func PublicURL() string {
	if p := publicURL.Load(); p != nil {
		return *p
	}
	return ""
}

// WithSummary returns ctx with its activity options' Summary set: the line naming the activity in the
// Temporal Web UI's timeline and event history ("step download1 (attempt 2)"). User metadata is not
// compared on replay, so adding or changing a summary needs no workflow.GetVersion.
func WithSummary(ctx sdkworkflow.Context, summary string) sdkworkflow.Context {
	opts := sdkworkflow.GetActivityOptions(ctx)
	opts.Summary = summary
	return sdkworkflow.WithActivityOptions(ctx, opts)
}

// Phase reads the SluicePhase search attribute of workflow id's latest run as the Temporal server
// reports it (DescribeWorkflowExecution); "" when the workflow has not upserted one yet.
func Phase(ctx context.Context, c client.Client, id string) (string, error) {
	v, _, err := KeywordOf(ctx, c, id, SAPhase)
	return v, err
}

// KeywordOf reads the keyword search attribute key of workflow id's latest run as the Temporal server
// reports it (DescribeWorkflowExecution); ok is false when the workflow carries none (an empty [Keyword]
// is never set).
func KeywordOf(ctx context.Context, c client.Client, id string, key temporal.SearchAttributeKeyKeyword) (v string, ok bool, err error) {
	desc, err := c.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return "", false, err
	}
	p, ok := desc.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields()[key.GetName()]
	if !ok {
		return "", false, nil
	}
	if err := converter.GetDefaultDataConverter().FromPayload(p, &v); err != nil {
		return "", false, fmt.Errorf("%s of %s: %w", key.GetName(), id, err)
	}
	return v, true, nil
}
