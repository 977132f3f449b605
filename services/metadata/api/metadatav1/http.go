package metadatav1

// PathPrefix is the root of every metadata REST route.
const PathPrefix = "/apis/metadata/v1"

// Lineage directions (query parameter "direction" and LineageRequest.Direction).
const (
	DirectionUpstream      = "upstream"
	DirectionDownstream    = "downstream"
	DirectionBidirectional = "bidirectional"
)

// Cache custom-property names stored on executions (per KFP's cache contract).
const (
	// NamespaceProperty is the custom property holding the namespace a node belongs to: the namespace of
	// the run, training job or deployment that produced it (KFP records it on its pipeline run context).
	// A node without it (recorded before namespaces) belongs to DefaultNamespace. It is set once: a later
	// record of the same node from another namespace does not move it.
	NamespaceProperty = "namespace"
	// DefaultNamespace holds the nodes recorded without a namespace.
	DefaultNamespace = "default"
	// CacheFingerprintProperty holds hex(sha256(cache key)) on an execution.
	CacheFingerprintProperty = "cache_fingerprint"
	// CachedExecutionIDProperty holds the id of the execution a CACHED execution reused.
	CachedExecutionIDProperty = "cached_execution_id"
)

// ArtifactAndEvent pairs an artifact with the event linking it to the execution of a
// PutExecutionRequest. Artifact may be nil when Event.ArtifactID names an existing artifact;
// Event may be nil to only record the artifact (and attribute it to the contexts).
type ArtifactAndEvent struct {
	Artifact *Artifact `json:"artifact,omitempty"`
	Event    *Event    `json:"event,omitempty"`
}

// PutExecutionRequest is the body of POST /apis/metadata/v1/executions: it records an
// execution, its input/output artifacts with their events, and its contexts in one
// transaction (MLMD PutExecution). Nodes carrying an external_id (and contexts by type+name)
// are upserted, so repeating the request changes nothing.
type PutExecutionRequest struct {
	Execution          Execution          `json:"execution"`
	ArtifactEventPairs []ArtifactAndEvent `json:"artifact_event_pairs,omitempty"`
	Contexts           []Context          `json:"contexts,omitempty"`
}

// PutExecutionResponse returns the ids assigned, in request order.
type PutExecutionResponse struct {
	ExecutionID int64   `json:"execution_id"`
	ArtifactIDs []int64 `json:"artifact_ids"`
	ContextIDs  []int64 `json:"context_ids"`
}

// ListArtifactsResponse is one page of artifacts, ordered by id. NextPageToken is empty on the
// last page.
type ListArtifactsResponse struct {
	Artifacts     []Artifact `json:"artifacts"`
	NextPageToken string     `json:"next_page_token,omitempty"`
}

// ListExecutionsResponse is one page of executions, ordered by id.
type ListExecutionsResponse struct {
	Executions    []Execution `json:"executions"`
	NextPageToken string      `json:"next_page_token,omitempty"`
}

// ListContextsResponse is one page of contexts, ordered by id.
type ListContextsResponse struct {
	Contexts      []Context `json:"contexts"`
	NextPageToken string    `json:"next_page_token,omitempty"`
}

// ListEventsResponse lists events in recorded order.
type ListEventsResponse struct {
	Events []Event `json:"events"`
}

// ListTypesResponse lists types ordered by id.
type ListTypesResponse struct {
	Types []Type `json:"types"`
}

// PutTypesRequest registers or extends types; the response lists their ids in order.
type PutTypesRequest struct {
	Types []Type `json:"types"`
}

// PutTypesResponse carries the ids of PutTypesRequest.Types in order.
type PutTypesResponse struct {
	TypeIDs []int64 `json:"type_ids"`
}

// Error is the body of every non-2xx response. Messages name the offending field path,
// e.g. "artifact_event_pairs[1].event.type: unknown event type \"READ\"".
type Error struct {
	Error string `json:"error"`
}
