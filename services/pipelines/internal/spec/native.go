package spec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluice-ml/sluice/services/pipelines/internal/dag"
)

// Native format identifiers.
const (
	NativeAPIVersion = "sluice.io/v1"
	NativeKind       = "Pipeline"
)

// Names the native format gives generated parts of the model, mirroring
// what kfp.compiler generates for dsl.ExitHandler.
const (
	exitBodyTask      = "exit-handler-1"
	exitBodyComponent = "comp-exit-handler-1"
	defaultExitTask   = "exit-handler"
)

type nativeDoc struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name        string `yaml:"name"`
		Description string `yaml:"description"`
	} `yaml:"metadata"`
	Spec struct {
		Inputs      map[string]nativeParam `yaml:"inputs"`
		Tasks       map[string]*nativeTask `yaml:"tasks"`
		ExitHandler *nativeExitHandler     `yaml:"exitHandler"`
	} `yaml:"spec"`
}

type nativeParam struct {
	Type        string    `yaml:"type"`
	Default     yaml.Node `yaml:"default"`
	Optional    bool      `yaml:"optional"`
	Description string    `yaml:"description"`
}

type nativeTask struct {
	DisplayName string               `yaml:"displayName"`
	Image       string               `yaml:"image"`
	Command     []string             `yaml:"command"`
	Args        []string             `yaml:"args"`
	Env         map[string]string    `yaml:"env"`
	Inputs      map[string]yaml.Node `yaml:"inputs"`
	Outputs     struct {
		Parameters nameTypes `yaml:"parameters"`
		Artifacts  nameTypes `yaml:"artifacts"`
	} `yaml:"outputs"`
	DependsOn []string `yaml:"dependsOn"`
	When      string   `yaml:"when"`
	Strategy  string   `yaml:"strategy"`
	Retry     *struct {
		MaxRetries int     `yaml:"maxRetries"`
		Backoff    string  `yaml:"backoff"`
		Factor     float64 `yaml:"factor"`
		MaxBackoff string  `yaml:"maxBackoff"`
	} `yaml:"retry"`
	ForEach *struct {
		Items       yaml.Node `yaml:"items"`
		As          string    `yaml:"as"`
		Type        string    `yaml:"type"`
		Parallelism int       `yaml:"parallelism"`
	} `yaml:"forEach"`
	Cache bool `yaml:"cache"`
	// TrainingJob is a TFJob/PyTorchJob document run by the training
	// service instead of a container (image, command, args, env).
	TrainingJob yaml.Node `yaml:"trainingJob"`
}

type nativeExitHandler struct {
	Name       string `yaml:"name"`
	nativeTask `yaml:",inline"`
}

// nameTypes is an output list: either a list of names or a map of name to
// {type, description}.
type nameTypes []nameType

type nameType struct {
	Name        string
	Type        string
	Description string
	// Unknown lists keys of the {type, description} form that are not fields (reported with their path).
	Unknown []string
}

var nameTypeKeys = map[string]bool{"type": true, "description": true}

func (n *nameTypes) UnmarshalYAML(node *yaml.Node) error {
	switch node.Kind {
	case yaml.SequenceNode:
		var names []string
		if err := node.Decode(&names); err != nil {
			return err
		}
		for _, s := range names {
			*n = append(*n, nameType{Name: s})
		}
		return nil
	case yaml.MappingNode:
		var m map[string]yaml.Node
		if err := node.Decode(&m); err != nil {
			return err
		}
		for _, k := range sortedKeys(m) {
			nt := nameType{Name: k}
			v := m[k]
			switch v.Kind {
			case 0:
			case yaml.MappingNode:
				for i := 0; i+1 < len(v.Content); i += 2 {
					if key := v.Content[i].Value; !nameTypeKeys[key] {
						nt.Unknown = append(nt.Unknown, key)
					}
				}
				var f struct {
					Type        string `yaml:"type"`
					Description string `yaml:"description"`
				}
				if err := v.Decode(&f); err != nil {
					return err
				}
				nt.Type, nt.Description = f.Type, f.Description
			case yaml.ScalarNode:
				if v.Tag != "!!null" {
					nt.Unknown = append(nt.Unknown, "")
				}
			default:
				nt.Unknown = append(nt.Unknown, "")
			}
			*n = append(*n, nt)
		}
		return nil
	}
	return fmt.Errorf("line %d: outputs must be a list of names or a map of name to {type}", node.Line)
}

type nativeInput struct {
	Value       yaml.Node `yaml:"value"`
	FromInput   string    `yaml:"fromInput"`
	FromTask    string    `yaml:"fromTask"`
	FinalStatus bool      `yaml:"finalStatus"`
	Type        string    `yaml:"type"`
	Select      string    `yaml:"select"`
}

var nativeInputKeys = map[string]bool{"value": true, "fromInput": true, "fromTask": true, "finalStatus": true, "type": true, "select": true}

type nativeParser struct {
	doc  *nativeDoc
	errs dag.FieldErrors
}

func (n *nativeParser) add(path, format string, args ...any) {
	n.errs = append(n.errs, dag.FieldError{Path: path, Message: fmt.Sprintf(format, args...)})
}

// ParseNative parses a native Sluice pipeline (apiVersion sluice.io/v1, kind
// Pipeline; see docs/pipeline-spec.md) and compiles it. Unknown fields are
// errors. Errors are [dag.FieldErrors] with paths such as
// `spec.tasks.join.inputs.text1`.
func ParseNative(data []byte) (*dag.Pipeline, error) {
	if _, err := firstDocument(data); err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var doc nativeDoc
	if err := dec.Decode(&doc); err != nil {
		return nil, yamlError(err)
	}
	n := &nativeParser{doc: &doc}
	p := n.pipeline()
	if err := dag.Compile(p); err != nil {
		n.errs = append(n.errs, dag.AsFieldErrors(err)...)
	}
	return finish(p, n.errs)
}

func (n *nativeParser) pipeline() *dag.Pipeline {
	d := n.doc
	if d.APIVersion != NativeAPIVersion {
		n.add("apiVersion", "must be %q", NativeAPIVersion)
	}
	if d.Kind != NativeKind {
		n.add("kind", "must be %q", NativeKind)
	}
	p := &dag.Pipeline{Format: dag.FormatNative, Name: d.Metadata.Name, DisplayName: d.Metadata.Name, Description: d.Metadata.Description, Components: map[string]*dag.Component{}}
	switch {
	case d.Metadata.Name == "":
		n.add("metadata.name", "pipeline name is required")
		p.Name = "pipeline"
	case !dag.SafeName(d.Metadata.Name):
		n.add("metadata.name", "pipeline name %q is not subject-safe (lowercase letters, digits, '-', '_'; e.g. %q)", d.Metadata.Name, dag.Slug(d.Metadata.Name))
		p.Name = "pipeline"
	}

	rootPaths := dag.ComponentPaths{InputParams: "spec.inputs", InputArtifacts: "spec.inputs", OutputParams: "spec.outputs", OutputArtifacts: "spec.outputs", Tasks: "spec.tasks", TypeField: "type", DefaultField: "default"}
	p.Root = &dag.Component{Name: dag.RootComponent, Kind: dag.KindDAG, Path: "spec", Paths: rootPaths, DAG: &dag.DAG{}}
	for _, name := range sortedKeys(d.Spec.Inputs) {
		in := d.Spec.Inputs[name]
		def := dag.ParamDef{Name: name, Type: paramType(in.Type), Optional: in.Optional, Description: in.Description}
		if in.Default.Kind != 0 {
			v, err := nodeValue(&in.Default)
			if err != nil {
				n.add("spec.inputs."+name+".default", "%v", err)
			} else {
				def.Default, def.HasDefault = v, true
			}
		}
		p.Root.InputParams = append(p.Root.InputParams, def)
	}
	if len(d.Spec.Tasks) == 0 {
		n.add("spec.tasks", "at least one task is required")
	}

	// Outputs first, so bindings can tell parameters from artifacts.
	outs := map[string]*dag.Component{}
	for i, name := range sortedKeys(d.Spec.Tasks) {
		if t := d.Spec.Tasks[name]; t != nil {
			outs[name] = n.taskComponent(compName(name, i), "spec.tasks."+name, t)
		}
	}

	var tasks []*dag.Task
	for _, name := range sortedKeys(d.Spec.Tasks) {
		t := d.Spec.Tasks[name]
		tp := "spec.tasks." + name
		if t == nil {
			n.add(tp, "empty task")
			continue
		}
		comp := outs[name]
		p.Components[comp.Name] = comp
		tasks = append(tasks, n.task(name, tp, t, comp, p.Root, d.Spec.Tasks, outs, false))
	}

	eh := d.Spec.ExitHandler
	if eh == nil {
		p.Root.DAG.Tasks = tasks
		return p
	}
	// Exit handler: like kfp.compiler, wrap the tasks in a DAG task
	// "exit-handler-1" and run the handler after it with
	// ALL_UPSTREAM_TASKS_COMPLETED.
	body := &dag.Component{Name: exitBodyComponent, Kind: dag.KindDAG, Path: "spec", Paths: rootPaths, DAG: &dag.DAG{Tasks: tasks}}
	bodyTask := &dag.Task{Name: exitBodyTask, ComponentRef: exitBodyComponent, Path: "spec.tasks", Paths: dag.TaskPaths{ComponentRef: "spec.tasks"}}
	for _, in := range p.Root.InputParams {
		body.InputParams = append(body.InputParams, dag.ParamDef{Name: in.Name, Type: in.Type, Optional: in.Optional || in.HasDefault})
		bodyTask.Inputs = append(bodyTask.Inputs, dag.Binding{Name: in.Name, Kind: dag.IOParameter, Path: "spec.inputs." + in.Name,
			Source: dag.Source{Kind: dag.SourceComponentInput, Input: in.Name}})
	}
	p.Components[body.Name] = body
	name := eh.Name
	if name == "" {
		name = defaultExitTask
	}
	ep := "spec.exitHandler"
	comp := n.taskComponent("comp-"+name, ep, &eh.nativeTask)
	if !dag.SafeName(name) {
		comp.Name = "comp-exit-handler-task"
	}
	p.Components[comp.Name] = comp
	if len(eh.DependsOn) > 0 || eh.ForEach != nil || eh.When != "" {
		n.add(ep, "an exit handler takes no dependsOn, forEach or when")
		eh.DependsOn, eh.ForEach, eh.When = nil, nil, ""
	}
	exit := n.task(name, ep, &eh.nativeTask, comp, p.Root, nil, nil, true)
	exit.DependsOn = []string{exitBodyTask}
	exit.Strategy = dag.AllUpstreamCompleted
	exit.ExitHandler = true
	p.Root.DAG.Tasks = []*dag.Task{bodyTask, exit}
	return p
}

func compName(task string, i int) string {
	if dag.SafeName(task) {
		return "comp-" + task
	}
	return fmt.Sprintf("comp-task-%d", i)
}

func paramType(s string) dag.ParamType {
	if s == "" {
		return dag.ParamString
	}
	return dag.ParamType(s)
}

// taskComponent builds the container component of an inline native task
// (outputs and executor; inputs are added by task).
func (n *nativeParser) taskComponent(name, tp string, t *nativeTask) *dag.Component {
	if t.TrainingJob.Kind != 0 {
		return n.trainingJobComponent(name, tp, t)
	}
	c := &dag.Component{
		Name: name, Kind: dag.KindContainer, Path: tp, ExecutorLabel: "",
		Paths:    dag.ComponentPaths{InputParams: tp + ".inputs", InputArtifacts: tp + ".inputs", OutputParams: tp + ".outputs.parameters", OutputArtifacts: tp + ".outputs.artifacts", TypeField: "type", DefaultField: "default"},
		Executor: &dag.Container{Image: t.Image, Command: t.Command, Args: t.Args, Path: tp},
	}
	for _, k := range sortedKeys(t.Env) {
		c.Executor.Env = append(c.Executor.Env, dag.EnvVar{Name: k, Value: t.Env[k]})
	}
	n.unknownOutputKeys(tp, t)
	for _, o := range t.Outputs.Parameters {
		c.OutputParams = append(c.OutputParams, dag.ParamDef{Name: o.Name, Type: paramType(o.Type), Description: o.Description})
	}
	for _, o := range t.Outputs.Artifacts {
		st := o.Type
		if st == "" {
			st = "system.Artifact"
		}
		c.OutputArtifacts = append(c.OutputArtifacts, dag.ArtifactDef{Name: o.Name, SchemaTitle: st, Description: o.Description})
	}
	return c
}

// task builds a task and its component's inputs; all maps are walked sorted.
func (n *nativeParser) task(name, tp string, t *nativeTask, comp *dag.Component, root *dag.Component,
	all map[string]*nativeTask, outs map[string]*dag.Component, exit bool) *dag.Task {
	out := &dag.Task{
		Name: name, DisplayName: t.DisplayName, Path: tp, ComponentRef: comp.Name,
		DependsOn: append([]string(nil), t.DependsOn...), Condition: t.When,
		Strategy: dag.TriggerStrategy(t.Strategy), EnableCache: t.Cache,
		Paths: dag.TaskPaths{ComponentRef: tp, DependsOn: tp + ".dependsOn", Condition: tp + ".when", Strategy: tp + ".strategy", Iterator: tp + ".forEach", Retry: tp + ".retry"},
	}
	for _, in := range sortedKeys(t.Inputs) {
		node := t.Inputs[in]
		n.input(out, comp, root, in, tp+".inputs."+in, &node, all, outs, exit)
	}
	if f := t.ForEach; f != nil {
		n.forEach(out, comp, root, tp+".forEach", all, outs, t)
	}
	if r := t.Retry; r != nil {
		out.Retry = &dag.RetryPolicy{MaxRetryCount: r.MaxRetries, Factor: r.Factor,
			Backoff: n.duration(tp+".retry.backoff", r.Backoff), Max: n.duration(tp+".retry.maxBackoff", r.MaxBackoff)}
	}
	sortParams(comp.InputParams)
	sort.Slice(comp.InputArtifacts, func(i, j int) bool { return comp.InputArtifacts[i].Name < comp.InputArtifacts[j].Name })
	if comp.Executor == nil {
		return out
	}
	comp.Executor.Command = n.aliases(comp, tp+".command", t.Command)
	comp.Executor.Args = n.aliases(comp, tp+".args", t.Args)
	return out
}

// trainingJobComponent builds the component of a `trainingJob:` task: the
// document as JSON, and the output artifact "model" when declared. A
// training job replaces the container fields, runs once per attempt and is
// never cached or looped.
func (n *nativeParser) trainingJobComponent(name, tp string, t *nativeTask) *dag.Component {
	c := &dag.Component{
		Name: name, Kind: dag.KindTrainingJob, Path: tp,
		Paths: dag.ComponentPaths{InputParams: tp + ".inputs", InputArtifacts: tp + ".inputs", OutputParams: tp + ".outputs.parameters", OutputArtifacts: tp + ".outputs.artifacts", TypeField: "type", DefaultField: "default"},
	}
	for _, f := range []struct {
		field string
		set   bool
	}{{"image", t.Image != ""}, {"command", len(t.Command) > 0}, {"args", len(t.Args) > 0},
		{"env", len(t.Env) > 0}, {"forEach", t.ForEach != nil}, {"cache", t.Cache}} {
		if field, set := f.field, f.set; set {
			n.add(tp+"."+field, "not allowed with trainingJob (the job document defines what runs)")
		}
	}
	if t.ForEach != nil {
		t.ForEach = nil
	}
	if len(t.Inputs) > 0 {
		n.add(tp+".inputs", "a trainingJob task takes no inputs (order it with dependsOn)")
		t.Inputs = nil
	}
	if t.TrainingJob.Kind != yaml.MappingNode {
		n.add(tp+".trainingJob", "must be a TFJob or PyTorchJob document (a mapping)")
	} else if v, err := nodeValue(&t.TrainingJob); err != nil {
		n.add(tp+".trainingJob", "%v", err)
	} else if raw, err := json.Marshal(v); err != nil {
		n.add(tp+".trainingJob", "%v", err)
	} else {
		c.TrainingJob = raw
	}
	n.unknownOutputKeys(tp, t)
	for _, o := range t.Outputs.Parameters {
		c.OutputParams = append(c.OutputParams, dag.ParamDef{Name: o.Name, Type: paramType(o.Type), Description: o.Description})
	}
	for _, o := range t.Outputs.Artifacts {
		c.OutputArtifacts = append(c.OutputArtifacts, dag.ArtifactDef{Name: o.Name, SchemaTitle: orStr(o.Type, "system.Model"), Description: o.Description})
	}
	return c
}

// unknownOutputKeys reports keys of the map form of outputs that are not {type, description}; there is
// no output default or any other field, so a typo is never silently dropped.
func (n *nativeParser) unknownOutputKeys(tp string, t *nativeTask) {
	for _, kl := range []struct {
		kind string
		list nameTypes
	}{{"parameters", t.Outputs.Parameters}, {"artifacts", t.Outputs.Artifacts}} {
		kind := kl.kind
		for _, o := range kl.list {
			for _, k := range o.Unknown {
				p := tp + ".outputs." + kind + "." + o.Name
				if k == "" {
					n.add(p, "must be a map {type, description} (or list the names)")
					continue
				}
				n.add(p+"."+k, "unknown key (an output takes only type and description)")
			}
		}
	}
}

func (n *nativeParser) duration(path, s string) time.Duration {
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		n.add(path, "invalid duration %q (want e.g. \"30s\", \"2m\")", s)
	}
	return d
}

// input adds one input binding to t and its declaration to comp.
func (n *nativeParser) input(t *dag.Task, comp, root *dag.Component, name, path string, node *yaml.Node,
	all map[string]*nativeTask, outs map[string]*dag.Component, exit bool) {
	var obj nativeInput
	isObj := false
	if node.Kind == yaml.MappingNode {
		isObj = true
		for i := 0; i+1 < len(node.Content); i += 2 {
			if !nativeInputKeys[node.Content[i].Value] {
				n.add(path+"."+node.Content[i].Value, "unknown key (an input is a constant, or {value|fromInput|fromTask|finalStatus, type, select}; write a struct constant as {value: {...}})")
				return
			}
		}
		if err := node.Decode(&obj); err != nil {
			n.add(path, "%v", err)
			return
		}
	}
	declared := dag.ParamType(obj.Type)
	b := dag.Binding{Name: name, Kind: dag.IOParameter, Path: path, Selector: obj.Select}
	addParam := func(t dag.ParamType) {
		if declared != "" {
			t = declared
		}
		if t == "" || obj.Select != "" && declared == "" {
			t = dag.ParamString
		}
		comp.InputParams = append(comp.InputParams, dag.ParamDef{Name: name, Type: t})
	}
	sources := 0
	for _, set := range []bool{!isObj || obj.Value.Kind != 0, obj.FromInput != "", obj.FromTask != "", obj.FinalStatus} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		n.add(path, "exactly one of value, fromInput, fromTask or finalStatus is required")
		return
	}
	switch {
	case !isObj || obj.Value.Kind != 0:
		vn := node
		if isObj {
			vn = &obj.Value
		}
		v, err := nodeValue(vn)
		if err != nil {
			n.add(path, "%v", err)
			return
		}
		b.Source = dag.Source{Kind: dag.SourceConstant, Constant: v}
		addParam(inferType(v))
	case obj.FromInput != "":
		b.Source = dag.Source{Kind: dag.SourceComponentInput, Input: obj.FromInput}
		def, _ := root.InputParam(obj.FromInput)
		addParam(def.Type)
	case obj.FromTask != "":
		if exit {
			n.add(path+".fromTask", "an exit handler cannot read task outputs; use finalStatus, fromInput or value")
			return
		}
		producer, output, ok := strings.Cut(obj.FromTask, ".")
		if !ok || producer == "" || output == "" {
			n.add(path+".fromTask", "want <task>.<output>, got %q", obj.FromTask)
			return
		}
		b.Source = dag.Source{Kind: dag.SourceTaskOutputParameter, Task: producer, Output: output}
		pc := outs[producer]
		fanIn := all[producer] != nil && all[producer].ForEach != nil
		if pc != nil {
			if a, ok := pc.OutputArtifact(output); ok {
				if declared != "" {
					n.add(path, "type mismatch: output %q of task %q is an artifact, declared type %s is a parameter type", output, producer, declared)
					return
				}
				b.Kind, b.Source.Kind = dag.IOArtifact, dag.SourceTaskOutputArtifact
				comp.InputArtifacts = append(comp.InputArtifacts, dag.ArtifactDef{Name: name, SchemaTitle: a.SchemaTitle, IsList: fanIn})
				break
			}
			if pd, ok := pc.OutputParam(output); ok {
				if fanIn {
					pd.Type = dag.ParamList
				}
				addParam(pd.Type)
				break
			}
		}
		addParam("")
	case obj.FinalStatus:
		if !exit {
			n.add(path+".finalStatus", "finalStatus is only available to the exit handler")
			return
		}
		b.Source = dag.Source{Kind: dag.SourceTaskFinalStatus, Task: exitBodyTask}
		comp.InputParams = append(comp.InputParams, dag.ParamDef{Name: name, Type: dag.ParamTaskFinalStatus})
	}
	t.Inputs = append(t.Inputs, b)
}

func (n *nativeParser) forEach(t *dag.Task, comp, root *dag.Component, path string, all map[string]*nativeTask, outs map[string]*dag.Component, nt *nativeTask) {
	f := nt.ForEach
	as := f.As
	if as == "" {
		as = "item"
	}
	it := &dag.Iterator{ItemInput: as, ParallelismLimit: f.Parallelism}
	itemType := dag.ParamType(f.Type)
	switch f.Items.Kind {
	case yaml.SequenceNode:
		v, err := nodeValue(&f.Items)
		if err != nil {
			n.add(path+".items", "%v", err)
			return
		}
		it.Raw, _ = v.([]any)
		it.HasRaw = true
		if itemType == "" && len(it.Raw) > 0 {
			itemType = inferType(it.Raw[0])
		}
	case yaml.MappingNode:
		listName := as + "-items"
		n.input(t, comp, root, listName, path+".items", &f.Items, all, outs, false)
		it.InputParameter = listName
	case 0:
		n.add(path+".items", "items is required: a list, {fromInput: name} or {fromTask: task.output}")
		return
	default:
		n.add(path+".items", "items must be a list, {fromInput: name} or {fromTask: task.output}")
		return
	}
	if itemType == "" {
		itemType = dag.ParamString
	}
	comp.InputParams = append(comp.InputParams, dag.ParamDef{Name: as, Type: itemType})
	t.Iterator = it
}

// inferType is the parameter type of a constant's JSON kind.
func inferType(v any) dag.ParamType {
	switch x := v.(type) {
	case string:
		return dag.ParamString
	case bool:
		return dag.ParamBoolean
	case float64:
		if x == math.Trunc(x) {
			return dag.ParamInteger
		}
		return dag.ParamDouble
	case []any:
		return dag.ParamList
	case map[string]any:
		return dag.ParamStruct
	}
	return dag.ParamString
}

// aliasRe matches the native placeholder aliases {{inputs.NAME[.uri|.path]}}
// and {{outputs.NAME[.uri|.path]}}.
var aliasRe = regexp.MustCompile(`\{\{\s*(inputs|outputs)\.([A-Za-z0-9_][-A-Za-z0-9_.]*?)(?:\.(uri|path))?\s*\}\}`)

// aliases rewrites native placeholder aliases into KFP placeholders:
// {{inputs.p}} -> {{$.inputs.parameters['p']}} (parameter) or
// {{$.inputs.artifacts['p'].path}} (artifact); {{outputs.p}} ->
// {{$.outputs.parameters['p'].output_file}} or
// {{$.outputs.artifacts['p'].path}}; a .uri/.path suffix selects the
// artifact field. The rewrite happens once, on the spec text.
func (n *nativeParser) aliases(comp *dag.Component, path string, list []string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		fp := fmt.Sprintf("%s[%d]", path, i)
		out[i] = aliasRe.ReplaceAllStringFunc(s, func(m string) string {
			sm := aliasRe.FindStringSubmatch(m)
			dir, name, field := sm[1], sm[2], sm[3]
			if dir == "inputs" {
				if _, ok := comp.InputArtifact(name); ok {
					return fmt.Sprintf("{{$.inputs.artifacts['%s'].%s}}", name, orStr(field, "path"))
				}
				if _, ok := comp.InputParam(name); ok && field == "" {
					return fmt.Sprintf("{{$.inputs.parameters['%s']}}", name)
				}
			} else {
				if _, ok := comp.OutputArtifact(name); ok {
					return fmt.Sprintf("{{$.outputs.artifacts['%s'].%s}}", name, orStr(field, "path"))
				}
				if _, ok := comp.OutputParam(name); ok && field == "" {
					return fmt.Sprintf("{{$.outputs.parameters['%s'].output_file}}", name)
				}
			}
			n.add(fp, "placeholder %s refers to unknown %s %q", m, strings.TrimSuffix(dir, "s"), name)
			return m
		})
	}
	return out
}

func orStr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// sortParams keeps component interfaces in name order.
func sortParams(ps []dag.ParamDef) {
	sort.Slice(ps, func(i, j int) bool { return ps[i].Name < ps[j].Name })
}
