// Command notebooks runs the Sluice notebooks service on its own; see platform.Config for its environment.
package main

import (
	"os"

	"github.com/sluice-ml/sluice/libs/platform"
	"github.com/sluice-ml/sluice/services/notebooks/app"
)

func main() {
	os.Exit(platform.Main(app.Name, app.Build))
}
