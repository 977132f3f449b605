package spec

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluice-ml/sluice/services/pipelines/internal/dag"
)

// checkParsed asserts the invariants of any successful parse: a compiled
// pipeline with subject-safe names whose DAGs list tasks after their
// dependencies and which survives JSON encoding (workflow input).
func checkParsed(t *testing.T, p *dag.Pipeline, err error) {
	if err != nil {
		if !errors.Is(err, dag.ErrInvalidSpec) {
			t.Fatalf("error %v does not match ErrInvalidSpec", err)
		}
		if p != nil {
			t.Fatal("pipeline returned with an error")
		}
		return
	}
	if !dag.SafeName(p.Name) || p.Root == nil || p.Root.DAG == nil {
		t.Fatalf("bad pipeline %q", p.Name)
	}
	comps := append([]*dag.Component{p.Root}, nil...)
	for _, n := range p.ComponentNames() {
		comps = append(comps, p.Components[n])
	}
	for _, c := range comps {
		if c.DAG == nil {
			if c.Executor != nil {
				// Rendering with an empty context must fail cleanly, not panic.
				_, _ = dag.Render(c.Executor.Args, dag.ExecutorContext{})
			}
			continue
		}
		seen := map[string]bool{}
		for _, task := range c.DAG.Tasks {
			if !dag.SafeName(task.Name) {
				t.Fatalf("unsafe task name %q", task.Name)
			}
			for _, dep := range task.DependsOn {
				if !seen[dep] {
					t.Fatalf("task %q listed before its dependency %q", task.Name, dep)
				}
			}
			seen[task.Name] = true
		}
	}
	if _, err := json.Marshal(p); err != nil {
		t.Fatalf("compiled pipeline does not encode: %v", err)
	}
}

func addSeeds(f *testing.F, patterns ...string) {
	for _, pat := range patterns {
		files, _ := filepath.Glob(pat)
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
}

func FuzzParseKFP(f *testing.F) {
	addSeeds(f, "testdata/*.yaml", "../../../../examples/pipelines/*.kfp.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseKFP(data)
		checkParsed(t, p, err)
	})
}

func FuzzParseNative(f *testing.F) {
	addSeeds(f, "../../../../examples/pipelines/download_and_join.yaml")
	f.Add([]byte(nativeFull))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseNative(data)
		checkParsed(t, p, err)
		p2, err2 := Parse(data)
		if (err == nil) != (err2 == nil) && err == nil {
			t.Fatalf("Parse disagrees with ParseNative on a native spec: %v", err2)
		}
		_ = p2
	})
}
