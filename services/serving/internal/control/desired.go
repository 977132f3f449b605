package control

import "github.com/sluice-ml/sluice/services/serving/api/servingv1"

// DesiredFor is the data-plane state of a deployment view with the given traffic: one target
// per traffic entry (from its revision's base path, else the spec's source) and the spec's source
// as the watch. It is pure: the deployment workflow computes its Apply inputs with it, and a
// restarted process rebuilds its data plane from the views its workflows report.
func DesiredFor(view servingv1.DeploymentView, traffic []servingv1.TrafficTarget) Desired {
	spec := view.Spec
	src := SourceSpec{StorageURI: spec.StorageURI, Policy: spec.VersionPolicy, Labels: spec.VersionLabels}
	des := Desired{Key: spec.Key(), ModelName: spec.ModelName}
	for _, t := range traffic {
		s := src
		for _, r := range view.Status.Revisions {
			if r.Name == t.RevisionName && r.StorageURI != src.StorageURI {
				s = SourceSpec{StorageURI: r.StorageURI}
			}
		}
		des.Targets = append(des.Targets, Target{Source: s, Version: t.Version, Percent: t.Percent})
	}
	w := src
	des.Watch = &w
	return des
}
