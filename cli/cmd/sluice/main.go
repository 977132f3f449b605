// Command sluice is Sluice's command line: `sluice dev` runs the whole platform embedded in one process;
// the other verbs are clients of a running API server (--server, env SLUICE_SERVER).
package main

import (
	"os"

	"github.com/sluice-ml/sluice/cli/internal/command"
	"github.com/sluice-ml/sluice/libs/devstack"
)

func main() {
	// The embedded S3 gateway runs as a re-executed child of this binary.
	if devstack.RunChild() {
		return
	}
	os.Exit(command.Execute(os.Args[1:], os.Stdout, os.Stderr))
}
