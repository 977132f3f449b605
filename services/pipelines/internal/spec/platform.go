package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	goruntime "runtime"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/sluice-ml/sluice/services/pipelines/internal/dag"
)

// platformDoc is KFP's PlatformSpec (api/v2alpha1/pipeline_spec.proto), the YAML document kfp.compiler
// writes after the PipelineSpec when a pipeline uses kfp-kubernetes.
type platformDoc struct {
	Platforms map[string]struct {
		DeploymentSpec struct {
			Executors map[string]map[string]any `yaml:"executors"`
		} `yaml:"deploymentSpec"`
		PipelineConfig map[string]any `yaml:"pipelineConfig"`
	} `yaml:"platforms"`
}

// readPlatforms reads the documents after the first: the platform names of a PlatformSpec, the
// kubernetes settings per executor label, and why a document could not be read.
func readPlatforms(data []byte) (names []string, kube map[string]map[string]any, config map[string]any, problem string) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var first yaml.Node
	if dec.Decode(&first) != nil {
		return nil, nil, nil, ""
	}
	for {
		var doc platformDoc
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return names, kube, config, fmt.Sprintf("the PlatformSpec document (after the pipeline) cannot be read: %v", strings.TrimPrefix(err.Error(), "yaml: "))
		}
		for _, name := range sortedKeys(doc.Platforms) {
			pl := doc.Platforms[name]
			names = append(names, name)
			if name != "kubernetes" {
				continue
			}
			if len(pl.PipelineConfig) > 0 {
				config, _ = dag.NormalizeValue(pl.PipelineConfig).(map[string]any)
			}
			for _, label := range sortedKeys(pl.DeploymentSpec.Executors) {
				settings := pl.DeploymentSpec.Executors[label]
				if kube == nil {
					kube = map[string]map[string]any{}
				}
				m, _ := dag.NormalizeValue(map[string]any(settings)).(map[string]any)
				kube[label] = m
			}
		}
	}
	sort.Strings(names)
	return names, kube, config, problem
}

// platformAdvice says what a user can do instead of a setting no runtime of Sluice applies yet.
var platformAdvice = map[string]string{
	"secretAsEnv":            "secrets of the namespace's store (sluice secret create) are applied by the docker runtime: run with --runtime docker",
	"secretAsVolume":         "secrets of the namespace's store (sluice secret create) are applied by the docker runtime: run with --runtime docker",
	"configMapAsEnv":         "config maps of the namespace's store (sluice configmap create) are applied by the docker runtime: run with --runtime docker",
	"configMapAsVolume":      "config maps of the namespace's store (sluice configmap create) are applied by the docker runtime: run with --runtime docker",
	"pvcMount":               "PVCs are Docker named volumes of the docker runtime: run with --runtime docker, or pass data between tasks as artifacts",
	"nodeSelector":           "node scheduling needs a Kubernetes runtime",
	"tolerations":            "node scheduling needs a Kubernetes runtime",
	"nodeAffinity":           "node scheduling needs a Kubernetes runtime",
	"podAffinity":            "pod scheduling needs a Kubernetes runtime",
	"podMetadata":            "pod labels and annotations need a Kubernetes runtime",
	"imagePullPolicy":        "images are pulled when missing",
	"imagePullSecret":        "images are pulled with the runtime's own credentials",
	"fieldPathAsEnv":         "there is no pod to read fields from",
	"activeDeadlineSeconds":  "bound the step's time in its own command",
	"emptyDirMounts":         "use the step's work dir (TMPDIR) for scratch space",
	"enabledSharedMemory":    "shared memory size is the runtime's default",
	"genericEphemeralVolume": "use the step's work dir (TMPDIR) for scratch space",
}

// CheckRuntime reports what a run of p cannot do as written under the named runtime ("local",
// "docker", "kubernetes"): every kfp-kubernetes platform setting (KFP's PlatformSpec document) and
// every container resource (cpuLimit, memoryLimit, accelerator, ...) of an executor that a task uses,
// and every task of a kfp-kubernetes CreatePVC/DeletePVC stub executor, as field errors naming the task
// and the setting. The kubernetes runtime applies CreatePVC/DeletePVC (PersistentVolumeClaims, see the
// engine's kubePVCStep). The docker runtime applies CreatePVC/DeletePVC and pvcMount (Docker named volumes),
// secretAsEnv/secretAsVolume/configMapAsEnv/configMapAsVolume (from the namespace's secret and config
// map store), podMetadata labels and annotations (container labels) and imagePullPolicy
// Never/IfNotPresent (it never pulls); see dag.KubernetesForDocker. Nothing else is applied by any
// runtime yet.
// Refusing them at upload and run creation is what keeps a setting from being silently ignored.
// It returns nil or dag.FieldErrors.
func CheckRuntime(p *dag.Pipeline, runtime string) error {
	if runtime == "" {
		runtime = "local"
	}
	var errs dag.FieldErrors
	if p.PlatformError != "" {
		errs = append(errs, dag.FieldError{Path: "platforms", Message: p.PlatformError})
	}
	for _, name := range p.Platforms {
		if name != "kubernetes" {
			errs = append(errs, dag.FieldError{Path: "platforms." + name, Message: fmt.Sprintf("platform %q is not supported (only kubernetes platform settings are read)", name)})
		}
	}
	for _, key := range sortedKeys(p.KubernetesPipelineConfig) {
		if key != "workspace" {
			errs = append(errs, dag.FieldError{Path: "platforms.kubernetes.pipelineConfig." + key,
				Message: fmt.Sprintf("kfp-kubernetes pipelineConfig.%s is not supported by the %s runtime", key, runtime)})
			continue
		}
		ws, _ := p.KubernetesPipelineConfig[key].(map[string]any)
		for _, wk := range sortedKeys(ws) {
			if wk == "size" && runtime != "kubernetes" {
				continue // the workspace is a host directory or a Docker volume: no size to request
			}
			errs = append(errs, dag.FieldError{Path: "platforms.kubernetes.pipelineConfig.workspace." + wk,
				Message: fmt.Sprintf("the pipeline workspace's %s is not supported by the %s runtime", wk, runtime)})
		}
	}
	if runtime == "kubernetes" && dag.UsesWorkspace(p) {
		errs = append(errs, checkWorkspaceImporters(p, runtime)...)
		errs = append(errs, dag.FieldError{Path: "root", Message: "{{$.workspace_path}}: the pipeline workspace is not supported by the kubernetes runtime yet (use the local or docker runtime)"})
	}
	errs = append(errs, checkKubeNameRefs(p)...)
	users := executorTasks(p)
	labels := make([]string, 0, len(users))
	for l := range users {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	for _, label := range labels {
		ex := users[label].executor
		tasks := strings.Join(users[label].tasks, ", ")
		if op := dag.PVCOperation(ex); op != "" && runtime != "docker" && runtime != "kubernetes" {
			why := "PVCs are Docker named volumes of the docker runtime or PersistentVolumeClaims of the kubernetes runtime (run with --runtime docker or --runtime kubernetes)"
			errs = append(errs, dag.FieldError{Path: ex.Path + ".image",
				Message: fmt.Sprintf("task %s: kfp-kubernetes %s (stub executor %s) is not supported by the %s runtime: %s", tasks, op, ex.Image, runtime, why)})
		}
		var resProblems map[string]string
		if runtime == "kubernetes" {
			// Requests and limits go to the step pod's container (see engine's stepPod); the
			// scheduler, not this host, decides where they fit.
			_, resProblems = dag.ResourcesForDocker(ex.Resources)
		}
		if runtime == "docker" {
			var res dag.DockerResources
			res, resProblems = dag.ResourcesForDocker(ex.Resources)
			cpus, mem := hostCapacity()
			for _, key := range []string{"cpuRequest", "resourceCpuRequest"} {
				if _, set := ex.Resources[key]; set && resProblems[key] == "" && res.CPURequest > cpus {
					resProblems[key] = fmt.Sprintf("the step requests %g CPUs; this host has %g", res.CPURequest, cpus)
				}
			}
			for _, key := range []string{"memoryRequest", "resourceMemoryRequest"} {
				if _, set := ex.Resources[key]; set && resProblems[key] == "" && mem > 0 && res.MemoryRequest > mem {
					resProblems[key] = fmt.Sprintf("the step requests %d bytes of memory; this host has %d", res.MemoryRequest, mem)
				}
			}
		}
		for _, key := range sortedKeys(ex.Resources) {
			if runtime == "docker" || runtime == "kubernetes" {
				why, refused := resProblems[key]
				if !refused {
					continue // applied by the Docker runtime (see dag.ResourcesForDocker)
				}
				errs = append(errs, dag.FieldError{Path: ex.Path + ".resources." + key,
					Message: fmt.Sprintf("task %s: container resource %s is not applied by the %s runtime: %s", tasks, key, runtime, why)})
				continue
			}
			errs = append(errs, dag.FieldError{Path: ex.Path + ".resources." + key,
				Message: fmt.Sprintf("task %s: container resource %s is not applied by the %s runtime (steps run without resource requests or limits); remove it (e.g. .set_cpu_limit(), .set_memory_limit(), .set_accelerator_type()) or run with --runtime docker", tasks, key, runtime)})
		}
		var dockerProblems map[string]string
		if runtime == "docker" {
			_, dockerProblems = dag.KubernetesForDocker(ex.Kubernetes, nil)
		}
		if runtime == "kubernetes" {
			dockerProblems = kubeProblems(ex.Kubernetes)
		}
		for _, key := range sortedKeys(ex.Kubernetes) {
			advice := platformAdvice[key]
			if runtime == "docker" || runtime == "kubernetes" {
				why, refused := dockerProblems[key]
				if !refused {
					continue // applied by the Docker runtime (see dag.KubernetesForDocker)
				}
				if why != "" {
					advice = why
				} else if runtime == "kubernetes" {
					advice = "the kubernetes runtime does not apply it yet"
				}
			}
			if advice == "" {
				advice = "no runtime of Sluice applies it"
			}
			errs = append(errs, dag.FieldError{Path: "platforms.kubernetes.deploymentSpec.executors." + label + "." + key,
				Message: fmt.Sprintf("task %s: kfp-kubernetes %s is not supported by the %s runtime (%s)", tasks, key, runtime, advice)})
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// kubeProblems is, per kfp-kubernetes setting of an executor, why the kubernetes runtime cannot apply
// it; settings it applies to the step pod are absent: secretAsEnv/configMapAsEnv (env valueFrom the
// cluster's own Secrets and ConfigMaps of the run's namespace), secretAsVolume/configMapAsVolume,
// pvcMount (persistentVolumeClaim volumes), nodeSelector, tolerations, podMetadata and
// imagePullPolicy, as KFP's driver applies them (extendPodSpecPatch).
func kubeProblems(k map[string]any) map[string]string {
	_, objects := dag.KubernetesForDocker(k, nil)
	_, pod := dag.PodSettingsOf(k)
	out := map[string]string{}
	for key := range k {
		switch key {
		case "pvcMount", "secretAsEnv", "secretAsVolume", "configMapAsEnv", "configMapAsVolume":
			if why, bad := objects[key]; bad {
				out[key] = strings.ReplaceAll(why, "docker runtime", "kubernetes runtime")
			}
		case "nodeSelector", "tolerations", "podMetadata", "imagePullPolicy":
			if why, bad := pod[key]; bad {
				out[key] = why
			}
		default:
			out[key] = ""
		}
	}
	return out
}

// hostCapacity is the CPUs and memory (bytes; 0 when unknown) of this host, which a Docker step's
// resource requests must fit in, as a pod's must fit a node.
var hostCapacity = func() (float64, int64) {
	cpus := float64(goruntime.NumCPU())
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return cpus, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kb); err == nil {
				return cpus, kb * 1024
			}
		}
	}
	return cpus, 0
}

type executorUse struct {
	executor *dag.Container
	tasks    []string
}

// executorTasks maps each executor label with resources, platform settings or a PVC stub image to the tasks (their task
// names, sorted) that run it.
func executorTasks(p *dag.Pipeline) map[string]*executorUse {
	out := map[string]*executorUse{}
	visit := func(c *dag.Component) {
		if c == nil || c.DAG == nil {
			return
		}
		for _, t := range c.DAG.Tasks {
			tc, ok := p.TaskComponent(t)
			if !ok || tc.Executor == nil || (len(tc.Executor.Resources) == 0 && len(tc.Executor.Kubernetes) == 0 && dag.PVCOperation(tc.Executor) == "") {
				continue
			}
			u := out[tc.ExecutorLabel]
			if u == nil {
				u = &executorUse{executor: tc.Executor}
				out[tc.ExecutorLabel] = u
			}
			u.tasks = append(u.tasks, t.Name)
		}
	}
	visit(p.Root)
	for _, n := range p.ComponentNames() {
		visit(p.Components[n])
	}
	for _, u := range out {
		sort.Strings(u.tasks)
	}
	return out
}

// checkKubeNameRefs refuses kfp-kubernetes object names (a pvcMount's PVC, a secret or config map) that
// come from what the task cannot have when it starts: an output of a task that is not an upstream task
// of the same DAG, an output the producer does not declare, or an input the enclosing DAG does not
// declare. KFP's driver would fail the task; Sluice says so at upload, naming the task and the setting.
func checkKubeNameRefs(p *dag.Pipeline) dag.FieldErrors {
	var errs dag.FieldErrors
	visit := func(c *dag.Component) {
		if c == nil || c.DAG == nil {
			return
		}
		for _, t := range c.DAG.Tasks {
			tc, ok := p.TaskComponent(t)
			if !ok || tc.Executor == nil {
				continue
			}
			refs := dag.KubernetesNameRefs(tc.Executor.Kubernetes)
			for _, ref := range sortedKeys(refs) {
				src := refs[ref]
				path := "platforms.kubernetes.deploymentSpec.executors." + tc.ExecutorLabel + "." + ref
				var problem string
				switch {
				case t.Iterator != nil:
					problem = "a name from a parameter is not supported on a task with its own iterator (the KFP compiler puts a ParallelFor body in a DAG component, where it is)"
				case src.Kind == dag.SourceComponentInput:
					if _, ok := c.InputParam(src.Input); !ok {
						problem = fmt.Sprintf("the name comes from input %q, which the enclosing DAG does not declare", src.Input)
					}
				case src.Kind == dag.SourceTaskOutputParameter:
					producer, ok := c.DAG.Task(src.Task)
					switch {
					case !ok:
						problem = fmt.Sprintf("the name comes from task %q, which is not in the same DAG", src.Task)
					case !upstream(c.DAG, t, src.Task):
						problem = fmt.Sprintf("the name comes from task %q, which is not upstream of it (add it to dependentTasks / .after())", src.Task)
					default:
						if pc, ok := p.TaskComponent(producer); ok && pc.Kind != dag.KindDAG {
							if _, ok := pc.OutputParam(src.Output); !ok {
								problem = fmt.Sprintf("the name comes from output %q of task %q, which it does not declare", src.Output, src.Task)
							}
						}
					}
				}
				if problem != "" {
					errs = append(errs, dag.FieldError{Path: path, Message: fmt.Sprintf("task %s: kfp-kubernetes %s: %s", t.Name, ref, problem)})
				}
			}
		}
	}
	visit(p.Root)
	for _, n := range p.ComponentNames() {
		visit(p.Components[n])
	}
	return errs
}

// upstream reports whether task name is a direct or transitive dependency of t in d.
func upstream(d *dag.DAG, t *dag.Task, name string) bool {
	seen := map[string]bool{}
	var walk func(*dag.Task) bool
	walk = func(x *dag.Task) bool {
		for _, dep := range x.DependsOn {
			if dep == name {
				return true
			}
			if seen[dep] {
				continue
			}
			seen[dep] = true
			if y, ok := d.Task(dep); ok && walk(y) {
				return true
			}
		}
		return false
	}
	return walk(t)
}
