package app

import (
	"sort"

	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
)

// homeCardSize bounds each list of the home page.
const homeCardSize = 10

// homeFailures fills the failures card beside the failed runs (training jobs that failed, deployments
// whose model failed to load, notebooks whose server failed) and keeps the newest homeCardSize of
// each list.
func (d *homeData) homeFailures() {
	for _, j := range d.Jobs {
		if j.State == trainingv1.JobFailed && len(d.FailedJobs) < homeCardSize {
			d.FailedJobs = append(d.FailedJobs, j)
		}
	}
	for _, dep := range d.Deploys {
		if dep.Status.ModelStatus.LastFailureInfo != nil && len(d.FailedDeploys) < homeCardSize {
			d.FailedDeploys = append(d.FailedDeploys, dep)
		}
	}
	for _, nb := range d.Notebooks {
		if row := rowOf(nb); row.State == "Failed" && len(d.FailedNotebooks) < homeCardSize {
			d.FailedNotebooks = append(d.FailedNotebooks, row)
		}
	}
	sort.SliceStable(d.Deploys, func(i, j int) bool { return d.Deploys[i].Created.After(d.Deploys[j].Created) })
	sort.SliceStable(d.Notebooks, func(i, j int) bool {
		a, b := d.Notebooks[i].Metadata.CreationTimestamp, d.Notebooks[j].Metadata.CreationTimestamp
		return a != nil && (b == nil || a.After(*b))
	})
	if len(d.Jobs) > homeCardSize {
		d.Jobs = d.Jobs[:homeCardSize]
	}
	if len(d.Deploys) > homeCardSize {
		d.Deploys = d.Deploys[:homeCardSize]
	}
	if len(d.Notebooks) > homeCardSize {
		d.Notebooks = d.Notebooks[:homeCardSize]
	}
}
