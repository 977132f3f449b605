// Command dashboard runs the Sluice central dashboard on its own; see platform.Config for its environment
// and app.Build for SLUICE_DASHBOARD_API_URL and SLUICE_TEMPORAL_UI_URL.
package main

import (
	"os"

	"github.com/sluice-ml/sluice/libs/platform"
	"github.com/sluice-ml/sluice/services/dashboard/app"
)

func main() {
	os.Exit(platform.Main(app.Name, app.Build))
}
