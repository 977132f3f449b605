package app

import (
	"os"
	"reflect"
	"testing"

	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
	"github.com/sluice-ml/sluice/services/pipelines/internal/spec"
)

// The drawable graph of a pipeline has one node per task with the run-state paths of its upstream
// tasks, the loop / condition / exit-handler markers, and the run parameters with their types.
func TestGraphOfPipeline(t *testing.T) {
	for _, file := range []string{"../../../examples/pipelines/download_and_join.yaml", "../../../examples/pipelines/download_and_join.kfp.yaml"} {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		p, err := spec.Parse(src)
		if err != nil {
			t.Fatal(err)
		}
		g := graphOf(p)
		deps := map[string][]string{}
		for _, gt := range g.Tasks {
			deps[gt.Path] = gt.DependsOn
			if gt.Kind != "container" || gt.Parent != "" {
				t.Errorf("%s: task %s is %q under %q, want a root container", file, gt.Path, gt.Kind, gt.Parent)
			}
		}
		if len(g.Tasks) != 3 || len(deps["join"]) != 2 || len(deps["download1"]) != 0 {
			t.Errorf("%s: tasks %+v", file, g.Tasks)
		}
		if len(g.Inputs) != 2 || g.Inputs[0].Type != "STRING" || !g.Inputs[0].HasDefault {
			t.Errorf("%s: inputs %+v", file, g.Inputs)
		}
	}
	src := []byte(`apiVersion: sluice.io/v1
kind: Pipeline
metadata: {name: shapes}
spec:
  inputs:
    n: {type: NUMBER_INTEGER}
  tasks:
    gen: {image: a, command: [sh, -c, "true"]}
    sq:
      forEach: {items: [1, 2], as: x, type: NUMBER_INTEGER}
      image: a
      command: [sh, -c, "true"]
      dependsOn: [gen]
    maybe:
      image: a
      command: [sh, -c, "true"]
      inputs: {n: {fromInput: n}}
      when: "inputs.parameter_values['n'] > 1.0"
  exitHandler:
    name: bye
    image: a
    command: [sh, -c, "true"]
    inputs:
      status: {finalStatus: true}
`)
	p, err := spec.Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]pipelinesv1.GraphTask{}
	for _, gt := range graphOf(p).Tasks {
		byPath[gt.Path] = gt
	}
	// As in KFP, the body of an exit handler is a nested DAG (exit-handler-1) the handler depends on.
	const body = "exit-handler-1"
	if b := byPath[body]; b.Kind != "dag" || byPath[body+"/gen"].Parent != body {
		t.Errorf("exit handler body: %+v (all %+v)", b, byPath)
	}
	if sq := byPath[body+"/sq"]; !sq.Loop || !reflect.DeepEqual(sq.DependsOn, []string{body + "/gen"}) {
		t.Errorf("loop task: %+v (all %+v)", sq, byPath)
	}
	if byPath[body+"/maybe"].Condition == "" {
		t.Errorf("conditional task: %+v", byPath[body+"/maybe"])
	}
	if !byPath["bye"].ExitHandler || !reflect.DeepEqual(byPath["bye"].DependsOn, []string{body}) {
		t.Errorf("exit handler: %+v (all %+v)", byPath["bye"], byPath)
	}
}
