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

// Kinds of namespaced objects a step reads values from (DockerEnvFrom.Kind, DockerObjectVolume.Kind).
const (
	ObjectSecret    = "secret"
	ObjectConfigMap = "configmap"
)

// DockerEnvFrom is one environment variable of a kfp-kubernetes secretAsEnv or configMapAsEnv entry: Env
// is set to the value of Key of the secret or config map Name of the run's namespace. Optional (KFP's
// "optional") leaves Env unset when the object or the key is missing instead of failing the step.
type DockerEnvFrom struct {
	Kind     string `json:"kind"`
	Name     string `json:"name"`
	Key      string `json:"key"`
	Env      string `json:"env"`
	Optional bool   `json:"optional,omitempty"`
}

// DockerObjectVolume is a kfp-kubernetes secretAsVolume or configMapAsVolume entry: every key of the
// object Name becomes a read-only file of that name under MountPath (as a Kubernetes secret or configMap
// volume). Optional mounts an empty directory when the object is missing.
type DockerObjectVolume struct {
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	MountPath string `json:"mount_path"`
	Optional  bool   `json:"optional,omitempty"`
}

// DockerKubernetes is what the Docker runtime applies of an executor's kfp-kubernetes settings.
type DockerKubernetes struct {
	// Volumes are pvcMount entries (Docker named volumes), sorted by mount path.
	Volumes []DockerVolume `json:"volumes,omitempty"`
	// Labels are podMetadata labels and annotations (container labels).
	Labels map[string]string `json:"labels,omitempty"`
	// EnvFrom are secretAsEnv and configMapAsEnv variables; ObjectVolumes secretAsVolume and
	// configMapAsVolume mounts. Only names are carried: values are read when the step starts.
	EnvFrom       []DockerEnvFrom      `json:"env_from,omitempty"`
	ObjectVolumes []DockerObjectVolume `json:"object_volumes,omitempty"`
}

var (
	volumeNameRe = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)
	// objectNameRe is a Kubernetes object name (DNS-1123 subdomain), as secret and config map names are.
	objectNameRe = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

// ValidObjectName reports whether name is a valid secret or config map name (a Kubernetes DNS-1123
// subdomain: lowercase letters, digits, '-' and '.', at most 253 characters).
func ValidObjectName(name string) bool { return len(name) <= 253 && objectNameRe.MatchString(name) }

// nameFields are, per kfp-kubernetes setting whose entries name an object, the entry's name parameter
// (an InputParameterSpec) and its deprecated plain-name field (kubernetes_executor_config.proto).
var nameFields = map[string][2]string{
	"pvcMount":          {"pvcNameParameter", "constant"},
	"secretAsEnv":       {"secretNameParameter", "secretName"},
	"secretAsVolume":    {"secretNameParameter", "secretName"},
	"configMapAsEnv":    {"configMapNameParameter", "configMapName"},
	"configMapAsVolume": {"configMapNameParameter", "configMapName"},
}

// kubeNameSource reads where the object name of entry m of setting key comes from: the name parameter
// (runtimeValue.constant, componentInputParameter or taskOutputParameter) when set, else the deprecated
// fields (pvcMount also has taskOutputParameter and componentInputParameter), as KFP's driver does.
func kubeNameSource(key string, m map[string]any) (Source, bool) {
	f := nameFields[key]
	spec, _ := m[f[0]].(map[string]any)
	if spec == nil {
		spec = map[string]any{}
		if s, ok := m[f[1]].(string); ok && s != "" {
			spec["runtimeValue"] = map[string]any{"constant": s}
		}
		if key == "pvcMount" {
			for _, k := range []string{"taskOutputParameter", "componentInputParameter"} {
				if v, ok := m[k]; ok {
					spec[k] = v
				}
			}
		}
	}
	if rv, ok := spec["runtimeValue"].(map[string]any); ok {
		if s, ok := rv["constant"].(string); ok {
			return Source{Kind: SourceConstant, Constant: s}, true
		}
	}
	if s, ok := spec["componentInputParameter"].(string); ok && s != "" {
		return Source{Kind: SourceComponentInput, Input: s}, true
	}
	if to, ok := spec["taskOutputParameter"].(map[string]any); ok {
		task, _ := to["producerTask"].(string)
		out, _ := to["outputParameterKey"].(string)
		if task != "" && out != "" {
			return Source{Kind: SourceTaskOutputParameter, Task: task, Output: out}, true
		}
	}
	return Source{}, false
}

// KubernetesNameRefs returns, keyed "<setting>[<index>]" (e.g. "pvcMount[0]"), every object name of an
// executor's kfp-kubernetes settings that comes from a component input or an upstream task's output
// parameter (e.g. a CreatePVC task's "name"): the engine resolves them where the task runs and passes
// them to KubernetesForDocker.
func KubernetesNameRefs(k map[string]any) map[string]Source {
	out := map[string]Source{}
	for _, key := range sortedKeys(k) {
		if _, named := nameFields[key]; !named {
			continue
		}
		list, _ := k[key].([]any)
		for i, e := range list {
			m, _ := e.(map[string]any)
			if src, ok := kubeNameSource(key, m); ok && src.Kind != SourceConstant {
				out[fmt.Sprintf("%s[%d]", key, i)] = src
			}
		}
	}
	return out
}

// KubernetesForDocker returns what the Docker runtime applies of an executor's kfp-kubernetes settings
// (Container.Kubernetes): pvcMount entries as named volumes, secretAsEnv/configMapAsEnv as variables and
// secretAsVolume/configMapAsVolume as read-only file mounts of the run namespace's secrets and config
// maps (see the pipelines secret store), and podMetadata labels and annotations as container labels.
// names holds the object names that come from a parameter (KubernetesNameRefs keys); with nil names
// (checking a spec at upload) such entries are left out and not reported. problems names, per setting,
// what it cannot apply (spec.CheckRuntime refuses those at upload); imagePullPolicy Never and
// IfNotPresent are applied as they are (the Docker runtime never pulls).
func KubernetesForDocker(k map[string]any, names map[string]string) (out DockerKubernetes, problems map[string]string) {
	problems = map[string]string{}
	for _, key := range sortedKeys(k) {
		switch v := k[key]; key {
		case "pvcMount", "secretAsEnv", "secretAsVolume", "configMapAsEnv", "configMapAsVolume":
			list, ok := v.([]any)
			if !ok {
				problems[key] = "want a list"
				continue
			}
			for i, e := range list {
				ref := fmt.Sprintf("%s[%d]", key, i)
				m, _ := e.(map[string]any)
				src, ok := kubeNameSource(key, m)
				if !ok {
					problems[key] = ref + ": no name given (" + nameFields[key][0] + ")"
					continue
				}
				name, _ := src.Constant.(string)
				if src.Kind != SourceConstant {
					if names == nil {
						continue // resolved when the task runs
					}
					resolved, ok := names[ref]
					if !ok {
						problems[key] = ref + ": the name from " + describeSource(src) + " was not resolved"
						continue
					}
					name = resolved
				}
				if msg := kubeEntry(&out, key, ref, name, m); msg != "" {
					problems[key] = msg
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
					if out.Labels == nil {
						out.Labels = map[string]string{}
					}
					out.Labels[lk] = s
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
	sort.Slice(out.Volumes, func(i, j int) bool { return out.Volumes[i].MountPath < out.Volumes[j].MountPath })
	return out, problems
}

func describeSource(s Source) string {
	if s.Kind == SourceTaskOutputParameter {
		return fmt.Sprintf("output %q of task %q", s.Output, s.Task)
	}
	return fmt.Sprintf("input %q", s.Input)
}

// kubeEntry adds entry m (named name) of setting key to out, or says what is wrong with it.
func kubeEntry(out *DockerKubernetes, key, ref, name string, m map[string]any) string {
	path, _ := m["mountPath"].(string)
	optional, _ := m["optional"].(bool)
	kind := ObjectSecret
	if strings.HasPrefix(key, "configMap") {
		kind = ObjectConfigMap
	}
	switch key {
	case "pvcMount":
		switch {
		case !volumeNameRe.MatchString(name):
			return fmt.Sprintf("%s: PVC name %q is not a valid Docker volume name", ref, name)
		case len(path) == 0 || path[0] != '/':
			return fmt.Sprintf("%s: mountPath %q must be an absolute path", ref, path)
		case m["subPath"] != nil && m["subPath"] != "":
			return fmt.Sprintf("%s: subPath is not supported by the docker runtime (a named volume is mounted whole)", ref)
		}
		out.Volumes = append(out.Volumes, DockerVolume{Name: name, MountPath: path})
	case "secretAsVolume", "configMapAsVolume":
		switch {
		case !ValidObjectName(name):
			return fmt.Sprintf("%s: %q is not a valid %s name", ref, name, kind)
		case len(path) == 0 || path[0] != '/':
			return fmt.Sprintf("%s: mountPath %q must be an absolute path", ref, path)
		}
		out.ObjectVolumes = append(out.ObjectVolumes, DockerObjectVolume{Kind: kind, Name: name, MountPath: path, Optional: optional})
	default: // secretAsEnv, configMapAsEnv
		if !ValidObjectName(name) {
			return fmt.Sprintf("%s: %q is not a valid %s name", ref, name, kind)
		}
		keyField := "secretKey"
		if kind == ObjectConfigMap {
			keyField = "configMapKey"
		}
		list, _ := m["keyToEnv"].([]any)
		if len(list) == 0 {
			return fmt.Sprintf("%s: keyToEnv is empty", ref)
		}
		for j, e := range list {
			km, _ := e.(map[string]any)
			k, _ := km[keyField].(string)
			env, _ := km["envVar"].(string)
			if k == "" || env == "" || strings.ContainsAny(env, "=\x00") {
				return fmt.Sprintf("%s.keyToEnv[%d]: want %s and a valid envVar", ref, j, keyField)
			}
			out.EnvFrom = append(out.EnvFrom, DockerEnvFrom{Kind: kind, Name: name, Key: k, Env: env, Optional: optional})
		}
	}
	return ""
}

// Operations of the kfp-kubernetes stub executors (PVCOperation).
const (
	PVCCreate = "createpvc"
	PVCDelete = "deletepvc"
)

// PVCOperation returns PVCCreate or PVCDelete for the stub executors kfp-kubernetes CreatePVC and
// DeletePVC compile to (image argostub/createpvc or argostub/deletepvc; KFP's driver intercepts them by
// image and runs no container), else "".
func PVCOperation(ex *Container) string {
	if ex == nil {
		return ""
	}
	switch ex.Image {
	case "argostub/" + PVCCreate:
		return PVCCreate
	case "argostub/" + PVCDelete:
		return PVCDelete
	}
	return ""
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

// Toleration is one kfp-kubernetes toleration (kubernetes_executor_config.proto Toleration: key,
// operator, value, effect, toleration_seconds), as core/v1 Toleration has them.
type Toleration struct {
	Key               string `json:"key,omitempty"`
	Operator          string `json:"operator,omitempty"`
	Value             string `json:"value,omitempty"`
	Effect            string `json:"effect,omitempty"`
	TolerationSeconds *int64 `json:"toleration_seconds,omitempty"`
}

// PodSettings are the kfp-kubernetes settings of an executor that only a pod has: nodeSelector
// (node_selector.labels), tolerations, podMetadata labels and annotations kept apart (Docker merges
// them into container labels), and imagePullPolicy. KFP's driver applies them to the executor pod's
// spec (extendPodSpecPatch in backend/src/v2/driver/k8s.go); the kubernetes runtime does the same.
type PodSettings struct {
	NodeSelector    map[string]string `json:"node_selector,omitempty"`
	Tolerations     []Toleration      `json:"tolerations,omitempty"`
	Labels          map[string]string `json:"labels,omitempty"`
	Annotations     map[string]string `json:"annotations,omitempty"`
	ImagePullPolicy string            `json:"image_pull_policy,omitempty"`
}

// Empty reports whether s sets nothing.
func (s PodSettings) Empty() bool {
	return len(s.NodeSelector) == 0 && len(s.Tolerations) == 0 && len(s.Labels) == 0 && len(s.Annotations) == 0 && s.ImagePullPolicy == ""
}

// podSettingKeys are the kfp-kubernetes executor config keys PodSettingsOf reads.
var podSettingKeys = map[string]bool{"nodeSelector": true, "tolerations": true, "podMetadata": true, "imagePullPolicy": true}

// tolerationOperators and taintEffects are core/v1's values ("" = Equal / all effects).
var (
	tolerationOperators = map[string]bool{"": true, "Equal": true, "Exists": true}
	taintEffects        = map[string]bool{"": true, "NoSchedule": true, "PreferNoSchedule": true, "NoExecute": true}
)

// PodSettingsOf reads an executor's nodeSelector, tolerations, podMetadata and imagePullPolicy
// (protobuf JSON of kubernetes_executor_config.proto: nodeSelector {labels}, tolerations [{key,
// operator, value, effect, tolerationSeconds}], podMetadata {labels, annotations}). problems names,
// per key, what cannot be applied: values given at run time (nodeSelectorJson, tolerationJson), an
// unknown operator, effect or pull policy. Other keys are ignored here (see KubernetesForDocker).
func PodSettingsOf(k map[string]any) (out PodSettings, problems map[string]string) {
	problems = map[string]string{}
	for _, key := range sortedKeys(k) {
		if !podSettingKeys[key] {
			continue
		}
		v := k[key]
		switch key {
		case "nodeSelector":
			m, _ := v.(map[string]any)
			if _, ok := m["nodeSelectorJson"]; ok {
				problems[key] = "nodeSelector.nodeSelectorJson: a node selector set at run time from a parameter is not supported; give constant labels"
				continue
			}
			labels, _ := m["labels"].(map[string]any)
			for _, lk := range sortedKeys(labels) {
				s, ok := labels[lk].(string)
				if !ok {
					problems[key] = fmt.Sprintf("nodeSelector.labels.%s: want a string", lk)
					continue
				}
				if out.NodeSelector == nil {
					out.NodeSelector = map[string]string{}
				}
				out.NodeSelector[lk] = s
			}
		case "tolerations":
			list, ok := v.([]any)
			if !ok {
				problems[key] = "want a list"
				continue
			}
			for i, e := range list {
				m, _ := e.(map[string]any)
				if _, ok := m["tolerationJson"]; ok {
					problems[key] = fmt.Sprintf("tolerations[%d].tolerationJson: a toleration set at run time from a parameter is not supported; give a constant toleration", i)
					continue
				}
				var t Toleration
				t.Key, _ = m["key"].(string)
				t.Operator, _ = m["operator"].(string)
				t.Value, _ = m["value"].(string)
				t.Effect, _ = m["effect"].(string)
				if s, ok := m["tolerationSeconds"]; ok {
					n, err := number(s)
					if err != nil || n != math.Trunc(n) {
						problems[key] = fmt.Sprintf("tolerations[%d].tolerationSeconds: want a whole number of seconds, got %v", i, s)
						continue
					}
					sec := int64(n)
					t.TolerationSeconds = &sec
				}
				switch {
				case !tolerationOperators[t.Operator]:
					problems[key] = fmt.Sprintf("tolerations[%d].operator %q: want Equal or Exists", i, t.Operator)
				case !taintEffects[t.Effect]:
					problems[key] = fmt.Sprintf("tolerations[%d].effect %q: want NoSchedule, PreferNoSchedule or NoExecute", i, t.Effect)
				case t.Operator == "Exists" && t.Value != "":
					problems[key] = fmt.Sprintf("tolerations[%d]: a value must be empty when operator is Exists", i)
				default:
					out.Tolerations = append(out.Tolerations, t)
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
					dst := &out.Labels
					if part == "annotations" {
						dst = &out.Annotations
					}
					if *dst == nil {
						*dst = map[string]string{}
					}
					(*dst)[lk] = s
				}
			}
		case "imagePullPolicy":
			s, _ := v.(string)
			if s != "Always" && s != "Never" && s != "IfNotPresent" {
				problems[key] = fmt.Sprintf("imagePullPolicy %v: want Always, Never or IfNotPresent", v)
				continue
			}
			out.ImagePullPolicy = s
		}
	}
	return out, problems
}

// UsesPodSettings reports whether an executor of p has a setting PodSettingsOf reads.
func UsesPodSettings(p *Pipeline) bool {
	comps := []*Component{p.Root}
	for _, n := range p.ComponentNames() {
		comps = append(comps, p.Components[n])
	}
	for _, c := range comps {
		if c == nil || c.Executor == nil {
			continue
		}
		for _, key := range []string{"nodeSelector", "tolerations", "podMetadata", "imagePullPolicy"} {
			if _, ok := c.Executor.Kubernetes[key]; ok {
				return true
			}
		}
	}
	return false
}
