// Command tuning runs the Sluice tuning service (Katib Experiments) on its own; see platform.Config for
// its environment, and app.Config for SLUICE_TUNING_*.
package main

import (
	"os"

	"github.com/sluice-ml/sluice/libs/platform"
	"github.com/sluice-ml/sluice/services/tuning/app"
)

func main() {
	os.Exit(platform.Main(app.Name, app.Build))
}
