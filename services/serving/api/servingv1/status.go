package servingv1

import (
	"time"
)

// Temporal wiring of the deployment workflow.
const (
	// TaskQueue is the serving service's Temporal task queue.
	TaskQueue = "sluice-serving"
	// WorkflowType is the registered name of the deployment workflow.
	WorkflowType = "serving.Deployment"
	// QueryStatus returns the DeploymentView.
	QueryStatus = "status"
	// SignalUpdate carries a new Deployment spec (a new revision when the model changes).
	SignalUpdate = "update"
	// SignalPromote moves all traffic to the latest revision (canaryTrafficPercent 100).
	SignalPromote = "promote"
	// SignalDelete unloads the model and ends the workflow.
	SignalDelete = "delete"
	// SignalReconcile re-applies the desired data-plane state (sent by a restarted service).
	SignalReconcile = "reconcile"
)

// WorkflowID is the business key of a deployment's workflow: "deployment/<namespace>/<name>".
func WorkflowID(namespace, name string) string { return "deployment/" + namespace + "/" + name }

// Condition types and reasons (KServe InferenceService status).
const (
	ConditionPredictorReady = "PredictorReady"
	ConditionReady          = "Ready"

	TransitionUpToDate            = "UpToDate"
	TransitionInProgress          = "InProgress"
	TransitionBlockedByFailedLoad = "BlockedByFailedLoad"
	TransitionInvalidSpec         = "InvalidSpec"

	ModelStatePending      = "Pending"
	ModelStateLoading      = "Loading"
	ModelStateLoaded       = "Loaded"
	ModelStateFailedToLoad = "FailedToLoad"
)

// Condition is a KServe/Knative status condition.
type Condition struct {
	Type               string    `json:"type"`
	Status             string    `json:"status"` // True | False | Unknown
	Reason             string    `json:"reason,omitempty"`
	Message            string    `json:"message,omitempty"`
	LastTransitionTime time.Time `json:"lastTransitionTime"`
}

// FailureInfo is modelStatus.lastFailureInfo.
type FailureInfo struct {
	Reason   string    `json:"reason"`
	Message  string    `json:"message"`
	Location string    `json:"location,omitempty"`
	Time     time.Time `json:"time"`
}

// ModelStates is modelStatus.states.
type ModelStates struct {
	ActiveModelState string `json:"activeModelState"`
	TargetModelState string `json:"targetModelState,omitempty"`
}

// ModelStatus is status.modelStatus.
type ModelStatus struct {
	TransitionStatus string       `json:"transitionStatus"`
	States           ModelStates  `json:"states"`
	LastFailureInfo  *FailureInfo `json:"lastFailureInfo,omitempty"`
}

// Revision is one rolled-out model: a base path and the version loaded from it.
type Revision struct {
	// Name is "<name>-predictor-<NNNNN>", numbered from 1 per deployment.
	Name       string `json:"name"`
	StorageURI string `json:"storageUri"`
	Version    int64  `json:"modelVersion"`
	// ModelURI is the model file's URI; Digest its "sha256:<hex>" when the store records one.
	ModelURI string `json:"modelUri,omitempty"`
	Digest   string `json:"digest,omitempty"`
}

// TrafficTarget is one entry of status.components.predictor.traffic.
type TrafficTarget struct {
	RevisionName string `json:"revisionName"`
	StorageURI   string `json:"storageUri"`
	Version      int64  `json:"modelVersion"`
	Percent      int    `json:"percent"`
	// Tag is "latest" or "prev" (KServe canary tags).
	Tag string `json:"tag,omitempty"`
}

// PredictorStatus is status.components.predictor.
type PredictorStatus struct {
	LatestCreatedRevision     string          `json:"latestCreatedRevision,omitempty"`
	LatestReadyRevision       string          `json:"latestReadyRevision,omitempty"`
	LatestRolledoutRevision   string          `json:"latestRolledoutRevision,omitempty"`
	PreviousRolledoutRevision string          `json:"previousRolledoutRevision,omitempty"`
	Traffic                   []TrafficTarget `json:"traffic"`
	URL                       string          `json:"url,omitempty"`
	RestURL                   string          `json:"restUrl,omitempty"`
}

// Status is the deployment's status.
type Status struct {
	Conditions  []Condition `json:"conditions"`
	ModelStatus ModelStatus `json:"modelStatus"`
	Components  struct {
		Predictor PredictorStatus `json:"predictor"`
	} `json:"components"`
	// Revisions lists every revision created, oldest first.
	Revisions []Revision `json:"revisions,omitempty"`
	// URL is the model's TF Serving REST path.
	URL string `json:"url,omitempty"`
}

// DeploymentView is what GET .../deployments/{name} returns.
type DeploymentView struct {
	Namespace string     `json:"namespace"`
	Name      string     `json:"name"`
	Spec      Deployment `json:"spec"`
	Status    Status     `json:"status"`
	// Ready mirrors the Ready condition.
	Ready   bool `json:"ready"`
	Deleted bool `json:"deleted,omitempty"`
	// Generation counts spec updates (1 = as created).
	Generation int64     `json:"generation"`
	Created    time.Time `json:"created"`
}

// Condition returns the condition of the given type (nil when absent).
func (v *DeploymentView) Condition(typ string) *Condition {
	for i := range v.Status.Conditions {
		if v.Status.Conditions[i].Type == typ {
			return &v.Status.Conditions[i]
		}
	}
	return nil
}

// DeploymentList is GET .../deployments.
type DeploymentList struct {
	Deployments []DeploymentView `json:"deployments"`
}

// DeploymentAccepted is the answer of POST .../deployments (201 created, 200 updated).
type DeploymentAccepted struct {
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	ModelName  string `json:"modelName"`
	WorkflowID string `json:"workflowId"`
	Created    bool   `json:"created"`
}

// DeploymentInput starts the deployment workflow (and carries its state over continue-as-new).
type DeploymentInput struct {
	Spec      Deployment `json:"spec"`
	RequestID string     `json:"requestId,omitempty"`
	// HeartbeatTimeout of the workflow's long activities (0 = 10s); LoadTimeout bounds the wait for
	// a first version under the base path (0 = 5m).
	HeartbeatTimeout time.Duration `json:"heartbeatTimeout,omitempty"`
	LoadTimeout      time.Duration `json:"loadTimeout,omitempty"`
	// Carried is the state of the previous run after continue-as-new (nil on first start).
	Carried *Carried `json:"carried,omitempty"`
}

// Carried is the workflow state kept across continue-as-new.
type Carried struct {
	View DeploymentView `json:"view"`
	// Seq numbers the events published so far (deterministic event ids).
	Seq int64 `json:"seq"`
	// Known is the newest version of the watched source already handled.
	Known int64 `json:"known"`
	// Requests are the latest request ids applied (duplicates are ignored).
	Requests []string `json:"requests,omitempty"`
}

// UpdateRequest is the payload of SignalUpdate.
type UpdateRequest struct {
	Spec Deployment `json:"spec"`
	// RequestID (the CE id of a deployment.requested event) makes a redelivered update a no-op.
	RequestID string `json:"requestId,omitempty"`
}

// Memo keys of the deployment workflow.
const (
	MemoModelName = "modelName"
	MemoRequestID = "requestId"
)

// Event payloads (data of the io.sluice.serving.* events).

// ModelEvent is the data of io.sluice.serving.model.{deployed,version-loaded,failed,traffic-shifted}.v1.
// The metadata service records lineage from model.deployed: the deployment context
// (Namespace/Name) is linked to the model artifact at ModelURI/Digest.
type ModelEvent struct {
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	ModelName  string `json:"modelName"`
	StorageURI string `json:"storageUri"`
	// Version is the model version concerned (loaded, failed, newly deployed).
	Version  int64  `json:"version,omitempty"`
	Revision string `json:"revision,omitempty"`
	ModelURI string `json:"modelUri,omitempty"`
	Digest   string `json:"digest,omitempty"`
	// Versions lists the versions serving traffic after the event.
	Versions []int64 `json:"versions,omitempty"`
	// Traffic is the split after the event.
	Traffic []TrafficTarget `json:"traffic,omitempty"`
	Reason  string          `json:"reason,omitempty"`
	Message string          `json:"message,omitempty"`
	Time    time.Time       `json:"time"`
}

// DeploymentRejected is the data of io.sluice.serving.deployment.rejected.v1.
type DeploymentRejected struct {
	RequestID string   `json:"requestId"`
	Namespace string   `json:"namespace,omitempty"`
	Name      string   `json:"name,omitempty"`
	Errors    []string `json:"errors"`
}

// DeploymentDeleted is the data of io.sluice.serving.deployment.deleted.v1.
type DeploymentDeleted struct {
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	ModelName string    `json:"modelName"`
	Time      time.Time `json:"time"`
}
