// Package mlmd defines the ML Metadata repository: the operations every storage backend
// implements (per google/ml-metadata's metadata_store_service.proto, adapted), their query
// shapes and their errors. The node and edge types are the wire types of api/metadatav1.
package mlmd

import (
	"context"
	"errors"
	"fmt"

	"github.com/sluice-ml/sluice/services/metadata/api/metadatav1"
)

// Model types, shared with the wire contract.
type (
	Type             = metadatav1.Type
	Artifact         = metadatav1.Artifact
	Execution        = metadatav1.Execution
	Context          = metadatav1.Context
	Event            = metadatav1.Event
	Attribution      = metadatav1.Attribution
	Association      = metadatav1.Association
	ParentContext    = metadatav1.ParentContext
	Value            = metadatav1.Value
	LineageGraph     = metadatav1.LineageGraph
	ArtifactAndEvent = metadatav1.ArtifactAndEvent
)

// Errors returned by every Repo. Wrapped errors carry the detail (field path, id).
var (
	ErrNotFound        = errors.New("mlmd: not found")
	ErrAlreadyExists   = errors.New("mlmd: already exists")
	ErrInvalidArgument = errors.New("mlmd: invalid argument")
)

// invalid wraps ErrInvalidArgument with a field-path message.
func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidArgument, field, fmt.Sprintf(format, args...))
}

// Invalid returns an ErrInvalidArgument naming field, for backends and handlers.
func Invalid(field, format string, args ...any) error { return invalid(field, format, args...) }

// Direction of a lineage walk.
type Direction int

// Lineage directions. Upstream of an artifact = the executions that output it, their inputs,
// and so on; downstream = the executions that consumed it, their outputs, and so on.
const (
	Upstream Direction = iota + 1
	Downstream
	Bidirectional
)

// ParseDirection parses "upstream", "downstream" or "bidirectional" (also "both").
func ParseDirection(s string) (Direction, error) {
	switch s {
	case metadatav1.DirectionUpstream, "UPSTREAM", "up":
		return Upstream, nil
	case metadatav1.DirectionDownstream, "DOWNSTREAM", "down":
		return Downstream, nil
	case metadatav1.DirectionBidirectional, "BIDIRECTIONAL", "both", "":
		return Bidirectional, nil
	}
	return 0, invalid("direction", "must be upstream, downstream or bidirectional, got %q", s)
}

// MaxLineageHops bounds LineageQuery.MaxHops; MaxStartingNodes bounds the starting set
// (per MLMD's GetLineageSubgraph limit of 100 starting nodes).
const (
	MaxLineageHops   = 100
	MaxStartingNodes = 100
)

// LineageQuery asks for the lineage subgraph around starting nodes. One hop is
// node → event → node. Starting artifacts may be named by id or by uri (every artifact at
// that uri).
type LineageQuery struct {
	ArtifactIDs  []int64
	ArtifactURIs []string
	ExecutionIDs []int64
	Direction    Direction
	MaxHops      int
}

// Op is a comparison operator of a property predicate.
type Op string

// Comparison operators.
const (
	OpEq Op = "="
	OpNe Op = "!="
	OpLt Op = "<"
	OpLe Op = "<="
	OpGt Op = ">"
	OpGe Op = ">="
)

// PropertyPredicate compares a property (or custom property when Custom) with Value; the
// value's type picks the column compared, e.g. properties.accuracy.double_value > 0.95.
// Only int, double, string and bool values can be compared.
type PropertyPredicate struct {
	Custom bool
	Name   string
	Op     Op
	Value  Value
}

// Filter restricts a list; zero fields match everything and set fields are AND-ed.
type Filter struct {
	TypeName   string // type name (any version)
	Name       string
	URI        string // artifacts only
	ExternalID string
	ContextID  int64 // artifacts attributed to / executions associated with / contexts whose parent is ContextID
	// States filters artifacts by state or executions by last_known_state.
	States     []string
	Properties []PropertyPredicate
	// InNamespaces, when set, keeps only nodes whose namespace (custom property
	// metadatav1.NamespaceProperty; none = metadatav1.DefaultNamespace) is one of Namespaces; an empty
	// Namespaces then matches nothing. Unset, every namespace matches.
	InNamespaces bool
	Namespaces   []string
}

// DefaultPageSize and MaxPageSize bound ListRequest.PageSize.
const (
	DefaultPageSize = 20
	MaxPageSize     = 1000
)

// ListRequest pages through nodes in ascending id order. PageToken is the opaque token of the
// previous page; rows inserted while paging appear on later pages and never shift earlier ones.
type ListRequest struct {
	Filter    Filter
	PageSize  int
	PageToken string
}

// Page is one page of a list and the token of the next (empty on the last page).
type Page[T any] struct {
	Items         []T
	NextPageToken string
}

// CacheQuery looks up a reusable execution by cache fingerprint (custom property
// cache_fingerprint), optionally within one pipeline (context of type system.Pipeline named
// PipelineName).
type CacheQuery struct {
	Fingerprint  string
	PipelineName string
	// Namespace, when set, keeps to executions of that namespace (a run reuses only its own namespace's).
	Namespace string
}

// PutExecutionRequest is the atomic MLMD PutExecution.
type PutExecutionRequest = metadatav1.PutExecutionRequest

// PutExecutionResult carries the ids assigned by PutExecution, in request order.
type PutExecutionResult = metadatav1.PutExecutionResponse

// Repo is the metadata repository. Every implementation passes mlmdtest.RunContract.
//
// Put* insert nodes without an id and update nodes with one; nodes may name their type by
// TypeID or by Type (the name of the version-"" type, registered on first use with no declared
// properties). Declared Properties must match the type's property types. Names are unique per
// type (ErrAlreadyExists) and external ids are unique per node kind. Timestamps are
// server-assigned milliseconds.
type Repo interface {
	// PutTypes registers types, or extends existing ones (same kind, name, version) with new
	// properties; retyping a property is ErrAlreadyExists. Returns ids in order.
	PutTypes(ctx context.Context, types []Type) ([]int64, error)
	// GetTypes lists the types of one kind ordered by id.
	GetTypes(ctx context.Context, kind metadatav1.TypeKind) ([]Type, error)
	// GetTypesByID returns the types with the given ids (unknown ids are skipped).
	GetTypesByID(ctx context.Context, ids []int64) ([]Type, error)

	PutArtifacts(ctx context.Context, artifacts []Artifact) ([]int64, error)
	PutExecutions(ctx context.Context, executions []Execution) ([]int64, error)
	PutContexts(ctx context.Context, contexts []Context) ([]int64, error)
	// PutEvents records events; an event already recorded (same artifact, execution, type) is
	// left as is. A zero MillisecondsSinceEpoch is set to now.
	PutEvents(ctx context.Context, events []Event) error
	// PutAttributionsAndAssociations links nodes to contexts; existing links are kept.
	PutAttributionsAndAssociations(ctx context.Context, attributions []Attribution, associations []Association) error
	// PutParentContexts nests contexts; existing links are kept; a cycle is ErrInvalidArgument.
	PutParentContexts(ctx context.Context, links []ParentContext) error
	// PutExecution records an execution with its artifact/event pairs and contexts in one
	// transaction, associating the execution and attributing the artifacts to every context.
	// Executions and artifacts with an external id, and contexts by (type, name), are
	// upserted: repeating a request returns the same ids and changes nothing.
	PutExecution(ctx context.Context, req PutExecutionRequest) (PutExecutionResult, error)

	// Get*ByID return the nodes with the given ids in id order (unknown ids are skipped).
	GetArtifactsByID(ctx context.Context, ids []int64) ([]Artifact, error)
	GetExecutionsByID(ctx context.Context, ids []int64) ([]Execution, error)
	GetContextsByID(ctx context.Context, ids []int64) ([]Context, error)
	// List* page through nodes matching a filter in ascending id order.
	ListArtifacts(ctx context.Context, req ListRequest) (Page[Artifact], error)
	ListExecutions(ctx context.Context, req ListRequest) (Page[Execution], error)
	ListContexts(ctx context.Context, req ListRequest) (Page[Context], error)
	// GetEventsByExecutionIDs / GetEventsByArtifactIDs return events in recorded order.
	GetEventsByExecutionIDs(ctx context.Context, ids []int64) ([]Event, error)
	GetEventsByArtifactIDs(ctx context.Context, ids []int64) ([]Event, error)
	// GetParentContexts returns the parent links of the given child contexts.
	GetParentContexts(ctx context.Context, childIDs []int64) ([]ParentContext, error)

	// GetExecutionByFingerprint returns the newest COMPLETE execution whose custom property
	// cache_fingerprint equals q.Fingerprint, or ErrNotFound.
	GetExecutionByFingerprint(ctx context.Context, q CacheQuery) (Execution, error)
	// GetLineageSubgraph walks events from the starting nodes up to MaxHops in one recursive
	// query and returns each reached node and traversed event once, with their types,
	// contexts, attributions, associations and parent contexts.
	GetLineageSubgraph(ctx context.Context, q LineageQuery) (LineageGraph, error)

	Ingester

	// Close releases the database.
	Close() error
}

// IngestRequest is the lineage record of one source event (a CloudEvent read from the bus),
// applied by Repo.Ingest exactly once per (Source, SourceID) in one transaction: per
// CloudEvents 1.0 (spec.md, "id"), source + id identify an event, so two events with the same
// id from different sources are two events.
//
// Nodes are matched so that every event of one subject lands on the same records, whatever
// the order they arrive in:
//   - Contexts are upserted by (type, name); custom properties are merged (new values win).
//   - Execution (optional) is upserted by ExternalID (required). Its state only moves
//     forward: UNKNOWN < NEW < RUNNING < terminal (COMPLETE, FAILED, CACHED, CANCELED), and a
//     terminal state is never replaced, so a late "started" event cannot undo "succeeded".
//     Its type and name are those of the first record; custom properties are merged.
//   - Artifacts are upserted by ExternalID (required); type, name and uri are those of the
//     first record, a non-UNKNOWN state replaces the stored one, custom properties are merged.
//     An artifact with an Event is linked to Execution (event types and paths as in
//     PutExecution; an already recorded (artifact, execution, type) is kept).
//   - The execution is associated with, and every artifact attributed to, every context;
//     ParentContexts nest Contexts[Child] under Contexts[Parent].
type IngestRequest struct {
	// Source is the CloudEvent source, SourceID its id (both required); SourceType its type
	// (kept for audit).
	Source     string
	SourceID   string
	SourceType string
	Contexts   []Context
	// ParentContexts index into Contexts.
	ParentContexts []ContextLink
	Execution      *Execution
	Artifacts      []IngestArtifact
}

// ContextLink nests Contexts[Child] under Contexts[Parent] of an IngestRequest.
type ContextLink struct{ Child, Parent int }

// IngestArtifact is an artifact of an IngestRequest with its optional event (ArtifactID and
// ExecutionID of the event are filled in by Ingest).
type IngestArtifact struct {
	Artifact Artifact
	Event    *Event
}

// IngestResult reports what Ingest did. Applied is false when (Source, SourceID) was already recorded;
// the ids are then zero.
type IngestResult struct {
	Applied     bool
	ExecutionID int64
	ArtifactIDs []int64
	ContextIDs  []int64
}

// Ingester applies source events exactly once. Every Repo of this service implements it.
type Ingester interface {
	// Ingest records req and its (Source, SourceID) in one transaction; a source event already
	// recorded changes nothing (Applied = false). Invalid requests are ErrInvalidArgument naming the
	// field path.
	Ingest(ctx context.Context, req IngestRequest) (IngestResult, error)
	// IngestBatch records the requests of one batch in one transaction, with the records and
	// results Ingest would give them applied one by one in order (a (Source, SourceID) repeated
	// in the batch or already recorded is not applied again). errs[i] is the ErrInvalidArgument of a
	// request refused on its own, which is not recorded while the rest are; err is non-nil when
	// nothing was recorded (the caller may then apply the requests one by one with Ingest to
	// find the one the store refuses).
	IngestBatch(ctx context.Context, reqs []IngestRequest) (res []IngestResult, errs []error, err error)
	// IngestedCount returns how many source events have been applied.
	IngestedCount(ctx context.Context) (int64, error)
}
