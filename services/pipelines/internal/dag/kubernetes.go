package dag

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
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
				for _, lk := range sortedKeys(kv) {
					s, ok := kv[lk].(string)
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
			for _, other := range sortedKeys(m) {
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

// DockerResources is what the Docker runtime applies of an executor's container resources.
type DockerResources struct {
	// CPULimit in cores and MemoryLimit in bytes (0 = none), from cpuLimit/resourceCpuLimit and
	// memoryLimit/resourceMemoryLimit.
	CPULimit    float64 `json:"cpu_limit,omitempty"`
	MemoryLimit int64   `json:"memory_limit,omitempty"`
	// CPURequest in cores and MemoryRequest in bytes: what the step needs of the host (a request is a
	// reservation; on one host it is met when the host has that much, see spec.CheckRuntime).
	CPURequest    float64 `json:"cpu_request,omitempty"`
	MemoryRequest int64   `json:"memory_request,omitempty"`
}

// ResourcesForDocker reads an executor's container.resources (KFP ResourceSpec: cpuLimit in cores and
// memoryLimit in GB as numbers, as kfp 2.0-2.3 compilers write them; resourceCpuLimit and
// resourceMemoryLimit as Kubernetes quantities like "500m" or "4Gi", as later ones do; the same for
// requests). problems names, per key, what the Docker runtime cannot apply: accelerators, and values
// set at run time from a pipeline channel.
func ResourcesForDocker(res map[string]any) (out DockerResources, problems map[string]string) {
	problems = map[string]string{}
	for _, key := range sortedKeys(res) {
		v := res[key]
		var err error
		switch key {
		case "cpuLimit":
			out.CPULimit, err = number(v)
		case "cpuRequest":
			out.CPURequest, err = number(v)
		case "memoryLimit", "memoryRequest":
			var gb float64
			if gb, err = number(v); err == nil {
				if key == "memoryLimit" {
					out.MemoryLimit = int64(gb * 1e9)
				} else {
					out.MemoryRequest = int64(gb * 1e9)
				}
			}
		case "resourceCpuLimit", "resourceCpuRequest", "resourceMemoryLimit", "resourceMemoryRequest":
			s, _ := v.(string)
			var q float64
			q, err = ParseQuantity(s)
			switch key {
			case "resourceCpuLimit":
				out.CPULimit = q
			case "resourceCpuRequest":
				out.CPURequest = q
			case "resourceMemoryLimit":
				out.MemoryLimit = int64(q)
			default:
				out.MemoryRequest = int64(q)
			}
		default: // accelerator, resourceAcceleratorType, resourceAcceleratorCount, ...
			problems[key] = "accelerators are not supported (steps get no GPU)"
		}
		if err != nil {
			problems[key] = err.Error()
		}
	}
	return out, problems
}

func number(v any) (float64, error) {
	switch x := v.(type) {
	case float64:
		return x, nil
	case string:
		return ParseQuantity(x)
	}
	return 0, fmt.Errorf("want a number, got %v", v)
}

// quantitySuffixes are Kubernetes resource quantity suffixes (k8s.io/apimachinery resource.Quantity).
var quantitySuffixes = []struct {
	suffix string
	factor float64
}{
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"Pi", 1 << 50}, {"Ei", 1 << 60},
	{"m", 1e-3}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"P", 1e15}, {"E", 1e18},
}

// ParseQuantity reads a Kubernetes resource quantity ("500m", "2", "1.5", "4Gi", "512M", "1e3") as a
// number (cores or bytes). A value computed at run time (a `{{$...}}` placeholder, which the compiler
// writes for resource fields set from a pipeline channel) is an error.
func ParseQuantity(s string) (float64, error) {
	if s == "" {
		return 0, fmt.Errorf("empty resource quantity")
	}
	if strings.Contains(s, "{{$") {
		return 0, fmt.Errorf("resource values set at run time (%s) are not supported; give a constant", s)
	}
	num, factor := s, 1.0
	for _, q := range quantitySuffixes {
		if strings.HasSuffix(s, q.suffix) {
			num, factor = strings.TrimSuffix(s, q.suffix), q.factor
			break
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("%q is not a resource quantity (e.g. 500m, 2, 4Gi)", s)
	}
	return f * factor, nil
}
