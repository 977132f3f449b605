package spec

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ml/sluice/services/pipelines/internal/dag"
)

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustParse(t *testing.T, data []byte) *dag.Pipeline {
	t.Helper()
	p, err := Parse(data)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return p
}

func rootTask(t *testing.T, p *dag.Pipeline, name string) *dag.Task {
	t.Helper()
	task, ok := p.Root.DAG.Task(name)
	if !ok {
		t.Fatalf("no root task %q", name)
	}
	return task
}

func TestParseKFPCompiledPipelines(t *testing.T) {
	t.Run("two step with platform spec document", func(t *testing.T) {
		p := mustParse(t, mustRead(t, "testdata/two_step_pipeline_containerized.yaml"))
		if p.Format != dag.FormatKFP || p.Name != "containerized-two-step-pipeline" {
			t.Fatalf("format/name = %s/%s", p.Format, p.Name)
		}
		c2 := rootTask(t, p, "component2")
		b, ok := c2.Binding(dag.IOArtifact, "input_gcs")
		if !ok || b.Source != (dag.Source{Kind: dag.SourceTaskOutputArtifact, Task: "component1", Output: "output_gcs"}) {
			t.Fatalf("binding = %+v", b)
		}
		if got := p.Root.DAG.Tasks[0].Name; got != "component1" {
			t.Errorf("first task = %s", got)
		}
	})
	t.Run("condition in nested DAG", func(t *testing.T) {
		p := mustParse(t, mustRead(t, "testdata/pipeline_with_condition.yaml"))
		c := rootTask(t, p, "condition-1")
		if c.Condition == "" || strings.Join(c.DependsOn, ",") != "flip-coin-op" {
			t.Fatalf("condition-1 = %+v", c)
		}
		ok, err := dag.EvalCondition(c.Condition, map[string]any{"pipelinechannel--flip-coin-op-Output": "heads"})
		if err != nil || !ok {
			t.Fatalf("condition = %v, %v", ok, err)
		}
		sub, _ := p.Component("comp-condition-1")
		if sub.Kind != dag.KindDAG || len(sub.DAG.Tasks) != 3 {
			t.Fatalf("nested DAG = %+v", sub)
		}
	})
	t.Run("loops", func(t *testing.T) {
		p := mustParse(t, mustRead(t, "testdata/pipeline_with_loops.yaml"))
		l1 := rootTask(t, p, "for-loop-1")
		if l1.Iterator == nil || l1.Iterator.InputParameter != "pipelinechannel--loop_parameter" || l1.Iterator.ParallelismLimit != 2 {
			t.Fatalf("for-loop-1 iterator = %+v", l1.Iterator)
		}
		l4 := rootTask(t, p, "for-loop-4")
		if !l4.Iterator.HasRaw || len(l4.Iterator.Raw) != 2 {
			t.Fatalf("for-loop-4 raw = %+v", l4.Iterator)
		}
		collect := rootTask(t, p, "collect")
		if b, _ := collect.Binding(dag.IOParameter, "lengths"); b.Type != dag.ParamList {
			t.Fatalf("fan-in binding = %+v", b)
		}
		body, _ := p.Component("comp-for-loop-2")
		pt, _ := body.DAG.Task("print-text-2")
		b, _ := pt.Binding(dag.IOParameter, "msg")
		v, err := dag.EvalSelector(b.Selector, map[string]any{"A_a": "1", "B_b": "2"})
		if err != nil || v != "1" {
			t.Fatalf("selector %q = %v, %v", b.Selector, v, err)
		}
	})
	t.Run("exit handler", func(t *testing.T) {
		p := mustParse(t, mustRead(t, "testdata/pipeline_with_exit_handler.yaml"))
		exit := rootTask(t, p, "print-op")
		if !exit.ExitHandler || exit.Strategy != dag.AllUpstreamCompleted {
			t.Fatalf("print-op = %+v", exit)
		}
		if b, _ := exit.Binding(dag.IOParameter, "status"); b.Source.Kind != dag.SourceTaskFinalStatus || b.Source.Task != "exit-handler-1" {
			t.Fatalf("status binding = %+v", b)
		}
		if body := rootTask(t, p, "exit-handler-1"); body.ExitHandler || body.DisplayName != "my-pipeline" {
			t.Fatalf("body = %+v", body)
		}
	})
	t.Run("retry", func(t *testing.T) {
		p := mustParse(t, mustRead(t, "testdata/pipeline_with_retry.yaml"))
		add := rootTask(t, p, "add")
		if *add.Retry != (dag.RetryPolicy{MaxRetryCount: 3, Factor: 2, Max: time.Hour}) {
			t.Fatalf("add retry = %+v", add.Retry)
		}
		rn := rootTask(t, p, "random-num")
		if *rn.Retry != (dag.RetryPolicy{MaxRetryCount: 2, Backoff: 5 * time.Second, Factor: 3, Max: time.Hour}) {
			t.Fatalf("random-num retry (max capped at 1h) = %+v", rn.Retry)
		}
		if b, _ := rn.Binding(dag.IOParameter, "high"); b.Source.Constant != 9.0 || b.Type != dag.ParamInteger {
			t.Fatalf("constant 9.0 into NUMBER_INTEGER = %+v", b)
		}
		in, err := p.ResolveInputs(map[string]any{"a": 2})
		if err != nil || in["a"] != 2.0 || in["b"] != 7.0 {
			t.Fatalf("ResolveInputs = %v, %v", in, err)
		}
	})
}

func TestExamplesBothFormatsCompileToTheSameShape(t *testing.T) {
	dir := "../../../../examples/pipelines/"
	native := mustParse(t, mustRead(t, dir+"download_and_join.yaml"))
	kfp := mustParse(t, mustRead(t, dir+"download_and_join.kfp.yaml"))
	for _, p := range []*dag.Pipeline{native, kfp} {
		if p.Name != "download-and-join" || len(p.Root.DAG.Tasks) != 3 {
			t.Fatalf("%s: name %q, %d tasks", p.Format, p.Name, len(p.Root.DAG.Tasks))
		}
		if got := p.Root.DAG.Levels(); len(got) != 2 || len(got[0]) != 2 || got[1][0] != "join" {
			t.Fatalf("%s: levels = %v (want two parallel downloads, then join)", p.Format, got)
		}
		join := rootTask(t, p, "join")
		comp, _ := p.TaskComponent(join)
		if comp.Executor.Args[0] != "{{$.inputs.artifacts['text1'].path}}" || len(comp.InputArtifacts) != 2 {
			t.Fatalf("%s: join component = %+v", p.Format, comp.Executor)
		}
		in, err := p.ResolveInputs(nil)
		if err != nil || !strings.HasSuffix(in["url1"].(string), "shakespeare1.txt") {
			t.Fatalf("%s: inputs = %v, %v", p.Format, in, err)
		}
	}
	nj, _ := native.TaskComponent(rootTask(t, native, "join"))
	kj, _ := kfp.TaskComponent(rootTask(t, kfp, "join"))
	if strings.Join(nj.Executor.Command, "\x00") != strings.Join(kj.Executor.Command, "\x00") {
		t.Errorf("join commands differ:\n%q\n%q", nj.Executor.Command, kj.Executor.Command)
	}
}

func TestDetect(t *testing.T) {
	cases := map[string]dag.Format{
		"apiVersion: sluice.io/v1\nkind: Pipeline\n":              dag.FormatNative,
		"pipelineInfo: {name: x}\nroot: {}\ndeploymentSpec: {}\n": dag.FormatKFP,
	}
	for in, want := range cases {
		if got, err := Detect([]byte(in)); err != nil || got != want {
			t.Errorf("Detect(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "- a\n- b\n", "foo: bar\n", "root: {}\n", "a: [\n"} {
		_, err := Parse([]byte(bad))
		if !errors.Is(err, dag.ErrInvalidSpec) {
			t.Errorf("Parse(%q) = %v, want an invalid spec error", bad, err)
		}
	}
}

// matchErrors asserts err lists a problem at each path containing each text.
func matchErrors(t *testing.T, err error, want [][2]string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v", want)
	}
	if !errors.Is(err, dag.ErrInvalidSpec) {
		t.Fatalf("error %v does not match ErrInvalidSpec", err)
	}
	fes := dag.AsFieldErrors(err)
	for _, w := range want {
		found := false
		for _, fe := range fes {
			if fe.Path == w[0] && strings.Contains(fe.Message, w[1]) {
				found = true
			}
		}
		if !found {
			t.Errorf("missing error %s: ...%s...; got:\n%v", w[0], w[1], err)
		}
	}
}

func TestValidationKFP(t *testing.T) {
	base := string(mustRead(t, "../../../../examples/pipelines/download_and_join.kfp.yaml"))
	if _, err := ParseKFP([]byte(base)); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		edits [][2]string
		want  [][2]string
	}{
		"unknown producer task": {
			edits: [][2]string{{"producerTask: download-2\n", "producerTask: dl3\n"}},
			want:  [][2]string{{"root.dag.tasks.join.inputs.artifacts.text2", `unknown producer task "dl3"`}},
		},
		"cycle names the tasks": {
			edits: [][2]string{{"        componentRef:\n          name: comp-download\n", "        componentRef:\n          name: comp-download\n        dependentTasks:\n        - join\n"}},
			want:  [][2]string{{"root.dag.tasks", "dependency cycle: download -> join -> download"}},
		},
		"self dependency": {
			edits: [][2]string{{"        - download-2\n", "        - download-2\n        - join\n"}},
			want:  [][2]string{{"root.dag.tasks.join.dependentTasks[2]", "dependency cycle: join -> join"}},
		},
		"unknown dependent task": {
			edits: [][2]string{{"        - download-2\n", "        - nope\n"}},
			want:  [][2]string{{"root.dag.tasks.join.dependentTasks[1]", `unknown task "nope"`}},
		},
		"unknown component": {
			edits: [][2]string{{"name: comp-join\n", "name: comp-joiner\n"}},
			want:  [][2]string{{"root.dag.tasks.join.componentRef.name", `unknown component "comp-joiner"`}},
		},
		"unknown executor": {
			edits: [][2]string{{"executorLabel: exec-join", "executorLabel: exec-nope"}},
			want:  [][2]string{{"components.comp-join.executorLabel", `unknown executor "exec-nope"`}},
		},
		"missing required input": {
			edits: [][2]string{{"            url:\n              componentInputParameter: url2\n", ""}},
			want:  [][2]string{{"root.dag.tasks.download-2.inputs.parameters.url", `missing required input parameter "url"`}},
		},
		"constant type mismatch": {
			edits: [][2]string{{"            url:\n              componentInputParameter: url2\n", "            url:\n              runtimeValue:\n                constant: 42\n"}},
			want:  [][2]string{{"root.dag.tasks.download-2.inputs.parameters.url", "type mismatch: integer value 42 does not fit STRING"}},
		},
		"artifact into parameter": {
			edits: [][2]string{{"          artifacts:\n            text1:\n              taskOutputArtifact:\n                outputArtifactKey: data\n                producerTask: download\n",
				"          parameters:\n            text1:\n              taskOutputParameter:\n                outputParameterKey: data\n                producerTask: download\n          artifacts:\n"}},
			want: [][2]string{{"root.dag.tasks.join.inputs.parameters.text1", "type mismatch"}},
		},
		"pipeline input type mismatch": {
			edits: [][2]string{{"      url1:\n        defaultValue: http://127.0.0.1:8099/texts/shakespeare1.txt\n        isOptional: true\n        parameterType: STRING",
				"      url1:\n        isOptional: true\n        parameterType: NUMBER_INTEGER"}},
			want: [][2]string{{"root.dag.tasks.download.inputs.parameters.url", `pipeline input "url1" is NUMBER_INTEGER, input "url" is STRING`}},
		},
		"unknown placeholder": {
			edits: [][2]string{{"- '{{$.inputs.artifacts[''text2''].path}}'", "- '{{$.inputs.artifacts[''text3''].path}}'"}},
			want:  [][2]string{{"deploymentSpec.executors.exec-join.container.args[1]", `unknown input artifact "text3"`}},
		},
		"malformed placeholder": {
			edits: [][2]string{{"- '{{$.inputs.artifacts[''text2''].path}}'", "- '{{$.inputs.artifacts[''text2''].size}}'"}},
			want:  [][2]string{{"deploymentSpec.executors.exec-join.container.args[1]", "unknown placeholder"}},
		},
		"unsafe artifact name": {
			edits: [][2]string{{"      artifacts:\n        joined:", "      artifacts:\n        ../joined:"}},
			want:  [][2]string{{"components.comp-join.outputDefinitions.artifacts.../joined", "unsafe artifact name"}},
		},
		"absolute artifact name": {
			edits: [][2]string{{"      artifacts:\n        joined:", "      artifacts:\n        /etc/passwd:"}},
			want:  [][2]string{{"components.comp-join.outputDefinitions.artifacts./etc/passwd", "unsafe artifact name"}},
		},
		"subject-unsafe task name": {
			edits: [][2]string{{"      join:\n        cachingOptions:", "      Join.All:\n        cachingOptions:"}},
			want:  [][2]string{{"root.dag.tasks.Join.All", "not subject-safe"}},
		},
		"invalid condition": {
			edits: [][2]string{{"        taskInfo:\n          name: join\n", "        taskInfo:\n          name: join\n        triggerPolicy:\n          condition: inputs.parameter_values['x'] ==\n"}},
			want:  [][2]string{{"root.dag.tasks.join.triggerPolicy.condition", "invalid CEL expression"}},
		},
		"condition on unbound parameter": {
			edits: [][2]string{{"        taskInfo:\n          name: join\n", "        taskInfo:\n          name: join\n        triggerPolicy:\n          condition: inputs.parameter_values['x'] == 'y'\n"}},
			want:  [][2]string{{"root.dag.tasks.join.triggerPolicy.condition", `parameter "x", which is not an input`}},
		},
		"bad retry": {
			edits: [][2]string{{"maxRetryCount: 2\n        taskInfo:\n          name: download\n", "maxRetryCount: -1\n        taskInfo:\n          name: download\n"}, {"backoffDuration: 1s", "backoffDuration: soon"}},
			want:  [][2]string{{"root.dag.tasks.download.retryPolicy.maxRetryCount", ">= 0"}, {"root.dag.tasks.download.retryPolicy.backoffDuration", "invalid duration"}},
		},
		"importer executor": {
			edits: [][2]string{{"    exec-join:\n      container:\n", "    exec-join:\n      importer:\n        artifactUri: {constant: gs://x}\n      container:\n"}},
			want:  nil, // container wins when both are present; still valid
		},
		"all problems at once": {
			edits: [][2]string{{"producerTask: download-2\n", "producerTask: dl3\n"}, {"name: comp-download\n", "name: comp-missing\n"}},
			want:  [][2]string{{"root.dag.tasks.join.inputs.artifacts.text2", "dl3"}, {"root.dag.tasks.download.componentRef.name", "comp-missing"}},
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			doc := base
			for _, e := range c.edits {
				if !strings.Contains(doc, e[0]) {
					t.Fatalf("edit target %q not in base", e[0])
				}
				doc = strings.Replace(doc, e[0], e[1], 1)
			}
			p, err := ParseKFP([]byte(doc))
			if c.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if p != nil {
				t.Fatal("a rejected spec returned a pipeline")
			}
			matchErrors(t, err, c.want)
		})
	}
}
