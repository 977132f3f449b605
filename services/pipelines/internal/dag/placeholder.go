package dag

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// PlaceholderKind names a KFP string placeholder (pipeline_spec.proto,
// ExecutorInput doc comment).
type PlaceholderKind string

const (
	// PhExecutorInput is `{{$}}`: the whole ExecutorInput as JSON.
	PhExecutorInput PlaceholderKind = "executorInput"
	// PhInputParameter is `{{$.inputs.parameters['n']}}`: the value as text.
	PhInputParameter PlaceholderKind = "inputParameter"
	// PhInputArtifactURI is `{{$.inputs.artifacts['n'].uri}}`.
	PhInputArtifactURI PlaceholderKind = "inputArtifactURI"
	// PhInputArtifactPath is `{{$.inputs.artifacts['n'].path}}`: local path.
	PhInputArtifactPath PlaceholderKind = "inputArtifactPath"
	// PhInputArtifactProperty is `{{$.inputs.artifacts['n'].properties['p']}}`
	// (also `.metadata['p']`): an artifact metadata value as text.
	PhInputArtifactProperty PlaceholderKind = "inputArtifactProperty"
	// PhOutputArtifactURI is `{{$.outputs.artifacts['n'].uri}}`.
	PhOutputArtifactURI PlaceholderKind = "outputArtifactURI"
	// PhOutputArtifactPath is `{{$.outputs.artifacts['n'].path}}`.
	PhOutputArtifactPath PlaceholderKind = "outputArtifactPath"
	// PhOutputArtifactProperty is `{{$.outputs.artifacts['n'].properties['p']}}`.
	PhOutputArtifactProperty PlaceholderKind = "outputArtifactProperty"
	// PhOutputParameterFile is `{{$.outputs.parameters['n'].output_file}}`.
	PhOutputParameterFile PlaceholderKind = "outputParameterFile"
	// PhOutputMetadataFile is `{{$.outputs.output_file}}`: where the step may
	// write an ExecutorOutput JSON (wins over per-parameter files).
	PhOutputMetadataFile PlaceholderKind = "outputMetadataFile"
	// PhPipeline is one of KFP's pipeline placeholders, e.g.
	// `{{$.pipeline_job_name}}`; Name holds the field (pipeline_job_name,
	// pipeline_job_resource_name, pipeline_job_uuid, pipeline_task_name,
	// pipeline_task_uuid, pipeline_root, pipeline_job_create_time_utc,
	// pipeline_job_schedule_time_utc).
	PhPipeline PlaceholderKind = "pipeline"
	// PhWorkspace is `{{$.workspace_path}}`: the run's shared workspace directory (KFP's
	// WORKSPACE_PATH_PLACEHOLDER, /kfp-workspace in KFP's pods); see JobContext.WorkspacePath.
	PhWorkspace PlaceholderKind = "workspacePath"
)

// WorkspacePlaceholder is the text of KFP's workspace placeholder.
const WorkspacePlaceholder = "{{$.workspace_path}}"

// Placeholder is one parsed `{{$...}}` occurrence.
type Placeholder struct {
	Kind PlaceholderKind
	// Name is the input/output name (or the pipeline field for PhPipeline).
	Name string
	// Property is the metadata key for Ph*ArtifactProperty.
	Property string
	// Raw is the text as written, including braces.
	Raw string
}

var pipelinePlaceholders = map[string]bool{
	"pipeline_job_name": true, "pipeline_job_resource_name": true, "pipeline_job_uuid": true,
	"pipeline_task_name": true, "pipeline_task_uuid": true, "pipeline_root": true,
	"pipeline_job_create_time_utc": true, "pipeline_job_schedule_time_utc": true,
}

// Placeholders returns the `{{$...}}` placeholders in s, in order. Text of
// the form `{{...}}` that does not start with `$` is literal and ignored.
// An unterminated or unknown `{{$...}}` placeholder is an error.
func Placeholders(s string) ([]Placeholder, error) {
	var out []Placeholder
	err := scan(s, func(p Placeholder) error { out = append(out, p); return nil }, nil)
	return out, err
}

// scan walks s, calling ph for each placeholder and lit for each literal run.
func scan(s string, ph func(Placeholder) error, lit func(string)) error {
	for {
		i := strings.Index(s, "{{$")
		if i < 0 {
			if lit != nil {
				lit(s)
			}
			return nil
		}
		if lit != nil {
			lit(s[:i])
		}
		j := strings.Index(s[i+2:], "}}")
		if j < 0 {
			return fmt.Errorf("unterminated placeholder %q", truncate(s[i:]))
		}
		raw := s[i : i+2+j+2]
		p, err := parsePlaceholder(raw[2 : len(raw)-2])
		if err != nil {
			return err
		}
		p.Raw = raw
		if err := ph(p); err != nil {
			return err
		}
		s = s[i+len(raw):]
	}
}

func truncate(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

// parsePlaceholder parses the text between `{{` and `}}`.
func parsePlaceholder(body string) (Placeholder, error) {
	unknown := func() (Placeholder, error) {
		return Placeholder{}, fmt.Errorf("unknown placeholder %q", "{{"+body+"}}")
	}
	if body == "$" {
		return Placeholder{Kind: PhExecutorInput}, nil
	}
	rest, ok := strings.CutPrefix(body, "$.")
	if !ok {
		return unknown()
	}
	if pipelinePlaceholders[rest] {
		return Placeholder{Kind: PhPipeline, Name: rest}, nil
	}
	if rest == "workspace_path" {
		return Placeholder{Kind: PhWorkspace}, nil
	}
	if rest == "outputs.output_file" {
		return Placeholder{Kind: PhOutputMetadataFile}, nil
	}
	var dir, coll string
	switch {
	case strings.HasPrefix(rest, "inputs.parameters["):
		dir, coll, rest = "inputs", "parameters", rest[len("inputs.parameters"):]
	case strings.HasPrefix(rest, "inputs.artifacts["):
		dir, coll, rest = "inputs", "artifacts", rest[len("inputs.artifacts"):]
	case strings.HasPrefix(rest, "outputs.parameters["):
		dir, coll, rest = "outputs", "parameters", rest[len("outputs.parameters"):]
	case strings.HasPrefix(rest, "outputs.artifacts["):
		dir, coll, rest = "outputs", "artifacts", rest[len("outputs.artifacts"):]
	default:
		return unknown()
	}
	name, rest, ok := cutIndex(rest)
	if !ok || name == "" {
		return unknown()
	}
	p := Placeholder{Name: name}
	switch {
	case dir == "inputs" && coll == "parameters" && rest == "":
		p.Kind = PhInputParameter
	case dir == "outputs" && coll == "parameters" && rest == ".output_file":
		p.Kind = PhOutputParameterFile
	case coll == "artifacts" && rest == ".uri":
		p.Kind = pick(dir, PhInputArtifactURI, PhOutputArtifactURI)
	case coll == "artifacts" && rest == ".path":
		p.Kind = pick(dir, PhInputArtifactPath, PhOutputArtifactPath)
	case coll == "artifacts" && rest == ".metadata":
		// The whole metadata as JSON ({} for a fresh output artifact): Property "".
		p.Kind = pick(dir, PhInputArtifactProperty, PhOutputArtifactProperty)
	case coll == "artifacts" && (strings.HasPrefix(rest, ".properties[") || strings.HasPrefix(rest, ".metadata[")):
		_, after, _ := strings.Cut(rest, "[")
		prop, tail, ok := cutIndex("[" + after)
		if !ok || tail != "" || prop == "" {
			return unknown()
		}
		p.Kind = pick(dir, PhInputArtifactProperty, PhOutputArtifactProperty)
		p.Property = prop
	default:
		return unknown()
	}
	return p, nil
}

func pick(dir string, in, out PlaceholderKind) PlaceholderKind {
	if dir == "inputs" {
		return in
	}
	return out
}

// cutIndex parses a leading `['name']` (or `["name"]`) and returns name and the rest.
func cutIndex(s string) (name, rest string, ok bool) {
	if len(s) < 4 || s[0] != '[' || (s[1] != '\'' && s[1] != '"') {
		return "", "", false
	}
	q := s[1]
	end := strings.IndexByte(s[2:], q)
	if end < 0 || len(s) < 2+end+2 || s[2+end+1] != ']' {
		return "", "", false
	}
	return s[2 : 2+end], s[2+end+2:], true
}

// RuntimeArtifact is one artifact handed to a step, per KFP RuntimeArtifact.
type RuntimeArtifact struct {
	Name          string `json:"name,omitempty"`
	SchemaTitle   string `json:"-"`
	SchemaVersion string `json:"-"`
	// URI is the artifact's object URI, e.g. s3://bucket/pipeline/run/task/out.
	URI string `json:"uri,omitempty"`
	// Path is the local file or directory the step reads/writes; not part
	// of the ExecutorInput JSON (KFP derives it from the URI).
	Path     string         `json:"-"`
	Metadata map[string]any `json:"metadata"`
	// ExecutorURI, when set, is the URI the executor input {{$}} shows instead of URI: under the local
	// runtime the local path itself, so that KFP's executor, which derives an artifact's local path from
	// its URI (s3:// → /s3/...; any other URI is the path), reads and writes inside the step's work dir.
	ExecutorURI string `json:"-"`
}

// JobContext carries the values of KFP's pipeline placeholders.
type JobContext struct {
	JobName         string // {{$.pipeline_job_name}}
	JobResourceName string // {{$.pipeline_job_resource_name}}
	JobUUID         string // {{$.pipeline_job_uuid}}
	TaskName        string // {{$.pipeline_task_name}}
	TaskUUID        string // {{$.pipeline_task_uuid}}
	Root            string // {{$.pipeline_root}}
	CreateTimeUTC   string // {{$.pipeline_job_create_time_utc}}
	ScheduleTimeUTC string // {{$.pipeline_job_schedule_time_utc}}
	// WorkspacePath is {{$.workspace_path}}, the run's workspace directory as the step sees it. Empty
	// (in the workflow, which does not know where the step runs) keeps the placeholder as text, for the
	// step's activity to substitute.
	WorkspacePath string
}

func (j JobContext) field(name string) string {
	switch name {
	case "pipeline_job_name":
		return j.JobName
	case "pipeline_job_resource_name":
		return j.JobResourceName
	case "pipeline_job_uuid":
		return j.JobUUID
	case "pipeline_task_name":
		return j.TaskName
	case "pipeline_task_uuid":
		return j.TaskUUID
	case "pipeline_root":
		return j.Root
	case "pipeline_job_create_time_utc":
		return j.CreateTimeUTC
	case "pipeline_job_schedule_time_utc":
		return j.ScheduleTimeUTC
	}
	return ""
}

// ExecutorContext is everything placeholders can refer to for one step
// attempt; it is KFP's ExecutorInput plus local paths and job fields.
type ExecutorContext struct {
	// Parameters are the input parameter values (JSON values: string,
	// float64, bool, []any, map[string]any; ints are accepted too).
	Parameters map[string]any
	// InputArtifacts by input name (a list for list inputs; else one item).
	InputArtifacts map[string][]RuntimeArtifact
	// OutputParameterFiles maps each output parameter to the file the step
	// writes its value to.
	OutputParameterFiles map[string]string
	// OutputArtifacts by output name, with the URI to upload to and the
	// local path the step writes.
	OutputArtifacts map[string][]RuntimeArtifact
	// OutputFile is where the step may write an ExecutorOutput JSON.
	OutputFile string
	Job        JobContext
}

// Render substitutes every placeholder in args in a single pass and returns
// the new argv. Each element of args yields exactly one element; a
// substituted value is copied verbatim (it is never scanned for
// placeholders, quoted or split), so values containing `{{...}}`, quotes,
// newlines or a leading `-` reach the step byte-exact.
//
// Errors: an unknown placeholder, or one whose input/output is missing from
// ctx (e.g. an input parameter without a value).
func Render(args []string, ctx ExecutorContext) ([]string, error) {
	args, err := expandStructured(args, ctx) // IfPresent / Concat (structured.go)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(args))
	var eiJSON string
	var eiDone bool
	for i, a := range args {
		var b strings.Builder
		err := scan(a, func(p Placeholder) error {
			if p.Kind == PhExecutorInput && !eiDone {
				j, err := ctx.ExecutorInputJSON()
				if err != nil {
					return err
				}
				eiJSON, eiDone = string(j), true
			}
			v, err := ctx.resolve(p, eiJSON)
			if err != nil {
				return err
			}
			b.WriteString(v)
			return nil
		}, func(s string) { b.WriteString(s) })
		if err != nil {
			return nil, fmt.Errorf("arg %d: %w", i, err)
		}
		out[i] = b.String()
	}
	return out, nil
}

// RenderString renders one string (e.g. a templated constant input, see
// Binding.Templated) with the same rules as [Render].
func RenderString(s string, ctx ExecutorContext) (string, error) {
	out, err := Render([]string{s}, ctx)
	if err != nil {
		return "", err
	}
	return out[0], nil
}

func (ctx ExecutorContext) resolve(p Placeholder, eiJSON string) (string, error) {
	firstArtifact := func(m map[string][]RuntimeArtifact, dir string) (RuntimeArtifact, error) {
		as, ok := m[p.Name]
		if !ok || len(as) == 0 {
			return RuntimeArtifact{}, fmt.Errorf("%s artifact %q has no value", dir, p.Name)
		}
		return as[0], nil
	}
	switch p.Kind {
	case PhExecutorInput:
		return eiJSON, nil
	case PhInputParameter:
		v, ok := ctx.Parameters[p.Name]
		if !ok {
			return "", fmt.Errorf("input parameter %q has no value", p.Name)
		}
		return ParamText(v)
	case PhInputArtifactURI, PhInputArtifactPath, PhInputArtifactProperty:
		a, err := firstArtifact(ctx.InputArtifacts, "input")
		if err != nil {
			return "", err
		}
		return artifactField(a, p)
	case PhOutputArtifactURI, PhOutputArtifactPath, PhOutputArtifactProperty:
		a, err := firstArtifact(ctx.OutputArtifacts, "output")
		if err != nil {
			return "", err
		}
		return artifactField(a, p)
	case PhOutputParameterFile:
		f, ok := ctx.OutputParameterFiles[p.Name]
		if !ok || f == "" {
			return "", fmt.Errorf("output parameter %q has no output file", p.Name)
		}
		return f, nil
	case PhOutputMetadataFile:
		if ctx.OutputFile == "" {
			return "", fmt.Errorf("no output metadata file")
		}
		return ctx.OutputFile, nil
	case PhWorkspace:
		if ctx.Job.WorkspacePath == "" {
			return p.Raw, nil
		}
		return ctx.Job.WorkspacePath, nil
	case PhPipeline:
		return ctx.Job.field(p.Name), nil
	}
	return "", fmt.Errorf("unknown placeholder %q", p.Raw)
}

func artifactField(a RuntimeArtifact, p Placeholder) (string, error) {
	switch p.Kind {
	case PhInputArtifactURI, PhOutputArtifactURI:
		return a.URI, nil
	case PhInputArtifactPath, PhOutputArtifactPath:
		if a.Path == "" {
			return "", fmt.Errorf("artifact %q has no local path", p.Name)
		}
		return a.Path, nil
	default:
		if p.Property == "" { // {{$.inputs.artifacts['x'].metadata}}
			if a.Metadata == nil {
				return "{}", nil
			}
			return ParamText(a.Metadata)
		}
		v, ok := a.Metadata[p.Property]
		if !ok {
			return "", fmt.Errorf("artifact %q has no property %q", p.Name, p.Property)
		}
		return ParamText(v)
	}
}

// ParamText formats a parameter value as placeholder text, per KFP's
// launcher: strings verbatim, numbers in shortest decimal form without
// exponent (3 -> "3", 0.5 -> "0.5"), booleans "true"/"false", lists and
// structs as compact JSON with sorted keys, null as "".
func ParamText(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return "", fmt.Errorf("number %v is not representable", x)
		}
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case float32:
		return ParamText(float64(x))
	case int:
		return strconv.FormatInt(int64(x), 10), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case json.Number:
		return x.String(), nil
	default:
		b, err := marshalJSON(v)
		if err != nil {
			return "", err
		}
		return string(b), nil
	}
}

// marshalJSON encodes v compactly without HTML escaping (like protojson).
func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

type eiType struct {
	SchemaTitle   string `json:"schemaTitle,omitempty"`
	SchemaVersion string `json:"schemaVersion,omitempty"`
}

type eiArtifact struct {
	Name     string         `json:"name,omitempty"`
	Type     eiType         `json:"type"`
	URI      string         `json:"uri,omitempty"`
	Metadata map[string]any `json:"metadata"`
}

type eiArtifactList struct {
	Artifacts []eiArtifact `json:"artifacts"`
}

type eiOutputParam struct {
	OutputFile string `json:"outputFile"`
}

type eiInputs struct {
	ParameterValues map[string]any            `json:"parameterValues,omitempty"`
	Artifacts       map[string]eiArtifactList `json:"artifacts,omitempty"`
}

type eiOutputs struct {
	Parameters map[string]eiOutputParam  `json:"parameters,omitempty"`
	Artifacts  map[string]eiArtifactList `json:"artifacts,omitempty"`
	OutputFile string                    `json:"outputFile,omitempty"`
}

type executorInput struct {
	Inputs  *eiInputs  `json:"inputs,omitempty"`
	Outputs *eiOutputs `json:"outputs,omitempty"`
}

func eiArtifacts(m map[string][]RuntimeArtifact) map[string]eiArtifactList {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]eiArtifactList, len(m))
	for name, as := range m {
		l := eiArtifactList{Artifacts: make([]eiArtifact, len(as))}
		for i, a := range as {
			md := a.Metadata
			if md == nil {
				md = map[string]any{}
			}
			n := a.Name
			if n == "" {
				n = name
			}
			uri := a.URI
			if a.ExecutorURI != "" {
				uri = a.ExecutorURI
			}
			l.Artifacts[i] = eiArtifact{Name: n, Type: eiType{a.SchemaTitle, a.SchemaVersion}, URI: uri, Metadata: md}
		}
		out[name] = l
	}
	return out
}

// ExecutorInputJSON encodes ctx as KFP ExecutorInput JSON (the `{{$}}`
// value): {"inputs":{"parameterValues":{...},"artifacts":{"a":{"artifacts":
// [{"name","type":{"schemaTitle"},"uri","metadata"}]}}},"outputs":
// {"parameters":{"p":{"outputFile"}},"artifacts":{...},"outputFile"}}.
// Keys are sorted, so the encoding is deterministic.
func (ctx ExecutorContext) ExecutorInputJSON() ([]byte, error) {
	ei := executorInput{}
	in := &eiInputs{Artifacts: eiArtifacts(ctx.InputArtifacts)}
	if len(ctx.Parameters) > 0 {
		in.ParameterValues = make(map[string]any, len(ctx.Parameters))
		for k, v := range ctx.Parameters {
			in.ParameterValues[k] = normalizeJSON(v)
		}
	}
	if in.ParameterValues != nil || in.Artifacts != nil {
		ei.Inputs = in
	}
	out := &eiOutputs{Artifacts: eiArtifacts(ctx.OutputArtifacts), OutputFile: ctx.OutputFile}
	if len(ctx.OutputParameterFiles) > 0 {
		out.Parameters = make(map[string]eiOutputParam, len(ctx.OutputParameterFiles))
		for k, f := range ctx.OutputParameterFiles {
			out.Parameters[k] = eiOutputParam{OutputFile: f}
		}
	}
	if out.Parameters != nil || out.Artifacts != nil || out.OutputFile != "" {
		ei.Outputs = out
	}
	return marshalJSON(ei)
}
