package dag

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Compile validates a pipeline built by a parser and fills the derived
// fields: each DAG's tasks in topological order, Task.DependsOn (explicit
// dependencies plus every data producer), Binding.Type and
// Binding.Templated, default strategy and retry values, ExitHandler for KFP
// exit-handler tasks, normalized defaults and constants.
//
// Every problem is reported at once as [FieldErrors] (which matches
// [ErrInvalidSpec] with errors.Is): dependency cycles (naming the tasks),
// component cycles, unknown components, tasks, inputs and outputs, missing
// required inputs, type mismatches (constant vs declared type, artifact
// bound to a parameter, incompatible parameter types), unknown or
// unresolvable placeholders, invalid CEL, unsafe names.
//
// Compile is deterministic: the same input yields the same model and errors.
func Compile(p *Pipeline) error {
	c := &compiler{p: p}
	c.run()
	return c.errs.err()
}

type compiler struct {
	p    *Pipeline
	errs errorList
}

func (c *compiler) run() {
	p := c.p
	if !SafeName(p.Name) {
		c.errs.add("name", "pipeline name %q is not subject-safe (want %s)", p.Name, safeNameRe)
	}
	if p.Root == nil {
		c.errs.add("root", "pipeline has no root DAG")
		return
	}
	if p.Root.Kind != KindDAG || p.Root.DAG == nil {
		c.errs.add(p.Root.Path, "root must be a DAG")
		return
	}
	c.component(p.Root, true)
	for _, name := range p.ComponentNames() {
		comp := p.Components[name]
		if comp == nil {
			c.errs.add("components."+name, "empty component")
			continue
		}
		if comp.Name != name {
			comp.Name = name
		}
		if !SafeName(name) {
			c.errs.add(comp.Path, "component name %q is not subject-safe (want %s)", name, safeNameRe)
		}
		c.component(comp, false)
	}
	c.componentCycles()
}

// component validates a component's interface and implementation.
func (c *compiler) component(comp *Component, root bool) {
	ps := comp.Paths
	inPath, outPath := comp.Path+".inputDefinitions", comp.Path+".outputDefinitions"
	c.params(comp.InputParams, orDefault(ps.InputParams, inPath+".parameters"), true, ps)
	c.artifacts(comp.InputArtifacts, orDefault(ps.InputArtifacts, inPath+".artifacts"))
	c.params(comp.OutputParams, orDefault(ps.OutputParams, outPath+".parameters"), false, ps)
	c.artifacts(comp.OutputArtifacts, orDefault(ps.OutputArtifacts, outPath+".artifacts"))
	switch comp.Kind {
	case KindContainer:
		if comp.Executor == nil && comp.ExecutorLabel != "" {
			c.errs.add(comp.Path+".executorLabel", "unknown executor %q (not in deploymentSpec.executors)", comp.ExecutorLabel)
			return
		}
		if comp.Executor == nil {
			c.errs.add(comp.Path, "container component has no executor")
			return
		}
		c.container(comp)
	case KindDAG:
		if comp.DAG == nil {
			c.errs.add(comp.Path, "DAG component has no dag")
			return
		}
		c.dag(comp)
	case KindTrainingJob:
		c.trainingJob(comp)
	case KindImporter:
		c.importer(comp)
	default:
		c.errs.add(comp.Path, "component has neither an executor nor a dag")
	}
}

func (c *compiler) params(ps []ParamDef, path string, inputs bool, cp ComponentPaths) {
	seen := map[string]bool{}
	for i := range ps {
		d := &ps[i]
		fp := path + "." + d.Name
		if !SafeIOName(d.Name) {
			c.errs.add(fp, "unsafe parameter name %q (want %s, no \"..\")", d.Name, ioNameRe)
		}
		if seen[d.Name] {
			c.errs.add(fp, "duplicate parameter")
		}
		seen[d.Name] = true
		if !d.Type.Valid() {
			c.errs.add(fp+"."+orDefault(cp.TypeField, "parameterType"), "unknown parameter type %q", d.Type)
			continue
		}
		if d.HasDefault && inputs {
			v, err := CoerceValue(d.Default, d.Type)
			if err != nil {
				c.errs.add(fp+"."+orDefault(cp.DefaultField, "defaultValue"), "%v", err)
				continue
			}
			d.Default = v
		}
	}
}

func (c *compiler) artifacts(as []ArtifactDef, path string) {
	seen := map[string]bool{}
	for _, a := range as {
		fp := path + "." + a.Name
		if !SafeIOName(a.Name) {
			c.errs.add(fp, "unsafe artifact name %q (want %s, no \"..\", no '/', not absolute)", a.Name, ioNameRe)
		}
		if seen[a.Name] {
			c.errs.add(fp, "duplicate artifact")
		}
		seen[a.Name] = true
	}
}

// container checks the executor and every placeholder in it.
func (c *compiler) container(comp *Component) {
	ex := comp.Executor
	if strings.TrimSpace(ex.Image) == "" {
		c.errs.add(ex.Path+".image", "image is required")
	}
	if stub := strings.TrimPrefix(ex.Image, "argostub/"); stub != ex.Image && PVCOperation(ex) == "" {
		// KFP's driver knows only argostub/createpvc and argostub/deletepvc (see PVCOperation).
		c.errs.add(ex.Path+".image", "stub executor %s is not supported: KFP's backend intercepts only argostub/createpvc and argostub/deletepvc", ex.Image)
	}
	check := func(field string, list []string) {
		for i, s := range list {
			fp := fmt.Sprintf("%s.%s[%d]", ex.Path, field, i)
			phs, err := Placeholders(s)
			if err != nil {
				c.errs.add(fp, "%v", err)
				continue
			}
			for _, ph := range phs {
				if msg := componentPlaceholderProblem(comp, ph); msg != "" {
					c.errs.add(fp, "%s", msg)
				}
			}
			for _, name := range StructuredInputs(s) {
				_, isParam := comp.InputParam(name)
				_, isArt := comp.InputArtifact(name)
				if !isParam && !isArt {
					c.errs.add(fp, "IfPresent refers to unknown input %q", name)
				}
			}
			if t := strings.TrimSpace(s); strings.HasPrefix(t, "{\"") && strings.HasSuffix(t, "}") {
				if _, ok := parseStructured(t); !ok && json.Valid([]byte(t)) {
					var m map[string]any
					if json.Unmarshal([]byte(t), &m) == nil && (m["IfPresent"] != nil || m["Concat"] != nil || m["IfPresentPlaceholder"] != nil || m["ConcatPlaceholder"] != nil) {
						c.errs.add(fp, "malformed structured placeholder %s (want {\"IfPresent\": {\"InputName\", \"Then\", \"Else\"}} or {\"Concat\": [...]})", truncate(t))
					}
				}
			}
		}
	}
	check("command", ex.Command)
	check("args", ex.Args)
}

// importer checks an importer executor: one output artifact, the URI source,
// and the placeholders of its metadata (input parameters of the component only).
func (c *compiler) importer(comp *Component) {
	im := comp.Importer
	if im == nil {
		c.errs.add(comp.Path, "importer component has no importer spec")
		return
	}
	if len(comp.OutputArtifacts) != 1 || len(comp.OutputParams) != 0 {
		c.errs.add(comp.Path+".outputDefinitions", "an importer component has exactly one output artifact and no output parameters")
	} else if out := comp.OutputArtifacts[0]; !schemaCompatible(im.SchemaTitle, out.SchemaTitle) {
		c.errs.add(im.Path+".typeSchema.schemaTitle", "type mismatch: the importer imports %s, its output artifact %q is %s", im.SchemaTitle, out.Name, out.SchemaTitle)
	}
	switch {
	case im.URIParam != "":
		def, ok := comp.InputParam(im.URIParam)
		switch {
		case !ok:
			c.errs.add(im.Path+".artifactUri.runtimeParameter", "unknown input parameter %q of component %q", im.URIParam, comp.Name)
		case def.Type != ParamString:
			c.errs.add(im.Path+".artifactUri.runtimeParameter", "input parameter %q is %s; an artifact URI is a STRING", im.URIParam, def.Type)
		}
	case im.URI != "":
		if err := CheckImportURI(im.URI); err != nil {
			c.errs.add(im.Path+".artifactUri.constant", "%v", err)
		}
	}
	walkStrings(im.Metadata, func(s string) {
		phs, err := Placeholders(s)
		if err != nil {
			c.errs.add(im.Path+".metadata", "%v", err)
			return
		}
		for _, ph := range phs {
			if ph.Kind != PhInputParameter {
				c.errs.add(im.Path+".metadata", "placeholder %s is not allowed in importer metadata (only input parameters)", ph.Raw)
			} else if _, ok := comp.InputParam(ph.Name); !ok {
				c.errs.add(im.Path+".metadata", "placeholder %s refers to unknown input parameter %q", ph.Raw, ph.Name)
			}
		}
	})
}

// UsesWorkspace reports whether a run of p needs KFP's shared workspace: a `{{$.workspace_path}}`
// placeholder in a container's command or args or in a task's constant input, or an importer with
// downloadToWorkspace.
func UsesWorkspace(p *Pipeline) bool {
	has := func(s string) bool { return strings.Contains(s, WorkspacePlaceholder) }
	comps := append([]*Component{p.Root}, make([]*Component, 0, len(p.Components))...)
	for _, n := range p.ComponentNames() {
		comps = append(comps, p.Components[n])
	}
	for _, c := range comps {
		if c == nil {
			continue
		}
		if c.Importer != nil && c.Importer.DownloadToWorkspace {
			return true // the importer downloads its artifact into the workspace
		}
		if c.Executor != nil {
			for _, s := range append(append([]string(nil), c.Executor.Command...), c.Executor.Args...) {
				if has(s) {
					return true
				}
			}
		}
		if c.DAG == nil {
			continue
		}
		for _, t := range c.DAG.Tasks {
			for _, b := range t.Inputs {
				if s, ok := b.Source.Constant.(string); ok && b.Source.Kind == SourceConstant && has(s) {
					return true
				}
			}
		}
	}
	return false
}

// CheckImportURI says whether an importer can import uri: an s3:// URI (KFP also
// writes minio:// for the same store). Steps read imported artifacts from
// Sluice's artifact store, so gs://, https://, oci:// and huggingface:// URIs
// cannot be read and are refused.
func CheckImportURI(uri string) error {
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok || (scheme != "s3" && scheme != "minio") || strings.Trim(rest, "/") == "" || !strings.Contains(strings.Trim(rest, "/"), "/") {
		return fmt.Errorf("importer artifact URI %q: only s3://<bucket>/<key> URIs of the artifact store can be imported (steps read their input artifacts from it; gs://, https://, oci:// and huggingface:// objects cannot be read)", uri)
	}
	return nil
}

// walkStrings calls f for every string (map keys included) in a JSON value.
func walkStrings(v any, f func(string)) {
	switch x := v.(type) {
	case string:
		f(x)
	case []any:
		for _, e := range x {
			walkStrings(e, f)
		}
	case map[string]any:
		for _, k := range sortedKeys(x) {
			f(k)
			walkStrings(x[k], f)
		}
	}
}

// ResolveImporterMetadata substitutes the input parameter placeholders of an
// importer's metadata, as KFP's importer launcher does: a string that is
// exactly one placeholder takes the parameter's value (any JSON type), other
// strings (keys included) get the values' text.
func ResolveImporterMetadata(meta map[string]any, params map[string]any) (map[string]any, error) {
	if meta == nil {
		return nil, nil
	}
	v, err := resolveMeta(meta, params)
	if err != nil {
		return nil, err
	}
	m, _ := v.(map[string]any)
	return m, nil
}

func resolveMeta(v any, params map[string]any) (any, error) {
	switch x := v.(type) {
	case string:
		phs, err := Placeholders(x)
		if err != nil || len(phs) == 0 {
			return x, err
		}
		if len(phs) == 1 && phs[0].Raw == x && phs[0].Kind == PhInputParameter {
			pv, ok := params[phs[0].Name]
			if !ok {
				return nil, fmt.Errorf("metadata: input parameter %q has no value", phs[0].Name)
			}
			return pv, nil
		}
		return RenderString(x, ExecutorContext{Parameters: params})
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			r, err := resolveMeta(e, params)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	case map[string]any:
		out := map[string]any{}
		for _, k := range sortedKeys(x) {
			key, err := resolveMeta(k, params)
			if err != nil {
				return nil, err
			}
			ks, ok := key.(string)
			if !ok {
				text, err := ParamText(key)
				if err != nil {
					return nil, err
				}
				ks = text
			}
			r, err := resolveMeta(x[k], params)
			if err != nil {
				return nil, err
			}
			out[ks] = r
		}
		return out, nil
	}
	return v, nil
}

func componentPlaceholderProblem(comp *Component, ph Placeholder) string {
	switch ph.Kind {
	case PhInputParameter:
		if _, ok := comp.InputParam(ph.Name); !ok {
			return fmt.Sprintf("placeholder %s refers to unknown input parameter %q", ph.Raw, ph.Name)
		}
	case PhInputArtifactURI, PhInputArtifactPath, PhInputArtifactProperty:
		def, ok := comp.InputArtifact(ph.Name)
		if !ok {
			return fmt.Sprintf("placeholder %s refers to unknown input artifact %q", ph.Raw, ph.Name)
		}
		if def.IsList {
			return fmt.Sprintf("placeholder %s takes one artifact, but input %q is a list of artifacts (the fan-in of a loop): read the list from the executor input {{$}} (inputs.artifacts[%q].artifacts, in iteration order)", ph.Raw, ph.Name, ph.Name)
		}
	case PhOutputArtifactURI, PhOutputArtifactPath, PhOutputArtifactProperty:
		if _, ok := comp.OutputArtifact(ph.Name); !ok {
			return fmt.Sprintf("placeholder %s refers to unknown output artifact %q", ph.Raw, ph.Name)
		}
	case PhOutputParameterFile:
		if _, ok := comp.OutputParam(ph.Name); !ok {
			return fmt.Sprintf("placeholder %s refers to unknown output parameter %q", ph.Raw, ph.Name)
		}
	}
	return ""
}

func orDefault(p, fallback string) string {
	if p != "" {
		return p
	}
	return fallback
}

// dag validates the tasks of a DAG component and orders them.
func (c *compiler) dag(comp *Component) {
	d := comp.DAG
	byName := map[string]*Task{}
	for _, t := range d.Tasks {
		if t == nil {
			continue
		}
		if _, dup := byName[t.Name]; dup {
			c.errs.add(t.Path, "duplicate task name %q", t.Name)
		}
		byName[t.Name] = t
		if !SafeName(t.Name) {
			c.errs.add(t.Path, "task name %q is not subject-safe (want %s)", t.Name, safeNameRe)
		}
	}
	for _, name := range sortedKeys(byName) {
		c.task(comp, byName[name], byName)
	}
	c.dagOutputs(comp, byName)
	c.order(comp, byName)
}

func (c *compiler) task(parent *Component, t *Task, byName map[string]*Task) {
	if t.DisplayName == "" {
		t.DisplayName = t.Name
	}
	comp, ok := c.p.Component(t.ComponentRef)
	if !ok || t.ComponentRef == RootComponent {
		c.errs.add(orDefault(t.Paths.ComponentRef, t.Path+".componentRef.name"), "unknown component %q", t.ComponentRef)
		comp = nil
	}

	deps := map[string]bool{}
	depPath := orDefault(t.Paths.DependsOn, t.Path+".dependentTasks")
	for i, dep := range t.DependsOn {
		switch {
		case dep == t.Name:
			c.errs.add(fmt.Sprintf("%s[%d]", depPath, i), "dependency cycle: %s -> %s", t.Name, t.Name)
		case byName[dep] == nil:
			c.errs.add(fmt.Sprintf("%s[%d]", depPath, i), "unknown task %q", dep)
		default:
			deps[dep] = true
		}
	}

	bound := map[string]bool{}
	hasFinalStatus := false
	for i := range t.Inputs {
		b := &t.Inputs[i]
		if b.Path == "" {
			b.Path = fmt.Sprintf("%s.inputs.%ss.%s", t.Path, b.Kind, b.Name)
		}
		key := string(b.Kind) + "/" + b.Name
		if bound[key] {
			c.errs.add(b.Path, "input bound twice")
		}
		bound[key] = true
		if b.Source.Kind == SourceTaskFinalStatus {
			hasFinalStatus = true
		}
		needsTask := b.Source.Kind == SourceTaskOutputParameter || b.Source.Kind == SourceTaskOutputArtifact || b.Source.Kind == SourceTaskFinalStatus
		if needsTask && b.Source.Task == "" {
			c.errs.add(b.Path, "producer task is required")
			continue
		}
		if needsTask && b.Source.Kind != SourceTaskFinalStatus && b.Source.Output == "" {
			c.errs.add(b.Path, "producer output key is required")
			continue
		}
		if producer := b.Source.Task; producer != "" {
			switch {
			case producer == t.Name:
				c.errs.add(b.Path, "dependency cycle: %s -> %s", t.Name, t.Name)
				continue
			case byName[producer] == nil:
				c.errs.add(b.Path, "unknown producer task %q", producer)
				continue
			}
			deps[producer] = true
		}
		c.binding(parent, t, comp, b, byName)
	}
	t.DependsOn = sortedKeys(deps)
	sort.SliceStable(t.Inputs, func(i, j int) bool {
		if t.Inputs[i].Kind != t.Inputs[j].Kind {
			return t.Inputs[i].Kind < t.Inputs[j].Kind
		}
		return t.Inputs[i].Name < t.Inputs[j].Name
	})

	if comp != nil {
		c.missingInputs(t, comp, bound)
		c.templated(t)
	}

	switch t.Strategy {
	case "":
		t.Strategy = AllUpstreamSucceeded
	case AllUpstreamSucceeded, AllUpstreamCompleted:
	default:
		c.errs.add(orDefault(t.Paths.Strategy, t.Path+".triggerPolicy.strategy"), "unknown trigger strategy %q (want %s or %s)", t.Strategy, AllUpstreamSucceeded, AllUpstreamCompleted)
	}
	if t.Strategy == AllUpstreamCompleted && !t.ExitHandler {
		if hasFinalStatus {
			t.ExitHandler = true
		}
		for dep := range deps {
			if up := byName[dep]; up != nil && strings.HasPrefix(up.ComponentRef, "comp-exit-handler-") {
				t.ExitHandler = true
			}
		}
	}
	if t.ExitHandler && t.Strategy != AllUpstreamCompleted {
		c.errs.add(orDefault(t.Paths.Strategy, t.Path+".triggerPolicy.strategy"), "an exit handler must use %s", AllUpstreamCompleted)
	}

	if t.Condition != "" {
		cp := orDefault(t.Paths.Condition, t.Path+".triggerPolicy.condition")
		refs, err := CheckCondition(t.Condition)
		if err != nil {
			c.errs.add(cp, "%v", err)
		}
		for _, r := range refs {
			if !bound[string(IOParameter)+"/"+r] {
				c.errs.add(cp, "condition refers to parameter %q, which is not an input of the task", r)
			}
		}
	}
	if t.Iterator != nil {
		c.iterator(t, comp, bound)
		if comp != nil && comp.Kind == KindImporter {
			c.errs.add(orDefault(t.Paths.Iterator, t.Path+".parameterIterator"), "an importer task cannot iterate; put it inside a loop's DAG")
		}
	}
	if t.Retry != nil {
		c.retry(t)
	}
}

// binding checks one input binding against the component input and its source.
func (c *compiler) binding(parent *Component, t *Task, comp *Component, b *Binding, byName map[string]*Task) {
	var target ParamDef
	var targetArt ArtifactDef
	if comp != nil {
		var ok bool
		switch b.Kind {
		case IOParameter:
			target, ok = comp.InputParam(b.Name)
			if !ok && strings.HasPrefix(b.Name, "pipelinechannel--") {
				// kfp.compiler binds upstream values for f-strings, run-time resource fields and
				// conditions as extra task inputs the component does not declare; KFP's backend resolves
				// them for placeholders and conditions. Accept them untyped.
				target, ok = ParamDef{Name: b.Name}, true
			}
			if !ok {
				if _, isArt := comp.InputArtifact(b.Name); isArt {
					c.errs.add(b.Path, "type mismatch: input %q of component %q is an artifact, bound as a parameter", b.Name, comp.Name)
				} else {
					c.errs.add(b.Path, "unknown input parameter %q of component %q", b.Name, comp.Name)
				}
				return
			}
			b.Type = target.Type
		case IOArtifact:
			targetArt, ok = comp.InputArtifact(b.Name)
			if !ok {
				if _, isParam := comp.InputParam(b.Name); isParam {
					c.errs.add(b.Path, "type mismatch: input %q of component %q is a parameter, bound as an artifact", b.Name, comp.Name)
				} else {
					c.errs.add(b.Path, "unknown input artifact %q of component %q", b.Name, comp.Name)
				}
				return
			}
		default:
			c.errs.add(b.Path, "unknown input kind %q", b.Kind)
			return
		}
	}
	if b.Selector != "" {
		if b.Kind != IOParameter {
			c.errs.add(b.Path+".parameterExpressionSelector", "a selector applies to parameters only")
		} else if err := CheckSelector(b.Selector); err != nil {
			c.errs.add(b.Path+".parameterExpressionSelector", "%v", err)
		}
	}
	checkParam := func(from ParamType, what string) {
		if comp == nil || b.Selector != "" || from == "" || target.Type == "" {
			return
		}
		if !paramAssignable(from, target.Type) {
			c.errs.add(b.Path, "type mismatch: %s is %s, input %q is %s", what, from, b.Name, target.Type)
		}
	}
	checkArt := func(from ArtifactDef, what string) {
		if comp == nil {
			return
		}
		if !schemaCompatible(from.SchemaTitle, targetArt.SchemaTitle) {
			c.errs.add(b.Path, "type mismatch: %s is %s, input %q is %s", what, from.SchemaTitle, b.Name, targetArt.SchemaTitle)
		}
		if from.IsList && !targetArt.IsList {
			c.errs.add(b.Path, "type mismatch: %s is a list of artifacts, input %q takes one artifact", what, b.Name)
		}
	}

	src := b.Source
	switch src.Kind {
	case SourceConstant:
		if b.Kind != IOParameter {
			c.errs.add(b.Path, "type mismatch: a constant cannot feed artifact input %q", b.Name)
			return
		}
		if comp != nil && target.Type == ParamTaskFinalStatus {
			c.errs.add(b.Path, "type mismatch: input %q is TASK_FINAL_STATUS and takes only a task final status", b.Name)
			return
		}
		if comp != nil && b.Selector == "" {
			v, err := CoerceValue(src.Constant, target.Type)
			if err != nil {
				c.errs.add(b.Path, "%v", err)
				return
			}
			b.Source.Constant = v
		} else {
			b.Source.Constant = normalizeJSON(src.Constant)
		}
	case SourceComponentInput:
		if b.Kind == IOParameter {
			def, ok := parent.InputParam(src.Input)
			if !ok {
				if _, isArt := parent.InputArtifact(src.Input); isArt {
					c.errs.add(b.Path, "type mismatch: %s input %q is an artifact, bound to a parameter", parentWhat(parent), src.Input)
				} else {
					c.errs.add(b.Path, "unknown %s input parameter %q", parentWhat(parent), src.Input)
				}
				return
			}
			checkParam(def.Type, fmt.Sprintf("%s input %q", parentWhat(parent), src.Input))
		} else {
			def, ok := parent.InputArtifact(src.Input)
			if !ok {
				if _, isParam := parent.InputParam(src.Input); isParam {
					c.errs.add(b.Path, "type mismatch: %s input %q is a parameter, bound to an artifact", parentWhat(parent), src.Input)
				} else {
					c.errs.add(b.Path, "unknown %s input artifact %q", parentWhat(parent), src.Input)
				}
				return
			}
			checkArt(def, fmt.Sprintf("%s input %q", parentWhat(parent), src.Input))
		}
	case SourceTaskOutputParameter, SourceTaskOutputArtifact:
		wantKind := IOParameter
		if src.Kind == SourceTaskOutputArtifact {
			wantKind = IOArtifact
		}
		if b.Kind != wantKind {
			c.errs.add(b.Path, "type mismatch: %s input %q fed from an output %s", b.Kind, b.Name, wantKind)
			return
		}
		producer := byName[src.Task]
		if producer == nil {
			return // reported by task
		}
		pc, ok := c.p.Component(producer.ComponentRef)
		if !ok {
			return // reported on the producer
		}
		fanIn := producer.Iterator != nil && pc.Kind == KindContainer
		what := fmt.Sprintf("output %q of task %q", src.Output, src.Task)
		if wantKind == IOParameter {
			def, ok := pc.OutputParam(src.Output)
			if !ok {
				if _, isArt := pc.OutputArtifact(src.Output); isArt {
					c.errs.add(b.Path, "type mismatch: %s is an artifact, bound to a parameter", what)
				} else {
					c.errs.add(b.Path, "unknown output parameter %q of task %q", src.Output, src.Task)
				}
				return
			}
			if fanIn {
				def.Type = ParamList
			}
			checkParam(def.Type, what)
		} else {
			def, ok := pc.OutputArtifact(src.Output)
			if !ok {
				if _, isParam := pc.OutputParam(src.Output); isParam {
					c.errs.add(b.Path, "type mismatch: %s is a parameter, bound to an artifact", what)
				} else {
					c.errs.add(b.Path, "unknown output artifact %q of task %q", src.Output, src.Task)
				}
				return
			}
			if fanIn {
				def.IsList = true
			}
			checkArt(def, what)
		}
	case SourceTaskFinalStatus:
		if b.Kind != IOParameter {
			c.errs.add(b.Path, "type mismatch: a task final status cannot feed artifact input %q", b.Name)
			return
		}
		// The SDK types a dsl.PipelineTaskFinalStatus input TASK_FINAL_STATUS, or (kfp 2.0-2.4 compilers)
		// STRUCT with isOptional; KFP's driver passes the same PipelineTaskFinalStatus struct to either.
		if comp != nil && target.Type != ParamTaskFinalStatus && target.Type != ParamStruct {
			c.errs.add(b.Path, "type mismatch: task final status bound to input %q of type %s (want %s or %s)", b.Name, target.Type, ParamTaskFinalStatus, ParamStruct)
		}
	default:
		c.errs.add(b.Path, "input has no source")
	}
}

func parentWhat(parent *Component) string {
	if parent.Name == RootComponent {
		return "pipeline"
	}
	return "component"
}

// paramAssignable says whether a value of type from may feed an input of
// type to: same type, or an integer into a double.
func paramAssignable(from, to ParamType) bool {
	return from == to || (from == ParamInteger && to == ParamDouble)
}

// schemaCompatible: equal, unset, or the generic system.Artifact on either side.
func schemaCompatible(from, to string) bool {
	return from == "" || to == "" || from == to || from == "system.Artifact" || to == "system.Artifact"
}

// missingInputs reports required component inputs the task does not bind.
func (c *compiler) missingInputs(t *Task, comp *Component, bound map[string]bool) {
	item := ""
	if t.Iterator != nil {
		item = t.Iterator.ItemInput
	}
	for _, in := range comp.InputParams {
		if bound[string(IOParameter)+"/"+in.Name] || in.Name == item || in.Optional || in.HasDefault {
			continue
		}
		c.errs.add(t.Path+".inputs."+inputsKey(comp, "parameters")+in.Name, "missing required input parameter %q of component %q", in.Name, comp.Name)
	}
	for _, in := range comp.InputArtifacts {
		if bound[string(IOArtifact)+"/"+in.Name] || in.Name == item || in.Optional {
			continue
		}
		c.errs.add(t.Path+".inputs."+inputsKey(comp, "artifacts")+in.Name, "missing required input artifact %q of component %q", in.Name, comp.Name)
	}
}

// templated marks string constants containing placeholders and checks they
// only refer to the task's other parameter inputs or pipeline fields.
func (c *compiler) templated(t *Task) {
	for i := range t.Inputs {
		b := &t.Inputs[i]
		s, ok := b.Source.Constant.(string)
		if b.Source.Kind != SourceConstant || !ok || !strings.Contains(s, "{{$") {
			continue
		}
		phs, err := Placeholders(s)
		if err != nil {
			c.errs.add(b.Path, "%v", err)
			continue
		}
		for _, ph := range phs {
			switch ph.Kind {
			case PhPipeline, PhWorkspace:
			case PhInputParameter:
				if t.Iterator != nil && ph.Name == t.Iterator.ItemInput {
					continue
				}
				if ph.Name == b.Name {
					c.errs.add(b.Path, "placeholder %s refers to the input itself", ph.Raw)
				} else if _, ok := t.Binding(IOParameter, ph.Name); !ok {
					c.errs.add(b.Path, "placeholder %s refers to %q, which is not a parameter input of the task", ph.Raw, ph.Name)
				}
			default:
				c.errs.add(b.Path, "placeholder %s is not allowed in an input value", ph.Raw)
			}
		}
		b.Templated = len(phs) > 0
	}
}

func (c *compiler) iterator(t *Task, comp *Component, bound map[string]bool) {
	it := t.Iterator
	ip := orDefault(t.Paths.Iterator, t.Path+".parameterIterator")
	if it.ItemInput == "" {
		c.errs.add(ip+".itemInput", "itemInput is required")
	} else if comp != nil {
		if it.Artifact {
			if _, ok := comp.InputArtifact(it.ItemInput); !ok {
				c.errs.add(ip+".itemInput", "unknown input artifact %q of component %q", it.ItemInput, comp.Name)
			}
		} else if _, ok := comp.InputParam(it.ItemInput); !ok {
			c.errs.add(ip+".itemInput", "unknown input parameter %q of component %q", it.ItemInput, comp.Name)
		}
	}
	if !it.Artifact && bound[string(IOParameter)+"/"+it.ItemInput] && it.ItemInput != "" {
		c.errs.add(ip+".itemInput", "item input %q is also bound in inputs", it.ItemInput)
	}
	sources := 0
	if it.HasRaw {
		sources++
		it.Raw, _ = normalizeJSON(it.Raw).([]any)
		if it.Raw == nil {
			it.Raw = []any{}
		}
	}
	if it.InputParameter != "" {
		sources++
		if !bound[string(IOParameter)+"/"+it.InputParameter] {
			c.errs.add(ip+".items.inputParameter", "items input %q is not a parameter input of the task", it.InputParameter)
		}
	}
	if it.InputArtifact != "" {
		sources++
		if !bound[string(IOArtifact)+"/"+it.InputArtifact] {
			c.errs.add(ip+".items.inputArtifact", "items input %q is not an artifact input of the task", it.InputArtifact)
		}
	}
	if sources != 1 {
		c.errs.add(ip+".items", "exactly one of raw, inputParameter or inputArtifact is required")
	}
	if it.ParallelismLimit < 0 {
		c.errs.add(orDefault(t.Paths.Iterator, t.Path+".iteratorPolicy")+".parallelismLimit", "must be >= 0")
	}
}

func (c *compiler) retry(t *Task) {
	r := t.Retry
	rp := orDefault(t.Paths.Retry, t.Path+".retryPolicy")
	if r.MaxRetryCount < 0 {
		c.errs.add(rp+".maxRetryCount", "must be >= 0")
	}
	if r.Backoff < 0 {
		c.errs.add(rp+".backoffDuration", "must be >= 0")
	}
	if r.Factor == 0 {
		r.Factor = DefaultBackoffFactor
	} else if r.Factor < 1 {
		c.errs.add(rp+".backoffFactor", "must be >= 1")
	}
	if r.Max < 0 {
		c.errs.add(rp+".backoffMaxDuration", "must be >= 0")
	}
	if r.Max == 0 || r.Max > MaxBackoff {
		r.Max = MaxBackoff
	}
}

// dagOutputs checks a DAG component's output mapping against its declared outputs.
func (c *compiler) dagOutputs(comp *Component, byName map[string]*Task) {
	outs := &comp.DAG.Outputs
	path := comp.Path + ".dag.outputs"
	mapped := map[string]bool{}
	for _, o := range outs.Parameters {
		fp := path + ".parameters." + o.Name
		mapped["p/"+o.Name] = true
		if _, ok := comp.OutputParam(o.Name); !ok {
			c.errs.add(fp, "DAG output parameter %q is not declared in outputDefinitions", o.Name)
		}
		if len(o.Selectors) == 0 {
			c.errs.add(fp, "no producer selected")
		}
		for _, s := range o.Selectors {
			t := byName[s.Task]
			if t == nil {
				c.errs.add(fp, "unknown producer task %q", s.Task)
				continue
			}
			if pc, ok := c.p.Component(t.ComponentRef); ok {
				if _, ok := pc.OutputParam(s.Output); !ok {
					c.errs.add(fp, "unknown output parameter %q of task %q", s.Output, s.Task)
				}
			}
		}
	}
	for _, o := range outs.Artifacts {
		fp := path + ".artifacts." + o.Name
		mapped["a/"+o.Name] = true
		if _, ok := comp.OutputArtifact(o.Name); !ok {
			c.errs.add(fp, "DAG output artifact %q is not declared in outputDefinitions", o.Name)
		}
		if len(o.Selectors) == 0 {
			c.errs.add(fp, "no producer selected")
		}
		for _, s := range o.Selectors {
			t := byName[s.Task]
			if t == nil {
				c.errs.add(fp, "unknown producer task %q", s.Task)
				continue
			}
			if pc, ok := c.p.Component(t.ComponentRef); ok {
				if _, ok := pc.OutputArtifact(s.Output); !ok {
					c.errs.add(fp, "unknown output artifact %q of task %q", s.Output, s.Task)
				}
			}
		}
	}
	for _, o := range comp.OutputParams {
		if !mapped["p/"+o.Name] {
			c.errs.add(comp.Path+".outputDefinitions.parameters."+o.Name, "DAG output parameter is not produced by any task (no dag.outputs entry)")
		}
	}
	for _, o := range comp.OutputArtifacts {
		if !mapped["a/"+o.Name] {
			c.errs.add(comp.Path+".outputDefinitions.artifacts."+o.Name, "DAG output artifact is not produced by any task (no dag.outputs entry)")
		}
	}
	sort.Slice(outs.Parameters, func(i, j int) bool { return outs.Parameters[i].Name < outs.Parameters[j].Name })
	sort.Slice(outs.Artifacts, func(i, j int) bool { return outs.Artifacts[i].Name < outs.Artifacts[j].Name })
}

// order sorts the DAG's tasks topologically (Kahn, ties by name) and reports
// every dependency cycle, naming its tasks.
func (c *compiler) order(comp *Component, byName map[string]*Task) {
	indeg := map[string]int{}
	down := map[string][]string{}
	for name, t := range byName {
		indeg[name] += 0
		for _, dep := range t.DependsOn {
			if byName[dep] == nil {
				continue
			}
			indeg[name]++
			down[dep] = append(down[dep], name)
		}
	}
	var ready, ordered []string
	for _, n := range sortedKeys(indeg) {
		if indeg[n] == 0 {
			ready = append(ready, n)
		}
	}
	for len(ready) > 0 {
		sort.Strings(ready)
		n := ready[0]
		ready = ready[1:]
		ordered = append(ordered, n)
		for _, m := range down[n] {
			indeg[m]--
			if indeg[m] == 0 {
				ready = append(ready, m)
			}
		}
	}
	if len(ordered) < len(byName) {
		inCycle := map[string]bool{}
		for n, d := range indeg {
			if d > 0 {
				inCycle[n] = true
			}
		}
		for _, cyc := range findCycles(byName, inCycle) {
			c.errs.add(orDefault(comp.Paths.Tasks, comp.Path+".dag.tasks"), "dependency cycle: %s", strings.Join(cyc, " -> "))
		}
		return
	}
	tasks := make([]*Task, len(ordered))
	for i, n := range ordered {
		tasks[i] = byName[n]
	}
	comp.DAG.Tasks = tasks
}

// findCycles returns one cycle per strongly connected group among the given
// nodes, each rotated to start at its smallest name and closed (a -> b -> a).
func findCycles(byName map[string]*Task, nodes map[string]bool) [][]string {
	var cycles [][]string
	done := map[string]bool{}
	for _, start := range sortedKeys(nodes) {
		if done[start] {
			continue
		}
		// Walk dependencies inside the cycle set until a node repeats.
		var path []string
		pos := map[string]int{}
		n := start
		for {
			if i, seen := pos[n]; seen {
				cyc := append([]string(nil), path[i:]...)
				// Reverse so arrows point downstream (producer -> consumer).
				for l, r := 0, len(cyc)-1; l < r; l, r = l+1, r-1 {
					cyc[l], cyc[r] = cyc[r], cyc[l]
				}
				min := 0
				for k := range cyc {
					if cyc[k] < cyc[min] {
						min = k
					}
				}
				cyc = append(cyc[min:], cyc[:min]...)
				key := strings.Join(cyc, ",")
				dup := false
				for _, prev := range cycles {
					if strings.Join(prev[:len(prev)-1], ",") == key {
						dup = true
					}
				}
				if !dup {
					cycles = append(cycles, append(cyc, cyc[0]))
				}
				break
			}
			if done[n] {
				break
			}
			pos[n] = len(path)
			path = append(path, n)
			next := ""
			for _, dep := range byName[n].DependsOn {
				if nodes[dep] {
					next = dep
					break
				}
			}
			if next == "" {
				break
			}
			n = next
		}
		for _, p := range path {
			done[p] = true
		}
	}
	return cycles
}

// componentCycles reports components that (transitively) instantiate themselves.
func (c *compiler) componentCycles() {
	const (
		white = iota
		grey
		black
	)
	state := map[string]int{}
	var stack []string
	var visit func(name string)
	visit = func(name string) {
		comp, ok := c.p.Component(name)
		if !ok || comp.DAG == nil {
			return
		}
		state[name] = grey
		stack = append(stack, name)
		refs := map[string]bool{}
		for _, t := range comp.DAG.Tasks {
			if t != nil {
				refs[t.ComponentRef] = true
			}
		}
		for _, ref := range sortedKeys(refs) {
			switch state[ref] {
			case grey:
				i := len(stack) - 1
				for stack[i] != ref {
					i--
				}
				cyc := append(append([]string(nil), stack[i:]...), ref)
				c.errs.add(comp.Path, "component cycle: %s", strings.Join(cyc, " -> "))
			case white:
				visit(ref)
			}
		}
		stack = stack[:len(stack)-1]
		state[name] = black
	}
	visit(RootComponent)
	for _, n := range c.p.ComponentNames() {
		if state[n] == white {
			visit(n)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// inputsKey is the sub-key of a task's inputs for a kind of input: KFP nests
// them under "parameters."/"artifacts.", the native format does not.
func inputsKey(comp *Component, kfp string) string {
	if comp.Paths.InputParams != "" {
		return ""
	}
	return kfp + "."
}
