package command

import (
	dashboardapp "github.com/sluice-ml/sluice/services/dashboard/app"
)

// sluice dev hosts the central dashboard at / on the API port.
func init() {
	devServices = append(devServices, dashboardapp.Build)
}
