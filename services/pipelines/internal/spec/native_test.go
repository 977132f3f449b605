package spec

import (
	"strings"
	"testing"

	"github.com/sluice-ml/sluice/services/pipelines/internal/dag"
)

const nativeFull = `apiVersion: sluice.io/v1
kind: Pipeline
metadata: {name: fan-out}
spec:
  inputs:
    words: {type: LIST, default: [a, b]}
    coin: {type: STRING, default: heads}
  tasks:
    gen:
      image: alpine
      command: [sh, -c, 'echo "[1,2,3]" > "$0"']
      args: ["{{outputs.nums}}"]
      outputs: {parameters: {nums: {type: LIST}}}
    square:
      image: alpine
      command: [sh, -c, 'echo $(($0*$0)) > "$1"']
      args: ["{{inputs.n}}", "{{outputs.sq}}"]
      forEach: {items: {fromTask: gen.nums}, as: n, type: NUMBER_INTEGER, parallelism: 2}
      outputs: {parameters: {sq: {type: NUMBER_INTEGER}}}
      retry: {maxRetries: 3, backoff: 2s, factor: 3, maxBackoff: 1m}
    each-word:
      image: alpine
      command: [echo]
      args: ["{{inputs.w}}", "{{inputs.prefix}}"]
      inputs:
        prefix: "--x={{$.inputs.parameters['w']}}"
      forEach: {items: [x, y, z], as: w}
      outputs: {artifacts: [log]}
    total:
      image: alpine
      command: [echo]
      args: ["{{inputs.all}}", "{{inputs.coin}}"]
      inputs:
        all: {fromTask: square.sq}
        coin: {fromInput: coin}
      when: "inputs.parameter_values['coin'] == 'heads'"
      cache: true
  exitHandler:
    name: notify
    image: alpine
    command: [echo]
    args: ["{{inputs.status}}", "{{inputs.coin}}"]
    inputs:
      status: {finalStatus: true}
      coin: {fromInput: coin}
`

func TestParseNativeFull(t *testing.T) {
	p, err := ParseNative([]byte(nativeFull))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Root.DAG.Tasks) != 2 || p.Root.DAG.Tasks[0].Name != "exit-handler-1" {
		t.Fatalf("root tasks = %v", p.Root.DAG.Tasks)
	}
	notify := p.Root.DAG.Tasks[1]
	if notify.Name != "notify" || !notify.ExitHandler || notify.Strategy != dag.AllUpstreamCompleted {
		t.Fatalf("notify = %+v", notify)
	}
	body, _ := p.Component("comp-exit-handler-1")
	if got := []string{body.DAG.Tasks[0].Name, body.DAG.Tasks[1].Name}; got[0] != "each-word" || got[1] != "gen" {
		t.Fatalf("body order = %v", got)
	}
	square, _ := body.DAG.Task("square")
	if square.Iterator == nil || square.Iterator.ItemInput != "n" || square.Iterator.InputParameter != "n-items" || square.Iterator.ParallelismLimit != 2 {
		t.Fatalf("square iterator = %+v", square.Iterator)
	}
	if square.Retry.Backoff.Seconds() != 2 || square.Retry.Factor != 3 || square.Retry.Max.Minutes() != 1 {
		t.Fatalf("square retry = %+v", square.Retry)
	}
	total, _ := body.DAG.Task("total")
	if b, _ := total.Binding(dag.IOParameter, "all"); b.Type != dag.ParamList {
		t.Fatalf("fan-in of a forEach task must be a LIST, got %+v", b)
	}
	tc, _ := p.TaskComponent(total)
	if tc.Executor.Args[0] != "{{$.inputs.parameters['all']}}" {
		t.Fatalf("alias not rewritten: %q", tc.Executor.Args)
	}
	each, _ := body.DAG.Task("each-word")
	if b, _ := each.Binding(dag.IOParameter, "prefix"); !b.Templated {
		t.Fatalf("templated constant not marked: %+v", b)
	}
	ec, _ := p.TaskComponent(each)
	if ec.Executor.Args[0] != "{{$.inputs.parameters['w']}}" || len(ec.OutputArtifacts) != 1 || ec.OutputArtifacts[0].SchemaTitle != "system.Artifact" {
		t.Fatalf("each-word component = %+v", ec)
	}
	if p.TaskCount() != 6 {
		t.Errorf("TaskCount = %d", p.TaskCount())
	}
}

func TestValidationNative(t *testing.T) {
	base := string(mustRead(t, "../../../../examples/pipelines/download_and_join.yaml"))
	cases := map[string]struct {
		edits [][2]string
		want  [][2]string
	}{
		"unknown producer": {
			edits: [][2]string{{"fromTask: download2.data", "fromTask: dl3.data"}},
			want:  [][2]string{{"spec.tasks.join.inputs.text2", `unknown producer task "dl3"`}},
		},
		"unknown output": {
			edits: [][2]string{{"fromTask: download2.data", "fromTask: download2.nope"}},
			want:  [][2]string{{"spec.tasks.join.inputs.text2", `unknown output parameter "nope" of task "download2"`}},
		},
		"cycle": {
			edits: [][2]string{{"    download1:\n", "    download1:\n      dependsOn: [join]\n"}},
			want:  [][2]string{{"spec.tasks", "dependency cycle: download1 -> join -> download1"}},
		},
		"unknown dependsOn": {
			edits: [][2]string{{"    join:\n", "    join:\n      dependsOn: [ghost]\n"}},
			want:  [][2]string{{"spec.tasks.join.dependsOn[0]", `unknown task "ghost"`}},
		},
		"unknown pipeline input": {
			edits: [][2]string{{"fromInput: url2", "fromInput: url3"}},
			want:  [][2]string{{"spec.tasks.download2.inputs.url", `unknown pipeline input parameter "url3"`}},
		},
		"declared type mismatch with constant": {
			edits: [][2]string{{"url: {fromInput: url2}", "url: {value: abc, type: NUMBER_INTEGER}"}},
			want:  [][2]string{{"spec.tasks.download2.inputs.url", "type mismatch: string value"}},
		},
		"artifact declared as parameter": {
			edits: [][2]string{{"text1: {fromTask: download1.data}", "text1: {fromTask: download1.data, type: STRING}"}},
			want:  [][2]string{{"spec.tasks.join.inputs.text1", "is an artifact"}},
		},
		"unknown placeholder alias": {
			edits: [][2]string{{`"{{inputs.text2}}"`, `"{{inputs.text9}}"`}},
			want:  [][2]string{{"spec.tasks.join.args[1]", `unknown input "text9"`}},
		},
		"unknown KFP placeholder": {
			edits: [][2]string{{`"{{inputs.text2}}"`, `"{{$.inputs.artifacts['text9'].path}}"`}},
			want:  [][2]string{{"spec.tasks.join.args[1]", `unknown input artifact "text9"`}},
		},
		"unsafe output name": {
			edits: [][2]string{{"          joined: {type: system.Dataset}", "          ../joined: {type: system.Dataset}"}, {"{{outputs.joined}}", "x"}},
			want:  [][2]string{{"spec.tasks.join.outputs.artifacts.../joined", "unsafe artifact name"}},
		},
		"unsafe task name": {
			edits: [][2]string{{"    join:\n", "    Join Now:\n"}},
			want:  [][2]string{{"spec.tasks.Join Now", "not subject-safe"}},
		},
		"unsafe pipeline name": {
			edits: [][2]string{{"name: download-and-join", "name: Download And Join"}},
			want:  [][2]string{{"metadata.name", `e.g. "download-and-join"`}},
		},
		"unknown field": {
			edits: [][2]string{{"      cache: true\n    download2", "      cahce: true\n    download2"}},
			want:  [][2]string{{"line 31", "field cahce not found"}},
		},
		"bad when": {
			edits: [][2]string{{"    join:\n", "    join:\n      when: \"inputs.parameter_values['nope'] == 1.0\"\n"}},
			want:  [][2]string{{"spec.tasks.join.when", `parameter "nope"`}},
		},
		"bad strategy and retry": {
			edits: [][2]string{{"    join:\n", "    join:\n      strategy: SOMETIMES\n      retry: {maxRetries: 1, factor: 0.5}\n"}},
			want:  [][2]string{{"spec.tasks.join.strategy", "unknown trigger strategy"}, {"spec.tasks.join.retry.backoffFactor", ">= 1"}},
		},
		"missing image": {
			edits: [][2]string{{"      image: alpine:3.20\n", ""}},
			want:  [][2]string{{"spec.tasks.join.image", "image is required"}},
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
			p, err := Parse([]byte(doc))
			if p != nil {
				t.Fatal("a rejected spec returned a pipeline")
			}
			matchErrors(t, err, c.want)
		})
	}
}
