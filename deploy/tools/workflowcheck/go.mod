// Module workflowcheck builds the SDK's workflowcheck analyzer as a `go vet -vettool` (see main.go);
// built by `make workflowcheck` into bin/tools/workflowcheck-vet with GOWORK=off.
module github.com/sluice-ml/sluice/deploy/tools/workflowcheck

go 1.26.0

require (
	go.temporal.io/sdk/contrib/tools/workflowcheck v0.6.0
	golang.org/x/tools v0.39.0
)

require gopkg.in/yaml.v2 v2.4.0 // indirect
