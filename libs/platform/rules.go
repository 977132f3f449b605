package platform

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/sluice-ml/sluice/libs/auth"
)

// Scope says how a route finds the namespace it is authorised against.
type Scope int

const (
	// ScopePublic routes need no credential (/healthz, /readyz).
	ScopePublic Scope = iota
	// ScopeAuthenticated routes need any valid identity; the handler authorises further what the route
	// cannot show (each event's namespace on publish and tail, the namespaces a caller may list).
	ScopeAuthenticated
	// ScopePath routes take the namespace from the path wildcard named by Rule.Namespace.
	ScopePath
	// ScopeFixed routes belong to the one namespace named by Rule.Namespace (services whose resources are
	// not namespaced yet belong to DefaultNamespace).
	ScopeFixed
	// ScopeAdmin routes are for admins and services only.
	ScopeAdmin
	// ScopeResource routes act on resources whose namespace the route cannot show (a run, an experiment or
	// a lineage record found by id; a create whose namespace is in the body): the guard authenticates,
	// then the handler authorises Rule.Role in the resource's namespace with [Allowed], answering a
	// resource the caller may not read exactly as one that does not exist (no existence oracle), and
	// leaving out of lists what the caller may not read.
	ScopeResource
)

// DefaultNamespace holds the resources of routes that carry no namespace (pipelines, runs, experiments).
const DefaultNamespace = "default"

// Rule is the authorization entry of one route: the pattern exactly as the service registers it on the
// mux, the verb (for messages and docs), the scope and the least role needed.
type Rule struct {
	Pattern   string
	Verb      string
	Scope     Scope
	Namespace string
	Role      auth.Role
	// Browser routes also accept the token as a "token" query parameter or the notebook cookie.
	Browser bool
	// LoginPage, on a browser page, sends a GET or HEAD without a valid credential there (303, with the
	// page in ?next=) instead of answering 401.
	LoginPage string
}

func inPath(pattern, verb string, role auth.Role) Rule {
	return Rule{Pattern: pattern, Verb: verb, Scope: ScopePath, Namespace: "ns", Role: role}
}

func inResource(pattern, verb string, role auth.Role) Rule {
	return Rule{Pattern: pattern, Verb: verb, Scope: ScopeResource, Role: role}
}

func anyone(pattern, verb string) Rule {
	return Rule{Pattern: pattern, Verb: verb, Scope: ScopeAuthenticated}
}

// Rules is the route table of every Sluice API: the gateway refuses (403) a route that has no entry here,
// so a new route cannot be served before it is given one, and the authorization matrix test is generated
// from this table. Keep it sorted by service.
var Rules = func() []Rule {
	const (
		v, c, o = auth.RoleViewer, auth.RoleContributor, auth.RoleOwner
		jobs    = "/apis/training/v1/namespaces/{ns}/jobs"
		deps    = "/apis/serving/v1/namespaces/{ns}/deployments"
		nbs     = "/apis/notebooks/v1/namespaces/{ns}/notebooks"
		md      = "/apis/metadata/v1"
		nss     = "/apis/auth/v1/namespaces"
		tbs     = "/apis/tensorboard.kubeflow.org/v1alpha1/namespaces/{ns}/tensorboards"
		tb      = "/tensorboard/{ns}/{name}/"
		exps    = "/apis/tuning/v1/namespaces/{ns}/experiments"
	)
	return []Rule{
		// platform
		{Pattern: "GET /healthz", Verb: "health", Scope: ScopePublic},
		{Pattern: "GET /readyz", Verb: "readiness", Scope: ScopePublic},
		{Pattern: "GET /metrics", Verb: "metrics", Scope: ScopeAdmin},
		// auth: namespaces (profiles)
		anyone("GET /apis/auth/v1/whoami", "whoami"),
		anyone("GET /apis/auth/v1/check", "check"),
		// the gateway's forward-auth endpoint authenticates the forwarded request itself (verify.go)
		{Pattern: "GET " + VerifyPath, Verb: "verify (gateway forward auth)", Scope: ScopePublic},
		anyone("GET "+nss, "list namespaces"),
		anyone("POST "+nss, "create namespace"),
		inPath("GET "+nss+"/{ns}", "get namespace", v),
		inPath("POST "+nss+"/{ns}/members", "add member", o),
		// events gateway: the handler allows request types only, into namespaces the caller may write
		anyone("POST /apis/events/v1/publish", "publish events"),
		anyone("GET /apis/events/v1/tail", "tail events"),
		// pipelines, runs, experiments, recurring runs: namespaced as in KFP v2 multi-user mode (a run's
		// namespace is its experiment's; a pipeline with no namespace is shared, readable by every identity
		// and written by admins); the handler authorises in the resource's namespace
		inResource("POST /apis/v1/pipelines", "create pipeline", c),
		inResource("GET /apis/v1/pipelines", "list pipelines", v),
		inResource("GET /apis/v1/pipelines/{id}", "get pipeline", v),
		inResource("POST /apis/v1/pipelines/{id}/versions", "create pipeline version", c),
		inResource("GET /apis/v1/pipelines/{id}/versions", "list pipeline versions", v),
		inResource("GET /apis/v1/pipelines/{id}/versions/{vid}", "get pipeline version", v),
		inResource("GET /apis/v1/pipelines/{id}/graph", "get pipeline graph", v),
		inResource("POST /apis/v1/runs", "create run", c),
		inResource("GET /apis/v1/runs", "list runs", v),
		inResource("GET /apis/v1/runs/{id}", "get run", v),
		inResource("POST /apis/v1/runs/{id}/cancel", "cancel run", c),
		inResource("POST /apis/v1/runs/{id}/retry", "retry run", c),
		inResource("GET /apis/v1/runs/{id}/logs", "get run logs", v),
		inResource("GET /apis/v1/runs/{id}/graph", "get run graph", v),
		inResource("GET /apis/v1/runs/{id}/artifacts/{name}", "read run artifact", v),
		inResource("GET /apis/v1/runs/{id}/input", "get run input", v),
		inResource("POST /apis/v1/experiments", "create experiment", c),
		inResource("GET /apis/v1/experiments", "list experiments", v),
		inResource("GET /apis/v1/experiments/{id}", "get experiment", v),
		inResource("POST /apis/v1/recurringruns", "create recurring run", c),
		inResource("GET /apis/v1/recurringruns", "list recurring runs", v),
		inResource("DELETE /apis/v1/recurringruns/{id}", "delete recurring run", c),
		inResource("GET /apis/v1/recurringruns/{id}", "get recurring run", v),
		inResource("POST /apis/v1/recurringruns/{idverb}", "enable or disable recurring run", c),
		inResource("POST /apis/v1/recurringruns/{idverb}/{verb}", "enable or disable recurring run", c),
		// secrets and config maps read by kfp-kubernetes settings: a secret's values need a contributor
		inPath("POST /apis/v1/namespaces/{ns}/secrets", "create secret", c),
		inPath("GET /apis/v1/namespaces/{ns}/secrets", "list secrets (names and keys)", v),
		inPath("GET /apis/v1/namespaces/{ns}/secrets/{name}", "get secret", c),
		inPath("DELETE /apis/v1/namespaces/{ns}/secrets/{name}", "delete secret", c),
		inPath("POST /apis/v1/namespaces/{ns}/configmaps", "create config map", c),
		inPath("GET /apis/v1/namespaces/{ns}/configmaps", "list config maps", v),
		inPath("GET /apis/v1/namespaces/{ns}/configmaps/{name}", "get config map", v),
		inPath("DELETE /apis/v1/namespaces/{ns}/configmaps/{name}", "delete config map", c),
		// training
		inPath("POST "+jobs, "create job", c),
		inPath("GET "+jobs, "list jobs", v),
		inPath("GET "+jobs+"/{name}", "get job", v),
		inPath("DELETE "+jobs+"/{name}", "delete job", c),
		inPath("POST "+jobs+"/{name}/suspend", "suspend job", c),
		inPath("POST "+jobs+"/{name}/resume", "resume job", c),
		inPath("GET "+jobs+"/{name}/logs", "get job logs", v),
		// serving: control plane per namespace; the data plane (model names are global) needs an identity
		inPath("POST "+deps, "apply deployment", c),
		inPath("GET "+deps, "list deployments", v),
		inPath("GET "+deps+"/{name}", "get deployment", v),
		inPath("DELETE "+deps+"/{name}", "delete deployment", c),
		inPath("POST "+deps+"/{name}/promote", "promote deployment", c),
		anyone("/v1", "predict"),
		anyone("/v1/", "predict"),
		anyone("/v2", "infer"),
		anyone("/v2/", "infer"),
		// notebooks and their servers
		inPath("POST "+nbs, "create notebook", c),
		inPath("GET "+nbs, "list notebooks", v),
		inPath("GET "+nbs+"/{name}", "get notebook", v),
		inPath("DELETE "+nbs+"/{name}", "delete notebook", c),
		inPath("POST "+nbs+"/{name}", "stop or start notebook", c),
		{Pattern: "/notebook/{ns}/{name}/{rest...}", Verb: "use notebook", Scope: ScopePath, Namespace: "ns", Role: c, Browser: true},
		{Pattern: "/notebook/{ns}/{name}", Verb: "use notebook", Scope: ScopePath, Namespace: "ns", Role: c, Browser: true},
		// tuning: Katib experiments
		inPath("POST "+exps, "create experiment", c),
		inPath("GET "+exps, "list experiments", v),
		inPath("GET "+exps+"/{name}", "get experiment", v),
		inPath("GET "+exps+"/{name}/trials", "list trials", v),
		inPath("DELETE "+exps+"/{name}", "delete experiment", c),
		// tensorboards (hosted by the notebooks service) and their data API
		inPath("POST "+tbs, "create tensorboard", c),
		inPath("GET "+tbs, "list tensorboards", v),
		inPath("GET "+tbs+"/{name}", "get tensorboard", v),
		inPath("DELETE "+tbs+"/{name}", "delete tensorboard", c),
		{Pattern: "GET /tensorboard/{ns}/{name}", Verb: "view tensorboard", Scope: ScopePath, Namespace: "ns", Role: v, Browser: true},
		{Pattern: "GET " + tb + "{$}", Verb: "view tensorboard", Scope: ScopePath, Namespace: "ns", Role: v, Browser: true},
		{Pattern: "GET " + tb + "data/environment", Verb: "read tensorboard data", Scope: ScopePath, Namespace: "ns", Role: v, Browser: true},
		{Pattern: "GET " + tb + "data/runs", Verb: "read tensorboard data", Scope: ScopePath, Namespace: "ns", Role: v, Browser: true},
		{Pattern: "GET " + tb + "data/plugins_listing", Verb: "read tensorboard data", Scope: ScopePath, Namespace: "ns", Role: v, Browser: true},
		{Pattern: "GET " + tb + "data/plugin/scalars/tags", Verb: "read tensorboard data", Scope: ScopePath, Namespace: "ns", Role: v, Browser: true},
		{Pattern: "GET " + tb + "data/plugin/scalars/scalars", Verb: "read tensorboard data", Scope: ScopePath, Namespace: "ns", Role: v, Browser: true},
		{Pattern: "POST " + tb + "data/plugin/scalars/scalars_multirun", Verb: "read tensorboard data", Scope: ScopePath, Namespace: "ns", Role: v, Browser: true},
		// metadata: a lineage record belongs to the namespace of the run, job or deployment that produced
		// it (custom property "namespace"); reads are authorised per record, lists hold only what the
		// caller may read; writes come from the services over the bus, or from admins
		inResource("GET "+md+"/artifacts", "list artifacts", v),
		inResource("GET "+md+"/artifacts/{id}", "get artifact", v),
		inResource("GET "+md+"/artifacts/{id}/events", "list artifact events", v),
		inResource("GET "+md+"/executions", "list executions", v),
		{Pattern: "POST " + md + "/executions", Verb: "put execution", Scope: ScopeAdmin},
		inResource("GET "+md+"/executions/{id}", "get execution", v),
		inResource("GET "+md+"/executions/{id}/events", "list execution events", v),
		inResource("GET "+md+"/contexts", "list contexts", v),
		inResource("GET "+md+"/contexts/{id}", "get context", v),
		anyone("GET "+md+"/types", "list types"),
		{Pattern: "POST " + md + "/types", Verb: "put types", Scope: ScopeAdmin},
		inResource("GET "+md+"/lineage", "get lineage", v),
		inResource("GET "+md+"/cache", "look up cache", v),
		// dashboard: its pages call the APIs above with the caller's credential, so the pages themselves
		// only need an identity; sign-in and the static assets are public
		{Pattern: "GET /login", Verb: "sign-in page", Scope: ScopePublic},
		{Pattern: "POST /login", Verb: "sign in", Scope: ScopePublic},
		{Pattern: "POST /logout", Verb: "sign out", Scope: ScopePublic},
		{Pattern: "GET /ui/static/{file}", Verb: "dashboard assets", Scope: ScopePublic},
		{Pattern: "GET /favicon.ico", Verb: "dashboard icon", Scope: ScopePublic},
		page("GET /{$}", "dashboard home"),
		page("GET /ui/runs", "dashboard runs"),
		page("GET /ui/runs/{id}", "dashboard run"),
		page("GET /ui/runs/{id}/live", "dashboard run updates"),
		page("GET /ui/runs/{id}/logs", "dashboard task log"),
		page("POST /ui/runs/{id}/{action}", "dashboard run action"),
		page("GET /ui/pipelines", "dashboard pipelines"),
		page("POST /ui/pipelines", "dashboard pipeline upload"),
		page("GET /ui/pipelines/{id}", "dashboard pipeline"),
		page("POST /ui/pipelines/{id}/runs", "dashboard run form"),
		page("GET /ui/jobs", "dashboard training jobs"),
		page("GET /ui/jobs/{ns}/{name}", "dashboard training job"),
		page("GET /ui/jobs/{ns}/{name}/logs", "dashboard replica log"),
		page("GET /ui/lineage", "dashboard lineage"),
		page("GET /ui/notebooks", "dashboard notebooks"),
		page("POST /ui/notebooks", "dashboard notebook create"),
		page("POST /ui/notebooks/{ns}/{name}/{action}", "dashboard notebook action"),
		page("GET /ui/models", "dashboard models"),
		page("GET /ui/models/{ns}/{name}", "dashboard deployment"),
		page("POST /ui/models/{ns}/{name}/{action}", "dashboard deployment action"),
		page("GET /ui/notebooks/{ns}/{name}/connect", "dashboard notebook connect"),
		page("GET /ui/events", "dashboard events"),
		page("GET /ui/events/live", "dashboard events tail"),
		page("GET /ui/runs/{id}/artifacts/{name}", "dashboard artifact"),
		page("GET /ui/runs/{id}/artifacts/{name}/raw", "dashboard artifact content"),
		page("GET /ui/runs/{id}/clone", "dashboard run clone"),
		page("GET /ui/experiments", "dashboard experiments"),
		page("GET /ui/experiments/{id}", "dashboard experiment"),
		page("GET /ui/recurringruns", "dashboard recurring runs"),
		page("POST /ui/recurringruns/{id}/{action}", "dashboard recurring run action"),
		page("GET /ui/katib", "dashboard tuning experiments"),
		page("GET /ui/katib/{ns}/{name}", "dashboard tuning experiment"),
		page("GET /ui/tensorboards", "dashboard tensorboards"),
		page("GET /ui/tensorboards/{ns}/{name}", "dashboard tensorboard curves"),
	}
}()

var ruleIndex = func() map[string]Rule {
	m := make(map[string]Rule, len(Rules))
	for _, r := range Rules {
		m[r.Pattern] = r
	}
	return m
}()

// Allowed reports whether the caller of r holds, in namespace ns, the role the route table gives the
// route r was matched to (r.Pattern): the check of a [ScopeResource] handler once it knows the namespace
// of the resource it acts on. A route without an entry allows nobody; without a gateway (no identity in
// r's context, as in a service's unit tests) it allows, like [auth.Allowed].
func Allowed(r *http.Request, ns string) bool {
	rule, ok := ruleIndex[r.Pattern]
	if !ok {
		return false
	}
	if ns == "" {
		ns = DefaultNamespace
	}
	return auth.Allowed(r.Context(), ns, rule.Role)
}

// RuleFor returns the route table entry of the route r was matched to.
func RuleFor(r *http.Request) (Rule, bool) {
	rule, ok := ruleIndex[r.Pattern]
	return rule, ok
}

// ErrForbidden is a caller without the role a route needs in a namespace it may see (HTTP 403).
var ErrForbidden = errors.New("forbidden")

// AuthorizeIn checks that the caller of r holds the role of r's route in namespace ns (a create or a
// list naming its namespace); the error wraps ErrForbidden and names the verb, the caller and the role,
// as the guard's 403 does for namespaces in paths.
func AuthorizeIn(r *http.Request, ns string) error {
	if ns == "" {
		ns = DefaultNamespace
	}
	if Allowed(r, ns) {
		return nil
	}
	rule := ruleIndex[r.Pattern]
	id, _ := auth.FromContext(r.Context())
	return fmt.Errorf("%w: %s: %q may not %s in namespace %q (needs %s)", ErrForbidden, rule.Verb, id.Subject, rule.Verb, ns, rule.Role)
}

// Authorize checks the caller of r against a resource of namespace ns that the handler found by id: one
// the caller may not read is answered with notFound, the very error of a resource that does not exist
// (no existence oracle); one it may read but lacks the route's role for is an ErrForbidden (see
// [AuthorizeIn]).
func Authorize(r *http.Request, ns string, notFound error) error {
	if ns == "" {
		ns = DefaultNamespace
	}
	if !auth.Allowed(r.Context(), ns, auth.RoleViewer) {
		return notFound
	}
	return AuthorizeIn(r, ns)
}

// page is a dashboard page: any identity (the APIs it calls authorise the data), the sluice cookie
// accepted, and a browser without one sent to the sign-in page.
func page(pattern, verb string) Rule {
	return Rule{Pattern: pattern, Verb: verb, Scope: ScopeAuthenticated, Browser: true, LoginPage: "/login"}
}
