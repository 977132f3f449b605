// Command workflowcheck runs the Temporal Go SDK's workflowcheck analyzer
// (go.temporal.io/sdk/contrib/tools/workflowcheck v0.6.0, package workflow) as a `go vet -vettool`.
//
// The upstream command is a singlechecker: it loads and type-checks every dependency from source on each
// run and caches nothing. As a unitchecker the same analyzer runs package by package under `go vet`, which
// passes facts (which functions are non-deterministic) from each dependency to its importers and keeps
// every package's result in the build cache, next to the compiled export data the tests already built.
// Flags are the analyzer's own: -config FILE (decls and skips, the upstream YAML format), -show-pos, etc.
//
// Usage: go vet -race -vettool=$(BIN)/tools/workflowcheck-vet -config=$(CURDIR)/workflowcheck.config.yaml ./...
package main

import (
	"go.temporal.io/sdk/contrib/tools/workflowcheck/workflow"
	"golang.org/x/tools/go/analysis/unitchecker"
)

func main() {
	unitchecker.Main(workflow.NewChecker(workflow.Config{}).NewAnalyzer())
}
