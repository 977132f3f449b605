// Command launcher runs a pipeline step inside its Kubernetes pod: it downloads the step's input
// artifacts from S3, runs the step's program and uploads its outputs (see package
// services/pipelines/internal/launcher). `make images` builds it as the FROM-scratch image
// sluice-local/launcher, which the step pod's init container copies into the pod.
package main

import (
	"os"

	"github.com/sluice-ml/sluice/services/pipelines/internal/launcher"
)

func main() { os.Exit(launcher.Main(os.Args[1:], os.Stdout, os.Stderr)) }
