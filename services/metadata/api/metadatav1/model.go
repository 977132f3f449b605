// Package metadatav1 is the wire contract of the Sluice metadata service: the ML Metadata
// (MLMD) data model as JSON, and the request/response bodies of its REST API under
// /apis/metadata/v1.
//
// The model follows google/ml-metadata's metadata_store.proto: artifacts, executions and
// contexts are nodes with server-assigned ids, a type, an optional name unique per type, an
// optional globally unique external id, typed properties (declared by the type) and free-form
// custom properties; events link artifacts to executions with a path; attributions and
// associations link nodes to contexts; parent contexts nest contexts. Timestamps are
// milliseconds since the Unix epoch. JSON field names use the proto field names (snake_case).
package metadatav1

import (
	"encoding/json"
	"fmt"
)

// TypeKind says which node kind a Type describes.
type TypeKind string

// Node kinds of a Type.
const (
	ArtifactKind  TypeKind = "ARTIFACT"
	ExecutionKind TypeKind = "EXECUTION"
	ContextKind   TypeKind = "CONTEXT"
)

// PropertyType is the declared value type of a type property, per MLMD PropertyType.
type PropertyType string

// Property value types.
const (
	PropertyInt    PropertyType = "INT"
	PropertyDouble PropertyType = "DOUBLE"
	PropertyString PropertyType = "STRING"
	PropertyStruct PropertyType = "STRUCT"
	PropertyProto  PropertyType = "PROTO"
	PropertyBool   PropertyType = "BOOLEAN"
)

// Valid reports whether p is one of the declared property types.
func (p PropertyType) Valid() bool {
	switch p {
	case PropertyInt, PropertyDouble, PropertyString, PropertyStruct, PropertyProto, PropertyBool:
		return true
	}
	return false
}

// ProtoAny is a packed protocol buffer (google.protobuf.Any): type URL plus serialized bytes
// (base64 in JSON).
type ProtoAny struct {
	TypeURL string `json:"type_url"`
	Value   []byte `json:"value,omitempty"`
}

// Value is a property value; exactly one field is set (MLMD Value oneof).
type Value struct {
	IntValue    *int64          `json:"int_value,omitempty"`
	DoubleValue *float64        `json:"double_value,omitempty"`
	StringValue *string         `json:"string_value,omitempty"`
	StructValue json.RawMessage `json:"struct_value,omitempty"` // a JSON object (google.protobuf.Struct)
	ProtoValue  *ProtoAny       `json:"proto_value,omitempty"`
	BoolValue   *bool           `json:"bool_value,omitempty"`
}

// Int returns an int_value.
func Int(v int64) Value { return Value{IntValue: &v} }

// Double returns a double_value.
func Double(v float64) Value { return Value{DoubleValue: &v} }

// String returns a string_value.
func String(v string) Value { return Value{StringValue: &v} }

// Bool returns a bool_value.
func Bool(v bool) Value { return Value{BoolValue: &v} }

// Struct returns a struct_value holding the JSON encoding of v (which must encode to an object).
func Struct(v any) (Value, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return Value{}, fmt.Errorf("struct_value: %w", err)
	}
	return Value{StructValue: b}, nil
}

// Type returns the property type of the field that is set, or an error when zero or more
// than one field is set.
func (v Value) Type() (PropertyType, error) {
	var t PropertyType
	n := 0
	if v.IntValue != nil {
		t, n = PropertyInt, n+1
	}
	if v.DoubleValue != nil {
		t, n = PropertyDouble, n+1
	}
	if v.StringValue != nil {
		t, n = PropertyString, n+1
	}
	if v.StructValue != nil {
		t, n = PropertyStruct, n+1
	}
	if v.ProtoValue != nil {
		t, n = PropertyProto, n+1
	}
	if v.BoolValue != nil {
		t, n = PropertyBool, n+1
	}
	if n != 1 {
		return "", fmt.Errorf("exactly one of int_value, double_value, string_value, struct_value, proto_value, bool_value must be set, got %d", n)
	}
	return t, nil
}

// Type is an ArtifactType, ExecutionType or ContextType (MLMD). (kind, name, version) is unique.
// Properties may be added to an existing type, never removed or retyped.
type Type struct {
	ID          int64                   `json:"id,omitempty"`
	Kind        TypeKind                `json:"kind"`
	Name        string                  `json:"name"`
	Version     string                  `json:"version,omitempty"`
	Description string                  `json:"description,omitempty"`
	ExternalID  string                  `json:"external_id,omitempty"`
	Properties  map[string]PropertyType `json:"properties,omitempty"`
	// BaseType is the MLMD system base type, e.g. "DATASET", "MODEL", "TRAIN".
	BaseType string `json:"base_type,omitempty"`
}

// ArtifactState is the lifecycle state of an artifact, per MLMD Artifact.State.
type ArtifactState string

// Artifact states.
const (
	ArtifactUnknown           ArtifactState = "UNKNOWN"
	ArtifactPending           ArtifactState = "PENDING"
	ArtifactLive              ArtifactState = "LIVE"
	ArtifactMarkedForDeletion ArtifactState = "MARKED_FOR_DELETION"
	ArtifactDeleted           ArtifactState = "DELETED"
	ArtifactAbandoned         ArtifactState = "ABANDONED"
	ArtifactReference         ArtifactState = "REFERENCE"
)

// ArtifactStates lists every artifact state in MLMD enum order (index = stored code).
var ArtifactStates = []ArtifactState{ArtifactUnknown, ArtifactPending, ArtifactLive,
	ArtifactMarkedForDeletion, ArtifactDeleted, ArtifactAbandoned, ArtifactReference}

// ExecutionState is the last known state of an execution, per MLMD Execution.State.
type ExecutionState string

// Execution states. Lifecycle: NEW → RUNNING → COMPLETE | CACHED | FAILED | CANCELED.
const (
	ExecutionUnknown  ExecutionState = "UNKNOWN"
	ExecutionNew      ExecutionState = "NEW"
	ExecutionRunning  ExecutionState = "RUNNING"
	ExecutionComplete ExecutionState = "COMPLETE"
	ExecutionFailed   ExecutionState = "FAILED"
	ExecutionCached   ExecutionState = "CACHED"
	ExecutionCanceled ExecutionState = "CANCELED"
)

// ExecutionStates lists every execution state in MLMD enum order (index = stored code).
var ExecutionStates = []ExecutionState{ExecutionUnknown, ExecutionNew, ExecutionRunning,
	ExecutionComplete, ExecutionFailed, ExecutionCached, ExecutionCanceled}

// Artifact is an MLMD artifact: a piece of data (dataset, model, metrics...) at a URI.
type Artifact struct {
	ID int64 `json:"id,omitempty"`
	// TypeID or Type (the type name, version "") identifies the ArtifactType.
	TypeID                   int64            `json:"type_id,omitempty"`
	Type                     string           `json:"type,omitempty"`
	Name                     string           `json:"name,omitempty"`
	URI                      string           `json:"uri,omitempty"`
	ExternalID               string           `json:"external_id,omitempty"`
	State                    ArtifactState    `json:"state,omitempty"`
	Properties               map[string]Value `json:"properties,omitempty"`
	CustomProperties         map[string]Value `json:"custom_properties,omitempty"`
	CreateTimeSinceEpoch     int64            `json:"create_time_since_epoch,omitempty"`
	LastUpdateTimeSinceEpoch int64            `json:"last_update_time_since_epoch,omitempty"`
}

// Execution is an MLMD execution: one run of a component, training job, deployment...
type Execution struct {
	ID                       int64            `json:"id,omitempty"`
	TypeID                   int64            `json:"type_id,omitempty"`
	Type                     string           `json:"type,omitempty"`
	Name                     string           `json:"name,omitempty"`
	ExternalID               string           `json:"external_id,omitempty"`
	LastKnownState           ExecutionState   `json:"last_known_state,omitempty"`
	Properties               map[string]Value `json:"properties,omitempty"`
	CustomProperties         map[string]Value `json:"custom_properties,omitempty"`
	CreateTimeSinceEpoch     int64            `json:"create_time_since_epoch,omitempty"`
	LastUpdateTimeSinceEpoch int64            `json:"last_update_time_since_epoch,omitempty"`
}

// Context groups artifacts and executions (pipeline, pipeline run, experiment, training job,
// model deployment, notebook). Name is required and unique per type.
type Context struct {
	ID                       int64            `json:"id,omitempty"`
	TypeID                   int64            `json:"type_id,omitempty"`
	Type                     string           `json:"type,omitempty"`
	Name                     string           `json:"name"`
	ExternalID               string           `json:"external_id,omitempty"`
	Properties               map[string]Value `json:"properties,omitempty"`
	CustomProperties         map[string]Value `json:"custom_properties,omitempty"`
	CreateTimeSinceEpoch     int64            `json:"create_time_since_epoch,omitempty"`
	LastUpdateTimeSinceEpoch int64            `json:"last_update_time_since_epoch,omitempty"`
}

// EventType says how an execution used an artifact, per MLMD Event.Type.
type EventType string

// Event types. INPUT/OUTPUT are data actually read/written; DECLARED_* are the signature;
// INTERNAL_* are orchestrator bookkeeping; PENDING_OUTPUT is an output not yet written.
const (
	EventUnknown        EventType = "UNKNOWN"
	EventDeclaredOutput EventType = "DECLARED_OUTPUT"
	EventDeclaredInput  EventType = "DECLARED_INPUT"
	EventInput          EventType = "INPUT"
	EventOutput         EventType = "OUTPUT"
	EventInternalInput  EventType = "INTERNAL_INPUT"
	EventInternalOutput EventType = "INTERNAL_OUTPUT"
	EventPendingOutput  EventType = "PENDING_OUTPUT"
)

// EventTypes lists every event type in MLMD enum order (index = stored code).
var EventTypes = []EventType{EventUnknown, EventDeclaredOutput, EventDeclaredInput, EventInput,
	EventOutput, EventInternalInput, EventInternalOutput, EventPendingOutput}

// IsInput reports whether t records an execution consuming an artifact.
func (t EventType) IsInput() bool {
	return t == EventInput || t == EventDeclaredInput || t == EventInternalInput
}

// IsOutput reports whether t records an execution producing an artifact.
func (t EventType) IsOutput() bool {
	return t == EventOutput || t == EventDeclaredOutput || t == EventInternalOutput || t == EventPendingOutput
}

// Step is one element of an event path: a key (input/output name) or an index into a list.
type Step struct {
	Key   *string `json:"key,omitempty"`
	Index *int64  `json:"index,omitempty"`
}

// KeyStep returns a key step.
func KeyStep(k string) Step { return Step{Key: &k} }

// IndexStep returns an index step.
func IndexStep(i int64) Step { return Step{Index: &i} }

// EventPath locates the artifact within the execution's inputs/outputs, e.g. the second
// element of input list "data" is steps [{key:"data"},{index:1}].
type EventPath struct {
	Steps []Step `json:"steps,omitempty"`
}

// Event links an artifact and an execution. (artifact_id, execution_id, type) is unique, so
// recording the same event twice is a no-op. Events are returned in recorded order.
type Event struct {
	ArtifactID             int64      `json:"artifact_id"`
	ExecutionID            int64      `json:"execution_id"`
	Path                   *EventPath `json:"path,omitempty"`
	Type                   EventType  `json:"type"`
	MillisecondsSinceEpoch int64      `json:"milliseconds_since_epoch,omitempty"`
}

// Attribution links an artifact to a context.
type Attribution struct {
	ContextID  int64 `json:"context_id"`
	ArtifactID int64 `json:"artifact_id"`
}

// Association links an execution to a context.
type Association struct {
	ContextID   int64 `json:"context_id"`
	ExecutionID int64 `json:"execution_id"`
}

// ParentContext nests ChildID under ParentID.
type ParentContext struct {
	ChildID  int64 `json:"child_id"`
	ParentID int64 `json:"parent_id"`
}

// LineageGraph is a lineage subgraph: each node and edge appears exactly once. Contexts are
// those the returned artifacts/executions belong to (and their parents).
type LineageGraph struct {
	Types          []Type          `json:"types"`
	Artifacts      []Artifact      `json:"artifacts"`
	Executions     []Execution     `json:"executions"`
	Contexts       []Context       `json:"contexts"`
	Events         []Event         `json:"events"`
	Attributions   []Attribution   `json:"attributions"`
	Associations   []Association   `json:"associations"`
	ParentContexts []ParentContext `json:"parent_contexts"`
}
