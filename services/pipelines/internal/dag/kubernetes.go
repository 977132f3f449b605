package dag

import (
	"fmt"
	"regexp"
	"sort"
)

// DockerVolume is a kfp-kubernetes pvcMount as the Docker runtime applies it: the Docker named volume
// called Name (the PVC's name; created on first use, shared by every step and run that mounts it)
// mounted at MountPath.
type DockerVolume struct {
	Name      string `json:"name"`
	MountPath string `json:"mount_path"`
}

var volumeNameRe = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// KubernetesForDocker returns what the Docker runtime applies of an executor's kfp-kubernetes settings
// (Container.Kubernetes): pvcMount entries with a constant PVC name as named volumes, and podMetadata
// labels and annotations as container labels. problems names, per setting, what it cannot apply
// (spec.CheckRuntime refuses those at upload); imagePullPolicy Never and IfNotPresent are applied as
// they are (the Docker runtime never pulls).
func KubernetesForDocker(k map[string]any) (vols []DockerVolume, labels map[string]string, problems map[string]string) {
	problems = map[string]string{}
	for _, key := range sortedKeys(k) {
		switch v := k[key]; key {
		case "pvcMount":
			list, _ := v.([]any)
			for i, e := range list {
				m, _ := e.(map[string]any)
				name, _ := m["constant"].(string)
				if p, ok := m["pvcNameParameter"].(map[string]any); ok && name == "" {
					if rv, ok := p["runtimeValue"].(map[string]any); ok {
						name, _ = rv["constant"].(string)
					}
				}
				path, _ := m["mountPath"].(string)
				switch {
				case name == "":
					problems[key] = fmt.Sprintf("pvcMount[%d]: only a PVC given by a constant name can be mounted (as the Docker named volume of that name); a name from a task output or a parameter (e.g. CreatePVC) is not supported", i)
				case !volumeNameRe.MatchString(name):
					problems[key] = fmt.Sprintf("pvcMount[%d]: PVC name %q is not a valid Docker volume name", i, name)
				case len(path) == 0 || path[0] != '/':
					problems[key] = fmt.Sprintf("pvcMount[%d]: mountPath %q must be an absolute path", i, path)
				default:
					vols = append(vols, DockerVolume{Name: name, MountPath: path})
				}
			}
		case "podMetadata":
			m, _ := v.(map[string]any)
			for _, part := range []string{"labels", "annotations"} {
				kv, _ := m[part].(map[string]any)
				for lk, lv := range kv {
					s, ok := lv.(string)
					if !ok {
						problems[key] = fmt.Sprintf("podMetadata.%s.%s: want a string", part, lk)
						continue
					}
					if labels == nil {
						labels = map[string]string{}
					}
					labels[lk] = s
				}
			}
			for other := range m {
				if other != "labels" && other != "annotations" {
					problems[key] = fmt.Sprintf("podMetadata.%s is not supported", other)
				}
			}
		case "imagePullPolicy":
			if s, _ := v.(string); s != "Never" && s != "IfNotPresent" {
				problems[key] = fmt.Sprintf("imagePullPolicy %v: the docker runtime never pulls images (Never and IfNotPresent are what it does; build or load the image on the host)", v)
			}
		default:
			problems[key] = ""
		}
	}
	sort.Slice(vols, func(i, j int) bool { return vols[i].MountPath < vols[j].MountPath })
	return vols, labels, problems
}
