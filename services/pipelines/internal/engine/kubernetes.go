package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/uuid"

	"github.com/sluice-ml/sluice/libs/runtime/kube"
	wf "github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/pipelines/internal/dag"
)

// ObjectSource reads the secrets and config maps of a namespace (the pipelines service's store) for
// kfp-kubernetes secretAsEnv, secretAsVolume, configMapAsEnv and configMapAsVolume.
type ObjectSource interface {
	// Object returns the data of the object of kind (dag.ObjectSecret or dag.ObjectConfigMap) called name
	// in namespace ns, each key's value as bytes; found is false when there is none.
	Object(ctx context.Context, ns, kind, name string) (data map[string][]byte, found bool, err error)
}

// volumeManager is a runtime with named volumes (the Docker runtime), where a PVC is a named volume.
type volumeManager interface {
	volumeRemover
	CreateVolume(ctx context.Context, name string, labels map[string]string) error
	VolumeLabels(ctx context.Context, name string) (labels map[string]string, found bool, err error)
}

// pvcNamespaceLabel records the namespace of the run whose CreatePVC made a volume.
const pvcNamespaceLabel = "sluice.io/namespace"

// checkPVCNamespace refuses a volume that a CreatePVC of another namespace made: PVCs are namespaced in
// Kubernetes, Docker volumes are not, so the label keeps one namespace's runs out of another's PVCs. A
// volume without the label (made by hand, or by a constant pvcMount) is usable by every namespace.
func (a *Activities) checkPVCNamespace(ctx context.Context, in StepInput, what, name string) error {
	vm, ok := a.Runtime.(volumeManager)
	if !ok {
		return nil
	}
	labels, found, err := vm.VolumeLabels(ctx, name)
	if err != nil || !found {
		return err
	}
	if owner := labels[pvcNamespaceLabel]; owner != "" && owner != orDefaultNS(in.Namespace) {
		return wf.NonRetryable(wf.ErrTypeStepFailed, fmt.Errorf("%s: PVC %s belongs to namespace %q, not to this run's namespace %q", what, name, owner, orDefaultNS(in.Namespace)))
	}
	return nil
}

// pvcNamespace makes the generated part of a CreatePVC name: KFP's driver uses a random UUID; Sluice
// derives one from the run and task path, so a retried attempt creates the same volume.
var pvcNamespace = uuid.MustParse("3a0d4f0e-2c1b-4d57-9a5e-7f6a1e0c2b94")

// pvcStep carries out a kfp-kubernetes CreatePVC or DeletePVC task as KFP's driver does (no container
// runs); on the kubernetes runtime see kubePVCStep. On Docker, CreatePVC creates the Docker named volume of the PVC's name — its pvc_name input, else a UUID
// followed by pvc_name_suffix, else a UUID — and outputs it as the parameter "name"; DeletePVC removes
// the volume named by its pvc_name input (one still mounted by a running step cannot be removed). The
// inputs access_modes and size are required as by the driver and recorded as volume labels; the local
// runtime has no volumes and fails the step.
func (a *Activities) pvcStep(ctx context.Context, in StepInput, op string) (StepResult, error) {
	if kr, ok := a.Runtime.(*kube.Runtime); ok {
		return a.kubePVCStep(ctx, kr, in, op)
	}
	vm, ok := a.Runtime.(volumeManager)
	if !ok {
		return StepResult{}, wf.NonRetryable(wf.ErrTypeInvalidSpec, fmt.Errorf("kfp-kubernetes %s needs the docker or kubernetes runtime (PVCs are Docker named volumes or PersistentVolumeClaims); this run uses the %s runtime", op, a.Runtime.Name()))
	}
	fail := func(format string, args ...any) (StepResult, error) {
		return StepResult{}, pvcFail(op, format, args...)
	}
	if op == dag.PVCDelete {
		name := paramString(in, "pvc_name")
		if name == "" {
			return fail("required parameter pvc_name not provided")
		}
		if err := a.checkPVCNamespace(ctx, in, op, name); err != nil {
			return StepResult{}, err
		}
		if err := vm.RemoveVolume(ctx, name); err != nil {
			return fail("delete PVC %s: %v", name, err)
		}
		return StepResult{Outputs: outputs{Params: map[string]any{}}}, nil
	}
	name, modeNames, size, err := pvcCreateInputs(in, op)
	if err != nil {
		return StepResult{}, err
	}
	labels := map[string]string{
		"sluice.io/pvc": name, pvcNamespaceLabel: orDefaultNS(in.Namespace), "sluice.io/run-id": in.RunID,
		"sluice.io/pvc-size": size, "sluice.io/pvc-access-modes": strings.Join(modeNames, ","),
	}
	if err := a.checkPVCNamespace(ctx, in, op, name); err != nil { // an existing volume is returned as it is
		return StepResult{}, err
	}
	if err := vm.CreateVolume(ctx, name, labels); err != nil {
		return fail("create PVC %s: %v", name, err)
	}
	return StepResult{Outputs: outputs{Params: map[string]any{"name": name}}}, nil
}

// paramString is the string input parameter name of a step ("" when missing or not a string).
func paramString(in StepInput, name string) string { s, _ := in.Params[name].(string); return s }

// pvcFail is the non-retryable failure of a CreatePVC or DeletePVC task.
func pvcFail(op, format string, args ...any) error {
	return wf.NonRetryable(wf.ErrTypeStepFailed, fmt.Errorf("%s: "+format, append([]any{op}, args...)...))
}

// pvcCreateInputs reads a CreatePVC task's inputs as KFP's driver does: access_modes (required, a list
// of PVC access modes), size (required, a quantity) and the PVC's name — pvc_name, else a UUID followed
// by pvc_name_suffix, else a UUID (at most one of the two may be set). The driver's UUID is random;
// Sluice derives it from the run id and task path, so a retried attempt names the same PVC.
func pvcCreateInputs(in StepInput, op string) (name string, modes []string, size string, err error) {
	list, _ := in.Params["access_modes"].([]any)
	if len(list) == 0 {
		return "", nil, "", pvcFail(op, "parameter access_modes not provided")
	}
	for _, m := range list {
		s, _ := m.(string)
		switch s {
		case "ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod":
			modes = append(modes, s)
		default:
			return "", nil, "", pvcFail(op, "access_modes: %v is not a PVC access mode (ReadWriteOnce, ReadOnlyMany, ReadWriteMany, ReadWriteOncePod)", m)
		}
	}
	size = paramString(in, "size")
	if size == "" {
		return "", nil, "", pvcFail(op, "parameter size not provided")
	}
	if _, err := dag.ParseQuantity(size); err != nil {
		return "", nil, "", pvcFail(op, "size: %v", err)
	}
	name, suffix := paramString(in, "pvc_name"), paramString(in, "pvc_name_suffix")
	switch {
	case name != "" && suffix != "":
		return "", nil, "", pvcFail(op, "at most one of pvc_name and pvc_name_suffix can be non-empty")
	case name == "":
		name = uuid.NewSHA1(pvcNamespace, []byte(in.RunID+"/"+in.TaskPath)).String() + suffix
	}
	if !dag.ValidObjectName(name) {
		return "", nil, "", pvcFail(op, "PVC name %q is not a valid Kubernetes object name", name)
	}
	return name, modes, size, nil
}

// objectEnv returns the variables of the step's secretAsEnv and configMapAsEnv settings, read from the
// run namespace's store. A missing object or key fails the step unless the setting is optional (KFP's
// "optional": the variable is then left unset). Values are never logged.
func (a *Activities) objectEnv(ctx context.Context, in StepInput) (map[string]string, error) {
	if len(in.EnvFrom) == 0 {
		return nil, nil
	}
	env := map[string]string{}
	for _, e := range in.EnvFrom {
		data, found, err := a.object(ctx, in, e.Kind, e.Name)
		if err != nil {
			return nil, err
		}
		v, ok := data[e.Key]
		switch {
		case !found && e.Optional, found && !ok && e.Optional:
			continue
		case !found:
			return nil, missingObject(in, e.Kind, e.Name, "as env "+e.Env)
		case !ok:
			return nil, wf.NonRetryable(wf.ErrTypeStepFailed, fmt.Errorf("%s %q of namespace %q has no key %q (wanted for env %s)", e.Kind, e.Name, orDefaultNS(in.Namespace), e.Key, e.Env))
		}
		env[e.Env] = string(v)
	}
	return env, nil
}

// objectMounts writes the keys of the step's secretAsVolume and configMapAsVolume objects as files
// under dir (a directory per mount, 0700; secret files 0400, config map files 0444, as read-only as a
// Kubernetes secret volume) and returns the host directory of each mount path. A missing object fails
// the step unless optional (an empty directory is mounted then).
func (a *Activities) objectMounts(ctx context.Context, in StepInput, dir string) (map[string]string, error) {
	if len(in.ObjectVolumes) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for i, v := range in.ObjectVolumes {
		data, found, err := a.object(ctx, in, v.Kind, v.Name)
		if err != nil {
			return nil, err
		}
		if !found && !v.Optional {
			return nil, missingObject(in, v.Kind, v.Name, "as a volume at "+v.MountPath)
		}
		host := filepath.Join(dir, fmt.Sprintf("%d", i))
		if err := os.MkdirAll(host, 0o700); err != nil {
			return nil, err
		}
		mode := os.FileMode(0o444)
		if v.Kind == dag.ObjectSecret {
			mode = 0o400
		}
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if k == "" || strings.ContainsAny(k, "/\x00") || k == "." || k == ".." {
				return nil, wf.NonRetryable(wf.ErrTypeStepFailed, fmt.Errorf("%s %q: key %q cannot be a file name", v.Kind, v.Name, k))
			}
			if err := os.WriteFile(filepath.Join(host, k), data[k], mode); err != nil {
				return nil, err
			}
		}
		if err := os.Chmod(host, 0o500); err != nil {
			return nil, err
		}
		out[v.MountPath] = host
	}
	return out, nil
}

func (a *Activities) object(ctx context.Context, in StepInput, kind, name string) (map[string][]byte, bool, error) {
	if a.Objects == nil {
		return nil, false, wf.NonRetryable(wf.ErrTypeInvalidSpec, fmt.Errorf("kfp-kubernetes %s settings: this worker has no secret and config map store", kind))
	}
	data, found, err := a.Objects.Object(ctx, orDefaultNS(in.Namespace), kind, name)
	if err != nil {
		return nil, false, fmt.Errorf("read %s %q: %w", kind, name, err)
	}
	return data, found, nil
}

func missingObject(in StepInput, kind, name, use string) error {
	verb := "sluice secret create"
	if kind == dag.ObjectConfigMap {
		verb = "sluice configmap create"
	}
	ns := orDefaultNS(in.Namespace)
	return wf.NonRetryable(wf.ErrTypeStepFailed, fmt.Errorf("%s %q (used %s) not found in namespace %q: create it with `%s %s -n %s`, or mark the setting optional", kind, name, use, ns, verb, name, ns))
}

func orDefaultNS(ns string) string {
	if ns == "" {
		return "default"
	}
	return ns
}

// removeAllForce removes a tree whose directories were made read-only.
func removeAllForce(dir string) {
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	if err := os.RemoveAll(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		_ = os.RemoveAll(dir)
	}
}
