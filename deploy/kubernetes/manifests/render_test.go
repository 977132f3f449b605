package manifests

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// dir is deploy/kubernetes (tests run in deploy/kubernetes/manifests).
var dir = filepath.Join("..")

// render builds the kustomization in deploy/kubernetes/<path> with kustomize's own library, as
// `kustomize build` (and `kubectl kustomize`) does.
func render(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(dir, path))
	if err != nil {
		t.Fatalf("kustomize build %s: %v", path, err)
	}
	var objs []*unstructured.Unstructured
	for _, r := range m.Resources() {
		obj, err := r.Map()
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, &unstructured.Unstructured{Object: obj})
	}
	if len(objs) == 0 {
		t.Fatalf("%s renders nothing", path)
	}
	return objs
}

// decodeYAML reads a stream of YAML documents into objects.
func decodeYAML(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for {
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil {
			if err.Error() == "EOF" {
				return objs
			}
			t.Fatalf("decode YAML: %v", err)
		}
		if len(obj) > 0 {
			objs = append(objs, &unstructured.Unstructured{Object: obj})
		}
	}
}

// readObjects decodes the YAML files deploy/kubernetes/<paths>.
func readObjects(t *testing.T, paths ...string) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	for _, p := range paths {
		data, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, decodeYAML(t, data)...)
	}
	return objs
}

// secrets runs deploy/kubernetes/secrets.sh with its state in a temporary directory and returns the
// Secrets it prints.
func secrets(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	cmd := exec.Command("bash", filepath.Join(dir, "secrets.sh"))
	cmd.Env = append(os.Environ(), "SLUICE_DATA_DIR="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("secrets.sh: %v\n%s", err, stderr.String())
	}
	objs := decodeYAML(t, out)
	for _, o := range objs {
		if o.GetKind() != "Secret" {
			t.Fatalf("secrets.sh printed a %s", o.GetKind())
		}
	}
	return objs
}

// secretKeys maps "<namespace>/<secret>" to the keys secrets.sh gives it.
func secretKeys(objs []*unstructured.Unstructured) map[string]map[string]bool {
	keys := map[string]map[string]bool{}
	for _, o := range objs {
		data, _, _ := unstructured.NestedStringMap(o.Object, "stringData")
		id := o.GetNamespace() + "/" + o.GetName()
		if keys[id] == nil {
			keys[id] = map[string]bool{}
		}
		for k, v := range data {
			if v != "" {
				keys[id][k] = true
			}
		}
	}
	return keys
}

func deployments(t *testing.T, objs []*unstructured.Unstructured) []*appsv1.Deployment {
	t.Helper()
	var ds []*appsv1.Deployment
	for _, o := range objs {
		if o.GetKind() != "Deployment" {
			continue
		}
		d := &appsv1.Deployment{}
		if err := kruntime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, d, true); err != nil {
			t.Fatalf("Deployment %s: %v", o.GetName(), err)
		}
		ds = append(ds, d)
	}
	return ds
}

func find(objs []*unstructured.Unstructured, kind, ns, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetNamespace() == ns && o.GetName() == name {
			return o
		}
	}
	return nil
}

// services are the Deployments of base: the seven services and the entry point.
var services = []string{"dashboard", "entrypoint", "metadata", "notebooks", "pipelines", "serving", "training", "tuning"}

// TestBaseDeployments: every Deployment runs one of Sluice's images (sluice-local/<name>, retargeted by
// the kustomization's images list), as its own ServiceAccount, non-root with nothing it does not need,
// with resources, startup/liveness/readiness probes (on /healthz and /readyz where the service has
// them), a Service that selects it, and its data where SLUICE_DATA_DIR says.
func TestBaseDeployments(t *testing.T) {
	objs := render(t, "base")
	var kz types.Kustomization
	readYAML(t, "base/kustomization.yaml", &kz)
	listed := map[string]bool{}
	for _, im := range kz.Images {
		listed[im.Name] = true
	}
	ds := deployments(t, objs)
	var names []string
	for _, d := range ds {
		names = append(names, d.Name)
	}
	sort.Strings(names)
	if fmt.Sprint(names) != fmt.Sprint(services) {
		t.Fatalf("Deployments %v, want %v", names, services)
	}
	for _, d := range ds {
		t.Run(d.Name, func(t *testing.T) {
			spec := d.Spec.Template.Spec
			if d.Namespace != "sluice" {
				t.Errorf("namespace %q", d.Namespace)
			}
			if spec.ServiceAccountName != d.Name || find(objs, "ServiceAccount", d.Namespace, spec.ServiceAccountName) == nil {
				t.Errorf("serviceAccountName %q: want its own ServiceAccount %q in the rendering", spec.ServiceAccountName, d.Name)
			}
			psc := spec.SecurityContext
			if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65532 ||
				psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("pod securityContext %+v: want non-root 65532 (the images' user) and RuntimeDefault seccomp", psc)
			}
			if len(spec.Containers) != 1 {
				t.Fatalf("%d containers", len(spec.Containers))
			}
			c := spec.Containers[0]
			repo, tag, _ := strings.Cut(c.Image, ":")
			if repo != "sluice-local/"+d.Name || tag != "dev" || !listed[repo] {
				t.Errorf("image %q: want sluice-local/%s:dev, listed in base/kustomization.yaml images", c.Image, d.Name)
			}
			sc := c.SecurityContext
			if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil ||
				!*sc.ReadOnlyRootFilesystem || sc.Capabilities == nil || fmt.Sprint(sc.Capabilities.Drop) != "[ALL]" {
				t.Errorf("container securityContext %+v", sc)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("resources %+v: want cpu and memory requests and a memory limit", c.Resources)
			}
			for what, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
				if p == nil {
					t.Errorf("no %s probe", what)
					continue
				}
				if d.Name == "entrypoint" {
					if p.TCPSocket == nil || p.TCPSocket.Port.String() != "http" {
						t.Errorf("%s probe %+v: want the http port", what, p.ProbeHandler)
					}
					continue
				}
				want := map[string]string{"startup": "/healthz", "liveness": "/healthz", "readiness": "/readyz"}[what]
				if p.HTTPGet == nil || p.HTTPGet.Path != want || p.HTTPGet.Port.String() != "http" {
					t.Errorf("%s probe %+v: want GET %s on the http port (libs/platform)", what, p.ProbeHandler, want)
				}
			}
			if d.Name != "entrypoint" {
				env := envOf(t, objs, c)
				if env["SLUICE_HTTP_ADDR"] != "0.0.0.0:8080" || c.Ports[0].ContainerPort != 8080 || env["SLUICE_ADMIN_ADDR"] != "0.0.0.0:9090" {
					t.Errorf("SLUICE_HTTP_ADDR %q, SLUICE_ADMIN_ADDR %q, ports %+v", env["SLUICE_HTTP_ADDR"], env["SLUICE_ADMIN_ADDR"], c.Ports)
				}
				mounted := false
				for _, m := range c.VolumeMounts {
					mounted = mounted || m.MountPath == env["SLUICE_DATA_DIR"]
				}
				if !mounted {
					t.Errorf("SLUICE_DATA_DIR %q is not a volume", env["SLUICE_DATA_DIR"])
				}
				if env["SLUICE_AUTH_MODE"] != "gateway" {
					t.Errorf("SLUICE_AUTH_MODE %q: behind the entry point services take its signed identity only", env["SLUICE_AUTH_MODE"])
				}
				if !strings.HasPrefix(env["NATS_URL"], "nats://"+d.Name+":$(NATS_PASSWORD)@") {
					t.Errorf("NATS_URL %q: want the service's own NATS user", env["NATS_URL"])
				}
			}
			selected := false
			for _, o := range objs {
				if o.GetKind() != "Service" || o.GetNamespace() != d.Namespace {
					continue
				}
				sel, _, _ := unstructured.NestedStringMap(o.Object, "spec", "selector")
				if len(sel) > 0 && labels.SelectorFromSet(sel).Matches(labels.Set(d.Spec.Template.Labels)) {
					selected = true
				}
			}
			if !selected {
				t.Error("no Service selects its pods")
			}
		})
	}
	// The runtime's users run with SLUICE_RUNTIME=kubernetes in the namespace their RBAC covers.
	for _, d := range ds {
		env := envOf(t, objs, d.Spec.Template.Spec.Containers[0])
		switch d.Name {
		case "training", "pipelines", "notebooks":
			if env["SLUICE_RUNTIME"] != "kubernetes" || env["SLUICE_KUBE_NAMESPACE"] != "sluice-jobs" {
				t.Errorf("%s: SLUICE_RUNTIME %q SLUICE_KUBE_NAMESPACE %q", d.Name, env["SLUICE_RUNTIME"], env["SLUICE_KUBE_NAMESPACE"])
			}
			if rb := find(objs, "RoleBinding", "sluice-jobs", "sluice-"+map[string]string{"training": "training-jobs", "pipelines": "pipelines-steps", "notebooks": "notebooks-servers"}[d.Name]); rb == nil {
				t.Errorf("%s: no RoleBinding in sluice-jobs", d.Name)
			}
		default:
			if sa := find(objs, "ServiceAccount", "sluice", d.Name); sa != nil {
				if mount, ok, _ := unstructured.NestedBool(sa.Object, "automountServiceAccountToken"); !ok || mount {
					t.Errorf("%s does not use the API server: its ServiceAccount should not mount a token", d.Name)
				}
			}
		}
	}
}

// envOf is a container's environment as the kubelet builds it from the ConfigMaps it references (the
// base's only) and its env (values, not references).
func envOf(t *testing.T, objs []*unstructured.Unstructured, c corev1.Container) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef == nil {
			t.Fatalf("envFrom %+v: only ConfigMaps", from)
		}
		cm := find(objs, "ConfigMap", "sluice", from.ConfigMapRef.Name)
		if cm == nil {
			t.Fatalf("ConfigMap %s is not in the rendering", from.ConfigMapRef.Name)
		}
		data, _, _ := unstructured.NestedStringMap(cm.Object, "data")
		for k, v := range data {
			env[k] = v
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			env[e.Name] = e.Value
		}
	}
	return env
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, path))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// secretName matches variables and keys that hold credentials.
var secretName = regexp.MustCompile(`(?i)(password|secret|token|_KEY$|^KEY$|DATABASE_URL)`)

// inlineCredentials matches a URL with a password in it.
var inlineCredentials = regexp.MustCompile(`://[^/@\s]*:[^/@\s$][^/@\s]*@`)

// TestNoInlineSecrets: the manifests hold no credential. Credentials are environment variables taken
// from Secrets (secretKeyRef), never values, and a URL with a password gets it by $(VAR) expansion; the
// ConfigMaps hold none. Every Secret key a Deployment needs (not optional) is one secrets.sh makes.
func TestNoInlineSecrets(t *testing.T) {
	objs := render(t, "base")
	made := secretKeys(secrets(t))
	for _, o := range objs {
		switch o.GetKind() {
		case "Secret":
			t.Errorf("Secret %s/%s in the manifests: make it with secrets.sh", o.GetNamespace(), o.GetName())
		case "ConfigMap":
			data, _, _ := unstructured.NestedStringMap(o.Object, "data")
			for k, v := range data {
				if secretName.MatchString(k) || inlineCredentials.MatchString(v) {
					t.Errorf("ConfigMap %s: %s=%q looks like a credential", o.GetName(), k, v)
				}
			}
		}
	}
	for _, d := range deployments(t, objs) {
		for _, c := range d.Spec.Template.Spec.Containers {
			for _, e := range c.Env {
				if inlineCredentials.MatchString(e.Value) {
					t.Errorf("%s: %s=%q has a password in it", d.Name, e.Name, e.Value)
				}
				if !secretName.MatchString(e.Name) {
					continue
				}
				if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
					t.Errorf("%s: %s is not from a Secret", d.Name, e.Name)
					continue
				}
				ref := e.ValueFrom.SecretKeyRef
				if ref.Optional != nil && *ref.Optional {
					continue
				}
				if !made[d.Namespace+"/"+ref.Name][ref.Key] {
					t.Errorf("%s: %s from Secret %s key %s, which secrets.sh does not make", d.Name, e.Name, ref.Name, ref.Key)
				}
			}
		}
	}
}

// TestOverlayRetargetsImages: the example overlay's images list moves every image to its registry and the
// Ingress reaches the entry point.
func TestOverlayRetargetsImages(t *testing.T) {
	objs := render(t, "overlays/example")
	ds := deployments(t, objs)
	if len(ds) != len(services) {
		t.Fatalf("%d Deployments", len(ds))
	}
	for _, d := range ds {
		if im := d.Spec.Template.Spec.Containers[0].Image; im != "registry.example.com/sluice/"+d.Name+":v0.1.0" {
			t.Errorf("%s: image %q", d.Name, im)
		}
	}
	ing := find(objs, "Ingress", "sluice", "sluice")
	if ing == nil {
		t.Fatal("no Ingress")
	}
	paths, _, _ := unstructured.NestedSlice(ing.Object, "spec", "rules")
	if !strings.Contains(fmt.Sprint(paths), "name:entrypoint") {
		t.Errorf("Ingress rules %v: want the entrypoint Service", paths)
	}
	cm := find(objs, "ConfigMap", "sluice", "sluice-config")
	if v, _, _ := unstructured.NestedString(cm.Object, "data", "SLUICE_PUBLIC_URL"); v != "https://sluice.example.com" {
		t.Errorf("SLUICE_PUBLIC_URL %q", v)
	}
}
