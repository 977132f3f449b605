package dag

import (
	"errors"
	"strings"
	"testing"
)

func TestRenderIsOnePassAndByteExact(t *testing.T) {
	tricky := []string{
		"{{$.inputs.parameters['other']}}",
		`it's "quoted" \ back`,
		"line1\nline2\r\n",
		"ünïcødé ✓ 日本",
		"-rf",
		"=x",
		"",
		"  spaced  ",
		"{{$}}",
		"$(rm -rf /) `x` ; | &",
	}
	for _, v := range tricky {
		ctx := ExecutorContext{Parameters: map[string]any{"v": v, "other": "EXPANDED"}}
		got, err := Render([]string{"{{$.inputs.parameters['v']}}", "--flag={{$.inputs.parameters['v']}}!", "plain"}, ctx)
		if err != nil {
			t.Fatalf("Render(%q): %v", v, err)
		}
		want := []string{v, "--flag=" + v + "!", "plain"}
		if len(got) != len(want) {
			t.Fatalf("Render(%q) = %d args, want %d", v, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("Render(%q)[%d] = %q, want %q", v, i, got[i], want[i])
			}
		}
	}
}

func TestRenderAllPlaceholders(t *testing.T) {
	ctx := ExecutorContext{
		Parameters: map[string]any{"s": "hi", "n": 3, "d": 0.5, "b": true, "l": []any{"a", 1.0}, "m": map[string]any{"k": "v"}},
		InputArtifacts: map[string][]RuntimeArtifact{
			"in": {{URI: "s3://bucket/p/r/t/in", Path: "/tmp/in", SchemaTitle: "system.Dataset", Metadata: map[string]any{"rows": 10.0}}},
		},
		OutputArtifacts: map[string][]RuntimeArtifact{
			"out": {{URI: "s3://bucket/p/r/t/out", Path: "/tmp/out/out"}},
		},
		OutputParameterFiles: map[string]string{"p": "/tmp/outputs/p"},
		OutputFile:           "/tmp/outputs/output_metadata.json",
		Job:                  JobContext{JobName: "run-1", TaskName: "t"},
	}
	cases := map[string]string{
		"{{$.inputs.parameters['s']}}":                     "hi",
		`{{$.inputs.parameters["s"]}}`:                     "hi",
		"{{$.inputs.parameters['n']}}":                     "3",
		"{{$.inputs.parameters['d']}}":                     "0.5",
		"{{$.inputs.parameters['b']}}":                     "true",
		"{{$.inputs.parameters['l']}}":                     `["a",1]`,
		"{{$.inputs.parameters['m']}}":                     `{"k":"v"}`,
		"{{$.inputs.artifacts['in'].uri}}":                 "s3://bucket/p/r/t/in",
		"{{$.inputs.artifacts['in'].path}}":                "/tmp/in",
		"{{$.inputs.artifacts['in'].properties['rows']}}":  "10",
		"{{$.inputs.artifacts['in'].metadata['rows']}}":    "10",
		"{{$.outputs.artifacts['out'].uri}}":               "s3://bucket/p/r/t/out",
		"{{$.outputs.artifacts['out'].path}}":              "/tmp/out/out",
		"{{$.outputs.parameters['p'].output_file}}":        "/tmp/outputs/p",
		"{{$.outputs.output_file}}":                        "/tmp/outputs/output_metadata.json",
		"{{$.pipeline_job_name}}/{{$.pipeline_task_name}}": "run-1/t",
		"literal {{ not.a.placeholder }}":                  "literal {{ not.a.placeholder }}",
	}
	for in, want := range cases {
		got, err := RenderString(in, ctx)
		if err != nil {
			t.Errorf("RenderString(%q): %v", in, err)
			continue
		}
		if got != want {
			t.Errorf("RenderString(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRenderExecutorInputJSON(t *testing.T) {
	ctx := ExecutorContext{
		Parameters:           map[string]any{"text": "a<b>&\"c\"", "n": 2},
		InputArtifacts:       map[string][]RuntimeArtifact{"in_ds": {{Name: "in_ds", URI: "s3://b/k", SchemaTitle: "system.Dataset", Path: "/x"}}},
		OutputParameterFiles: map[string]string{"Output": "/tmp/kfp/outputs/Output"},
		OutputArtifacts:      map[string][]RuntimeArtifact{"model": {{URI: "s3://b/m", SchemaTitle: "system.Model", SchemaVersion: "0.0.1"}}},
		OutputFile:           "/tmp/kfp_outputs/output_metadata.json",
	}
	got, err := Render([]string{"--executor_input", "{{$}}"}, ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"inputs":{"parameterValues":{"n":2,"text":"a<b>&\"c\""},"artifacts":{"in_ds":{"artifacts":[{"name":"in_ds","type":{"schemaTitle":"system.Dataset"},"uri":"s3://b/k","metadata":{}}]}}},` +
		`"outputs":{"parameters":{"Output":{"outputFile":"/tmp/kfp/outputs/Output"}},"artifacts":{"model":{"artifacts":[{"name":"model","type":{"schemaTitle":"system.Model","schemaVersion":"0.0.1"},"uri":"s3://b/m","metadata":{}}]}},"outputFile":"/tmp/kfp_outputs/output_metadata.json"}}`
	if got[1] != want {
		t.Errorf("{{$}} =\n%s\nwant\n%s", got[1], want)
	}
}

func TestRenderErrors(t *testing.T) {
	ctx := ExecutorContext{Parameters: map[string]any{"a": "x"}}
	for _, arg := range []string{
		"{{$.inputs.parameters['missing']}}",
		"{{$.inputs.artifacts['nope'].path}}",
		"{{$.outputs.parameters['p'].output_file}}",
		"{{$.outputs.output_file}}",
		"{{$.unknown}}",
		"{{$.inputs.parameters['a'].bad}}",
		"{{$.inputs.parameters['a'",
		"{{$HOME}}",
	} {
		if _, err := Render([]string{"ok", arg}, ctx); err == nil {
			t.Errorf("Render(%q) succeeded, want error", arg)
		} else if !strings.HasPrefix(err.Error(), "arg 1: ") {
			t.Errorf("Render(%q) error %q does not name the argument", arg, err)
		}
	}
}

func TestPlaceholdersParse(t *testing.T) {
	phs, err := Placeholders("a {{$.inputs.artifacts['x'].properties['p q']}} b {{$.outputs.parameters['y'].output_file}} {{ x }}")
	if err != nil {
		t.Fatal(err)
	}
	if len(phs) != 2 || phs[0].Kind != PhInputArtifactProperty || phs[0].Name != "x" || phs[0].Property != "p q" ||
		phs[1].Kind != PhOutputParameterFile || phs[1].Name != "y" {
		t.Fatalf("Placeholders = %+v", phs)
	}
}

func TestParamText(t *testing.T) {
	cases := []struct {
		in   any
		want string
	}{
		{9.0, "9"}, {0.5, "0.5"}, {1e21, "1000000000000000000000"}, {-3, "-3"}, {false, "false"},
		{nil, ""}, {[]any{map[string]any{"b": 1.0, "a": "<"}}, `[{"a":"<","b":1}]`},
	}
	for _, c := range cases {
		got, err := ParamText(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParamText(%v) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestFieldErrorsIsInvalidSpec(t *testing.T) {
	var err error = FieldErrors{{Path: "a.b", Message: "bad"}, {Message: "worse"}}
	if !errors.Is(err, ErrInvalidSpec) {
		t.Error("FieldErrors does not match ErrInvalidSpec")
	}
	if err.Error() != "a.b: bad\nworse" {
		t.Errorf("Error() = %q", err.Error())
	}
}

func TestKubernetesForDocker(t *testing.T) {
	k, problems := KubernetesForDocker(map[string]any{
		"pvcMount": []any{
			map[string]any{"constant": "data-vol", "mountPath": "/data"},
			map[string]any{"pvcNameParameter": map[string]any{"runtimeValue": map[string]any{"constant": "b"}}, "mountPath": "/b"},
		},
		"podMetadata":     map[string]any{"labels": map[string]any{"team": "ml"}, "annotations": map[string]any{"note": "x"}},
		"imagePullPolicy": "Never",
		"secretAsEnv": []any{map[string]any{"secretName": "creds", "keyToEnv": []any{
			map[string]any{"secretKey": "user", "envVar": "USER_NAME"}}}},
		"configMapAsVolume": []any{map[string]any{"configMapNameParameter": map[string]any{"runtimeValue": map[string]any{"constant": "cfg"}},
			"mountPath": "/etc/cfg", "optional": true}},
		"nodeSelector": map[string]any{"labels": map[string]any{"disk": "ssd"}},
	}, nil)
	if len(k.Volumes) != 2 || k.Volumes[0] != (DockerVolume{Name: "b", MountPath: "/b"}) || k.Volumes[1] != (DockerVolume{Name: "data-vol", MountPath: "/data"}) {
		t.Fatalf("volumes: %+v", k.Volumes)
	}
	if k.Labels["team"] != "ml" || k.Labels["note"] != "x" {
		t.Fatalf("labels: %v", k.Labels)
	}
	if len(k.EnvFrom) != 1 || k.EnvFrom[0] != (DockerEnvFrom{Kind: ObjectSecret, Name: "creds", Key: "user", Env: "USER_NAME"}) {
		t.Fatalf("env from: %+v", k.EnvFrom)
	}
	if len(k.ObjectVolumes) != 1 || k.ObjectVolumes[0] != (DockerObjectVolume{Kind: ObjectConfigMap, Name: "cfg", MountPath: "/etc/cfg", Optional: true}) {
		t.Fatalf("object volumes: %+v", k.ObjectVolumes)
	}
	if _, ok := problems["nodeSelector"]; !ok || len(problems) != 1 {
		t.Fatalf("problems: %v", problems)
	}
	// A name from a task output: left out at upload (names nil), applied once resolved, a problem when not.
	dyn := map[string]any{
		"pvcMount": []any{map[string]any{"taskOutputParameter": map[string]any{"producerTask": "createpvc", "outputParameterKey": "name"}, "mountPath": "/d"}},
		"secretAsVolume": []any{map[string]any{"secretNameParameter": map[string]any{"componentInputParameter": "pipelinechannel--secret"},
			"mountPath": "/s"}},
	}
	refs := KubernetesNameRefs(dyn)
	if len(refs) != 2 || refs["pvcMount[0]"] != (Source{Kind: SourceTaskOutputParameter, Task: "createpvc", Output: "name"}) ||
		refs["secretAsVolume[0]"] != (Source{Kind: SourceComponentInput, Input: "pipelinechannel--secret"}) {
		t.Fatalf("refs: %+v", refs)
	}
	if k, problems = KubernetesForDocker(dyn, nil); len(problems) != 0 || len(k.Volumes) != 0 {
		t.Fatalf("at upload: %+v %v", k, problems)
	}
	k, problems = KubernetesForDocker(dyn, map[string]string{"pvcMount[0]": "0190-my-pvc", "secretAsVolume[0]": "s3-creds"})
	if len(problems) != 0 || k.Volumes[0].Name != "0190-my-pvc" || k.ObjectVolumes[0].Name != "s3-creds" {
		t.Fatalf("resolved: %+v %v", k, problems)
	}
	if _, problems = KubernetesForDocker(dyn, map[string]string{}); problems["pvcMount"] == "" || problems["secretAsVolume"] == "" {
		t.Fatalf("unresolved: %v", problems)
	}
	_, problems = KubernetesForDocker(map[string]any{
		"pvcMount":        []any{map[string]any{"mountPath": "/d"}},
		"secretAsEnv":     []any{map[string]any{"secretName": "Bad_Name", "keyToEnv": []any{}}},
		"imagePullPolicy": "Always",
	}, nil)
	if problems["pvcMount"] == "" || problems["imagePullPolicy"] == "" || problems["secretAsEnv"] == "" {
		t.Fatalf("problems: %v", problems)
	}
}

func TestResourcesForDocker(t *testing.T) {
	res, problems := ResourcesForDocker(map[string]any{"cpuLimit": 0.5, "memoryLimit": 4.294967296, "cpuRequest": 0.25,
		"resourceMemoryRequest": "512Mi", "accelerator": map[string]any{"type": "NVIDIA_TESLA_K80", "count": "1"}})
	if res.CPULimit != 0.5 || res.MemoryLimit != 4294967296 || res.CPURequest != 0.25 || res.MemoryRequest != 512<<20 {
		t.Fatalf("resources: %+v", res)
	}
	if len(problems) != 1 || problems["accelerator"] == "" {
		t.Fatalf("problems: %v", problems)
	}
	for in, want := range map[string]float64{"500m": 0.5, "2": 2, "1.5": 1.5, "4Gi": 4 << 30, "512M": 512e6, "1k": 1000} {
		if got, err := ParseQuantity(in); err != nil || got != want {
			t.Errorf("ParseQuantity(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "-1", "{{$.inputs.parameters['pipelinechannel--cpu']}}"} {
		if _, err := ParseQuantity(bad); err == nil {
			t.Errorf("ParseQuantity(%q) accepted", bad)
		}
	}
}
