package spec

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluice-ml/sluice/services/pipelines/internal/dag"
)

// The KFP v2 IR (PipelineSpec) as kfp.compiler writes it to YAML, per
// kubeflow/pipelines api/v2alpha1/pipeline_spec.proto (JSON names). Fields
// Sluice does not use (sdkVersion, platform specs, resources, ...) are
// ignored.

type kfpSpec struct {
	PipelineInfo   *kfpPipelineInfo         `yaml:"pipelineInfo"`
	SchemaVersion  string                   `yaml:"schemaVersion"`
	Components     map[string]*kfpComponent `yaml:"components"`
	Root           *kfpComponent            `yaml:"root"`
	DeploymentSpec *kfpDeploymentSpec       `yaml:"deploymentSpec"`
}

type kfpPipelineInfo struct {
	Name        string `yaml:"name"`
	DisplayName string `yaml:"displayName"`
	Description string `yaml:"description"`
}

type kfpComponent struct {
	InputDefinitions  kfpIODefs `yaml:"inputDefinitions"`
	OutputDefinitions kfpIODefs `yaml:"outputDefinitions"`
	DAG               *kfpDAG   `yaml:"dag"`
	ExecutorLabel     string    `yaml:"executorLabel"`
}

type kfpIODefs struct {
	Parameters map[string]kfpParamSpec    `yaml:"parameters"`
	Artifacts  map[string]kfpArtifactSpec `yaml:"artifacts"`
}

type kfpParamSpec struct {
	ParameterType string    `yaml:"parameterType"`
	Type          string    `yaml:"type"` // deprecated PrimitiveType
	DefaultValue  yaml.Node `yaml:"defaultValue"`
	IsOptional    bool      `yaml:"isOptional"`
	Description   string    `yaml:"description"`
}

type kfpArtifactSpec struct {
	ArtifactType struct {
		SchemaTitle   string `yaml:"schemaTitle"`
		SchemaVersion string `yaml:"schemaVersion"`
	} `yaml:"artifactType"`
	IsArtifactList bool   `yaml:"isArtifactList"`
	IsOptional     bool   `yaml:"isOptional"`
	Description    string `yaml:"description"`
}

type kfpDAG struct {
	Tasks   map[string]*kfpTask `yaml:"tasks"`
	Outputs struct {
		Parameters map[string]struct {
			ValueFromParameter *kfpParamSelector `yaml:"valueFromParameter"`
			ValueFromOneof     *struct {
				ParameterSelectors []kfpParamSelector `yaml:"parameterSelectors"`
			} `yaml:"valueFromOneof"`
		} `yaml:"parameters"`
		Artifacts map[string]struct {
			ArtifactSelectors []struct {
				ProducerSubtask   string `yaml:"producerSubtask"`
				OutputArtifactKey string `yaml:"outputArtifactKey"`
			} `yaml:"artifactSelectors"`
		} `yaml:"artifacts"`
	} `yaml:"outputs"`
}

type kfpParamSelector struct {
	ProducerSubtask    string `yaml:"producerSubtask"`
	OutputParameterKey string `yaml:"outputParameterKey"`
}

type kfpTask struct {
	TaskInfo struct {
		Name string `yaml:"name"`
	} `yaml:"taskInfo"`
	Inputs struct {
		Parameters map[string]kfpInputParam    `yaml:"parameters"`
		Artifacts  map[string]kfpInputArtifact `yaml:"artifacts"`
	} `yaml:"inputs"`
	DependentTasks []string `yaml:"dependentTasks"`
	CachingOptions struct {
		EnableCache bool `yaml:"enableCache"`
	} `yaml:"cachingOptions"`
	ComponentRef struct {
		Name string `yaml:"name"`
	} `yaml:"componentRef"`
	TriggerPolicy struct {
		Condition string `yaml:"condition"`
		Strategy  string `yaml:"strategy"`
	} `yaml:"triggerPolicy"`
	ParameterIterator *struct {
		ItemInput string `yaml:"itemInput"`
		Items     struct {
			Raw            *string `yaml:"raw"`
			InputParameter string  `yaml:"inputParameter"`
		} `yaml:"items"`
	} `yaml:"parameterIterator"`
	ArtifactIterator *struct {
		ItemInput string `yaml:"itemInput"`
		Items     struct {
			InputArtifact string `yaml:"inputArtifact"`
		} `yaml:"items"`
	} `yaml:"artifactIterator"`
	IteratorPolicy struct {
		ParallelismLimit int `yaml:"parallelismLimit"`
	} `yaml:"iteratorPolicy"`
	RetryPolicy *struct {
		MaxRetryCount      int     `yaml:"maxRetryCount"`
		BackoffDuration    string  `yaml:"backoffDuration"`
		BackoffFactor      float64 `yaml:"backoffFactor"`
		BackoffMaxDuration string  `yaml:"backoffMaxDuration"`
	} `yaml:"retryPolicy"`
}

type kfpInputParam struct {
	TaskOutputParameter *struct {
		ProducerTask       string `yaml:"producerTask"`
		OutputParameterKey string `yaml:"outputParameterKey"`
	} `yaml:"taskOutputParameter"`
	RuntimeValue *struct {
		Constant      yaml.Node `yaml:"constant"`
		ConstantValue *struct {
			IntValue    *int64   `yaml:"intValue"`
			DoubleValue *float64 `yaml:"doubleValue"`
			StringValue *string  `yaml:"stringValue"`
		} `yaml:"constantValue"`
		RuntimeParameter string `yaml:"runtimeParameter"`
	} `yaml:"runtimeValue"`
	ComponentInputParameter string `yaml:"componentInputParameter"`
	TaskFinalStatus         *struct {
		ProducerTask string `yaml:"producerTask"`
	} `yaml:"taskFinalStatus"`
	ParameterExpressionSelector string `yaml:"parameterExpressionSelector"`
}

type kfpInputArtifact struct {
	TaskOutputArtifact *struct {
		ProducerTask      string `yaml:"producerTask"`
		OutputArtifactKey string `yaml:"outputArtifactKey"`
	} `yaml:"taskOutputArtifact"`
	ComponentInputArtifact string `yaml:"componentInputArtifact"`
}

type kfpDeploymentSpec struct {
	Executors map[string]*kfpExecutor `yaml:"executors"`
}

type kfpExecutor struct {
	Container *struct {
		Image   string   `yaml:"image"`
		Command []string `yaml:"command"`
		Args    []string `yaml:"args"`
		Env     []struct {
			Name  string `yaml:"name"`
			Value string `yaml:"value"`
		} `yaml:"env"`
		Resources yaml.Node `yaml:"resources"`
	} `yaml:"container"`
	Importer  *kfpImporter `yaml:"importer"`
	Resolver  yaml.Node    `yaml:"resolver"`
	CustomJob yaml.Node    `yaml:"customJob"`
}

// kfpImporter is ImporterSpec (pipeline_spec.proto PipelineDeploymentConfig).
type kfpImporter struct {
	ArtifactURI *struct {
		Constant         yaml.Node `yaml:"constant"`
		RuntimeParameter string    `yaml:"runtimeParameter"`
	} `yaml:"artifactUri"`
	TypeSchema struct {
		SchemaTitle    string `yaml:"schemaTitle"`
		SchemaVersion  string `yaml:"schemaVersion"`
		InstanceSchema string `yaml:"instanceSchema"`
	} `yaml:"typeSchema"`
	Metadata            yaml.Node `yaml:"metadata"`
	Properties          yaml.Node `yaml:"properties"`
	CustomProperties    yaml.Node `yaml:"customProperties"`
	Reimport            bool      `yaml:"reimport"`
	DownloadToWorkspace bool      `yaml:"downloadToWorkspace"`
}

// kfpParser turns a decoded IR into the dag model, collecting problems.
type kfpParser struct {
	spec *kfpSpec
	// platform is the kfp-kubernetes config per executor label (the PlatformSpec document).
	platform map[string]map[string]any
	errs     dag.FieldErrors
}

func (k *kfpParser) add(path, format string, args ...any) {
	k.errs = append(k.errs, dag.FieldError{Path: path, Message: fmt.Sprintf(format, args...)})
}

// ParseKFP parses a KFP v2 IR PipelineSpec YAML (the first YAML document;
// a later document, KFP's PlatformSpec, is kept on the executors and the
// pipeline for [CheckRuntime]) and compiles it. Errors
// are [dag.FieldErrors] with IR field paths.
func ParseKFP(data []byte) (*dag.Pipeline, error) {
	doc, err := firstDocument(data)
	if err != nil {
		return nil, err
	}
	var s kfpSpec
	if err := doc.Decode(&s); err != nil {
		return nil, yamlError(err)
	}
	names, kube, config, problem := readPlatforms(data)
	k := &kfpParser{spec: &s, platform: kube}
	p := k.pipeline()
	p.Platforms, p.PlatformError, p.KubernetesPipelineConfig = names, problem, config
	if err := dag.Compile(p); err != nil {
		k.errs = append(k.errs, dag.AsFieldErrors(err)...)
	}
	return finish(p, k.errs)
}

func (k *kfpParser) pipeline() *dag.Pipeline {
	s := k.spec
	p := &dag.Pipeline{Format: dag.FormatKFP, SchemaVersion: s.SchemaVersion, Components: map[string]*dag.Component{}}
	if s.PipelineInfo == nil || s.PipelineInfo.Name == "" {
		k.add("pipelineInfo.name", "pipeline name is required")
	} else {
		p.DisplayName = s.PipelineInfo.Name
		if s.PipelineInfo.DisplayName != "" {
			p.DisplayName = s.PipelineInfo.DisplayName
		}
		p.Description = s.PipelineInfo.Description
		p.Name = dag.Slug(s.PipelineInfo.Name)
		if p.Name == "" {
			k.add("pipelineInfo.name", "pipeline name %q has no letters or digits", s.PipelineInfo.Name)
		}
	}
	if p.Name == "" {
		p.Name = "pipeline" // keep compiling to report every other problem
	}
	if s.Root == nil {
		k.add("root", "root is required")
		return p
	}
	p.Root = k.component(dag.RootComponent, "root", s.Root)
	if p.Root.Kind != dag.KindDAG {
		k.add("root.dag", "root must be a DAG")
	}
	names := make([]string, 0, len(s.Components))
	for n := range s.Components {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := s.Components[n]
		if c == nil {
			k.add("components."+n, "empty component")
			continue
		}
		p.Components[n] = k.component(n, "components."+n, c)
	}
	return p
}

func (k *kfpParser) component(name, path string, c *kfpComponent) *dag.Component {
	out := &dag.Component{Name: name, Path: path}
	out.InputParams = k.paramDefs(c.InputDefinitions.Parameters, path+".inputDefinitions.parameters")
	out.InputArtifacts = artifactDefs(c.InputDefinitions.Artifacts)
	out.OutputParams = k.paramDefs(c.OutputDefinitions.Parameters, path+".outputDefinitions.parameters")
	out.OutputArtifacts = artifactDefs(c.OutputDefinitions.Artifacts)
	switch {
	case c.DAG != nil && c.ExecutorLabel != "":
		k.add(path, "a component has either dag or executorLabel, not both")
	case c.DAG != nil:
		out.Kind = dag.KindDAG
		out.DAG = k.dag(path, c.DAG)
	case c.ExecutorLabel != "":
		out.Kind = dag.KindContainer
		out.ExecutorLabel = c.ExecutorLabel
		if imp := k.importer(c.ExecutorLabel); imp != nil {
			out.Kind, out.Importer = dag.KindImporter, imp
			break
		}
		out.Executor = k.executor(path, c.ExecutorLabel)
	default:
		k.add(path, "component has neither dag nor executorLabel")
		out.Kind = dag.KindContainer
		out.Executor = &dag.Container{Image: "invalid", Path: path}
	}
	return out
}

func (k *kfpParser) executor(compPath, label string) *dag.Container {
	var ex *kfpExecutor
	if k.spec.DeploymentSpec != nil {
		ex = k.spec.DeploymentSpec.Executors[label]
	}
	path := "deploymentSpec.executors." + label
	switch {
	case ex == nil:
		return nil // Compile reports the unknown executor label
	case ex.Container != nil:
		c := &dag.Container{Image: ex.Container.Image, Command: ex.Container.Command, Args: ex.Container.Args, Path: path + ".container"}
		for _, e := range ex.Container.Env {
			c.Env = append(c.Env, dag.EnvVar{Name: e.Name, Value: e.Value})
		}
		if ex.Container.Resources.Kind != 0 {
			if v, err := nodeValue(&ex.Container.Resources); err == nil {
				c.Resources, _ = v.(map[string]any)
			}
		}
		c.Kubernetes = k.platform[label]
		return c
	}
	kind := "unknown"
	switch {
	case ex.Resolver.Kind != 0:
		kind = "resolver"
	case ex.CustomJob.Kind != 0:
		kind = "customJob"
	}
	k.add(path, "unsupported executor kind %s (only container and importer executors are supported)", kind)
	return &dag.Container{Image: "unsupported", Path: path}
}

// importer returns the importer executor named label, or nil when it is not one.
func (k *kfpParser) importer(label string) *dag.Importer {
	if k.spec.DeploymentSpec == nil {
		return nil
	}
	ex := k.spec.DeploymentSpec.Executors[label]
	if ex == nil || ex.Importer == nil || ex.Container != nil {
		return nil
	}
	im, path := ex.Importer, "deploymentSpec.executors."+label+".importer"
	out := &dag.Importer{SchemaTitle: im.TypeSchema.SchemaTitle, SchemaVersion: im.TypeSchema.SchemaVersion, Reimport: im.Reimport, Path: path}
	switch u := im.ArtifactURI; {
	case u == nil:
		k.add(path+".artifactUri", "artifactUri is required")
	case u.RuntimeParameter != "" && u.Constant.Kind != 0:
		k.add(path+".artifactUri", "exactly one of constant and runtimeParameter is allowed")
	case u.RuntimeParameter != "":
		out.URIParam = u.RuntimeParameter
	case u.Constant.Kind != 0:
		v, err := nodeValue(&u.Constant)
		if s, ok := v.(string); err == nil && ok {
			out.URI = s
		} else {
			k.add(path+".artifactUri.constant", "the artifact URI must be a string")
		}
	default:
		k.add(path+".artifactUri", "artifactUri needs constant or runtimeParameter")
	}
	if im.Metadata.Kind != 0 {
		v, err := nodeValue(&im.Metadata)
		m, ok := v.(map[string]any)
		if err != nil || !ok {
			k.add(path+".metadata", "metadata must be a mapping")
		}
		out.Metadata = m
	}
	if im.TypeSchema.InstanceSchema != "" {
		k.add(path+".typeSchema.instanceSchema", "artifact types given by instanceSchema are not supported (use schemaTitle)")
	}
	if im.Properties.Kind != 0 || im.CustomProperties.Kind != 0 {
		k.add(path, "the deprecated importer properties/customProperties are not supported (use metadata)")
	}
	out.DownloadToWorkspace = im.DownloadToWorkspace
	return out
}

func (k *kfpParser) paramDefs(m map[string]kfpParamSpec, path string) []dag.ParamDef {
	var out []dag.ParamDef
	for _, n := range sortedKeys(m) {
		ps := m[n]
		d := dag.ParamDef{Name: n, Type: dag.ParamType(ps.ParameterType), Optional: ps.IsOptional, Description: ps.Description}
		if d.Type == "" {
			switch ps.Type {
			case "INT":
				d.Type = dag.ParamInteger
			case "DOUBLE":
				d.Type = dag.ParamDouble
			case "STRING":
				d.Type = dag.ParamString
			}
		}
		if ps.DefaultValue.Kind != 0 {
			v, err := nodeValue(&ps.DefaultValue)
			if err != nil {
				k.add(path+"."+n+".defaultValue", "%v", err)
			} else {
				d.Default, d.HasDefault = v, true
			}
		}
		out = append(out, d)
	}
	return out
}

func artifactDefs(m map[string]kfpArtifactSpec) []dag.ArtifactDef {
	var out []dag.ArtifactDef
	for _, n := range sortedKeys(m) {
		a := m[n]
		out = append(out, dag.ArtifactDef{
			Name: n, SchemaTitle: a.ArtifactType.SchemaTitle, SchemaVersion: a.ArtifactType.SchemaVersion,
			IsList: a.IsArtifactList, Optional: a.IsOptional, Description: a.Description,
		})
	}
	return out
}

func (k *kfpParser) dag(compPath string, d *kfpDAG) *dag.DAG {
	out := &dag.DAG{}
	for _, name := range sortedKeys(d.Tasks) {
		t := d.Tasks[name]
		tp := compPath + ".dag.tasks." + name
		if t == nil {
			k.add(tp, "empty task")
			continue
		}
		out.Tasks = append(out.Tasks, k.task(name, tp, t))
	}
	for _, n := range sortedKeys(d.Outputs.Parameters) {
		o := d.Outputs.Parameters[n]
		op := dag.DAGOutputParam{Name: n}
		switch {
		case o.ValueFromParameter != nil:
			op.Selectors = []dag.OutputSelector{{Task: o.ValueFromParameter.ProducerSubtask, Output: o.ValueFromParameter.OutputParameterKey}}
		case o.ValueFromOneof != nil:
			op.OneOf = true
			for _, s := range o.ValueFromOneof.ParameterSelectors {
				op.Selectors = append(op.Selectors, dag.OutputSelector{Task: s.ProducerSubtask, Output: s.OutputParameterKey})
			}
		}
		out.Outputs.Parameters = append(out.Outputs.Parameters, op)
	}
	for _, n := range sortedKeys(d.Outputs.Artifacts) {
		oa := dag.DAGOutputArtifact{Name: n}
		for _, s := range d.Outputs.Artifacts[n].ArtifactSelectors {
			oa.Selectors = append(oa.Selectors, dag.OutputSelector{Task: s.ProducerSubtask, Output: s.OutputArtifactKey})
		}
		out.Outputs.Artifacts = append(out.Outputs.Artifacts, oa)
	}
	return out
}

func (k *kfpParser) task(name, path string, t *kfpTask) *dag.Task {
	out := &dag.Task{
		Name: name, DisplayName: t.TaskInfo.Name, Path: path,
		ComponentRef: t.ComponentRef.Name,
		DependsOn:    append([]string(nil), t.DependentTasks...),
		Condition:    t.TriggerPolicy.Condition,
		Strategy:     dag.TriggerStrategy(t.TriggerPolicy.Strategy),
		EnableCache:  t.CachingOptions.EnableCache,
	}
	if out.Strategy == "TRIGGER_STRATEGY_UNSPECIFIED" {
		out.Strategy = ""
	}
	for _, n := range sortedKeys(t.Inputs.Parameters) {
		out.Inputs = append(out.Inputs, k.paramBinding(n, path+".inputs.parameters."+n, t.Inputs.Parameters[n]))
	}
	for _, n := range sortedKeys(t.Inputs.Artifacts) {
		out.Inputs = append(out.Inputs, k.artifactBinding(n, path+".inputs.artifacts."+n, t.Inputs.Artifacts[n]))
	}
	switch {
	case t.ParameterIterator != nil && t.ArtifactIterator != nil:
		k.add(path, "a task has at most one of parameterIterator and artifactIterator")
	case t.ParameterIterator != nil:
		it := &dag.Iterator{ItemInput: t.ParameterIterator.ItemInput, InputParameter: t.ParameterIterator.Items.InputParameter, ParallelismLimit: t.IteratorPolicy.ParallelismLimit}
		if raw := t.ParameterIterator.Items.Raw; raw != nil {
			var items []any
			if err := json.Unmarshal([]byte(*raw), &items); err != nil || items == nil && strings.TrimSpace(*raw) != "[]" {
				k.add(path+".parameterIterator.items.raw", "raw items must be a JSON list: %q", *raw)
			}
			it.Raw, it.HasRaw = items, true
		}
		out.Iterator = it
	case t.ArtifactIterator != nil:
		out.Iterator = &dag.Iterator{Artifact: true, ItemInput: t.ArtifactIterator.ItemInput, InputArtifact: t.ArtifactIterator.Items.InputArtifact, ParallelismLimit: t.IteratorPolicy.ParallelismLimit}
		out.Paths.Iterator = path + ".artifactIterator"
	}
	if r := t.RetryPolicy; r != nil {
		rp := &dag.RetryPolicy{MaxRetryCount: r.MaxRetryCount, Factor: r.BackoffFactor}
		rp.Backoff = k.duration(path+".retryPolicy.backoffDuration", r.BackoffDuration)
		rp.Max = k.duration(path+".retryPolicy.backoffMaxDuration", r.BackoffMaxDuration)
		out.Retry = rp
	}
	return out
}

// duration parses a protobuf Duration in its JSON form ("3600s", "0.5s").
func (k *kfpParser) duration(path, s string) time.Duration {
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		k.add(path, "invalid duration %q (want e.g. \"30s\")", s)
	}
	return d
}

func (k *kfpParser) paramBinding(name, path string, in kfpInputParam) dag.Binding {
	b := dag.Binding{Name: name, Kind: dag.IOParameter, Path: path, Selector: in.ParameterExpressionSelector}
	n := 0
	if in.TaskOutputParameter != nil {
		n++
		b.Source = dag.Source{Kind: dag.SourceTaskOutputParameter, Task: in.TaskOutputParameter.ProducerTask, Output: in.TaskOutputParameter.OutputParameterKey}
	}
	if in.ComponentInputParameter != "" {
		n++
		b.Source = dag.Source{Kind: dag.SourceComponentInput, Input: in.ComponentInputParameter}
	}
	if in.TaskFinalStatus != nil {
		n++
		b.Source = dag.Source{Kind: dag.SourceTaskFinalStatus, Task: in.TaskFinalStatus.ProducerTask}
	}
	if rv := in.RuntimeValue; rv != nil {
		n++
		switch {
		case rv.Constant.Kind != 0:
			v, err := nodeValue(&rv.Constant)
			if err != nil {
				k.add(path+".runtimeValue.constant", "%v", err)
			}
			b.Source = dag.Source{Kind: dag.SourceConstant, Constant: v}
		case rv.ConstantValue != nil && rv.ConstantValue.IntValue != nil:
			b.Source = dag.Source{Kind: dag.SourceConstant, Constant: float64(*rv.ConstantValue.IntValue)}
		case rv.ConstantValue != nil && rv.ConstantValue.DoubleValue != nil:
			b.Source = dag.Source{Kind: dag.SourceConstant, Constant: *rv.ConstantValue.DoubleValue}
		case rv.ConstantValue != nil && rv.ConstantValue.StringValue != nil:
			b.Source = dag.Source{Kind: dag.SourceConstant, Constant: *rv.ConstantValue.StringValue}
		case rv.RuntimeParameter != "":
			b.Source = dag.Source{Kind: dag.SourceComponentInput, Input: rv.RuntimeParameter}
		default:
			k.add(path+".runtimeValue", "runtimeValue needs constant or runtimeParameter")
			b.Source = dag.Source{Kind: dag.SourceConstant}
		}
	}
	if n > 1 {
		k.add(path, "exactly one of taskOutputParameter, runtimeValue, componentInputParameter, taskFinalStatus is allowed")
	}
	return b
}

func (k *kfpParser) artifactBinding(name, path string, in kfpInputArtifact) dag.Binding {
	b := dag.Binding{Name: name, Kind: dag.IOArtifact, Path: path}
	switch {
	case in.TaskOutputArtifact != nil && in.ComponentInputArtifact != "":
		k.add(path, "exactly one of taskOutputArtifact, componentInputArtifact is allowed")
	case in.TaskOutputArtifact != nil:
		b.Source = dag.Source{Kind: dag.SourceTaskOutputArtifact, Task: in.TaskOutputArtifact.ProducerTask, Output: in.TaskOutputArtifact.OutputArtifactKey}
	case in.ComponentInputArtifact != "":
		b.Source = dag.Source{Kind: dag.SourceComponentInput, Input: in.ComponentInputArtifact}
	}
	return b
}
