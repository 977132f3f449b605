package dag

import (
	"reflect"
	"testing"
	"time"
)

func TestEvalCondition(t *testing.T) {
	params := map[string]any{
		"pipelinechannel--flip-coin-Output":  "heads",
		"pipelinechannel--random-num-Output": 7.0,
		"n":                                  3, // ints are treated as KFP numbers (doubles)
		"cfg":                                `{"mode": "fast"}`,
		"flag":                               true,
	}
	cases := map[string]bool{
		"inputs.parameter_values['pipelinechannel--flip-coin-Output'] == 'heads'": true,
		"inputs.parameter_values['pipelinechannel--flip-coin-Output'] == 'tails'": false,
		"int(inputs.parameter_values['pipelinechannel--random-num-Output']) > 5":  true,
		"int(inputs.parameter_values['pipelinechannel--random-num-Output']) <= 5": false,
		"inputs.parameter_values['n'] == 3.0":                                     true,
		"parseJson(inputs.parameter_values['cfg'])['mode'] == 'fast'":             true,
		"inputs.parameters['flag'] && inputs.parameter_values['n'] > 2.0":         true,
	}
	for expr, want := range cases {
		got, err := EvalCondition(expr, params)
		if err != nil {
			t.Errorf("EvalCondition(%q): %v", expr, err)
			continue
		}
		if got != want {
			t.Errorf("EvalCondition(%q) = %v, want %v", expr, got, want)
		}
	}
	for _, bad := range []string{
		"inputs.parameter_values['missing'] == 'x'", // no such key
		"inputs.parameter_values['n'] + 1.0",        // not a bool
		"inputs.parameter_values[",                  // syntax
	} {
		if _, err := EvalCondition(bad, params); err == nil {
			t.Errorf("EvalCondition(%q) succeeded, want error", bad)
		}
	}
}

func TestCheckConditionReportsReferencedParameters(t *testing.T) {
	refs, err := CheckCondition(`inputs.parameter_values['a'] == 'x' && inputs.parameters["b"] > 1.0`)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(refs, []string{"a", "b"}) {
		t.Errorf("refs = %v", refs)
	}
	if _, err := CheckCondition("1 + 2"); err == nil {
		t.Error("CheckCondition accepted a non-boolean expression")
	}
}

func TestEvalSelector(t *testing.T) {
	item := map[string]any{"A_a": "1", "B_b": "2"}
	got, err := EvalSelector(`parseJson(string_value)["A_a"]`, item)
	if err != nil || got != "1" {
		t.Fatalf("selector on struct = %v, %v", got, err)
	}
	got, err = EvalSelector(`parseJson(string_value)[1]`, "[1.5, 2.5]")
	if err != nil || got != 2.5 {
		t.Fatalf("selector on JSON list text = %v, %v", got, err)
	}
	got, err = EvalSelector(`size(string_value)`, "hello")
	if err != nil || got != 5.0 {
		t.Fatalf("size selector = %v (%T), %v", got, got, err)
	}
	if _, err := EvalSelector(`parseJson(string_value)["nope"]`, item); err == nil {
		t.Error("missing key did not fail")
	}
}

func TestFingerprint(t *testing.T) {
	comp := &Component{Name: "c", Kind: KindContainer, Executor: &Container{Image: "alpine", Command: []string{"sh", "-c"}, Args: []string{"{{$.inputs.parameters['x']}}"}},
		OutputArtifacts: []ArtifactDef{{Name: "out", SchemaTitle: "system.Dataset"}}}
	base := Fingerprint(comp, map[string]any{"x": "1", "y": 2, "z": []any{1, "a"}}, map[string][]string{"in": {"abc"}})
	if len(base) != 64 {
		t.Fatalf("fingerprint %q is not sha256 hex", base)
	}
	for i := 0; i < 20; i++ { // map order must not matter
		if got := Fingerprint(comp, map[string]any{"z": []any{1.0, "a"}, "y": 2.0, "x": "1"}, map[string][]string{"in": {"abc"}}); got != base {
			t.Fatalf("fingerprint not stable: %s vs %s", got, base)
		}
	}
	changed := []string{
		Fingerprint(comp, map[string]any{"x": "2", "y": 2, "z": []any{1, "a"}}, map[string][]string{"in": {"abc"}}),
		Fingerprint(comp, map[string]any{"x": "1", "y": 2, "z": []any{1, "a"}}, map[string][]string{"in": {"abd"}}),
		Fingerprint(&Component{Executor: &Container{Image: "alpine:3", Command: comp.Executor.Command, Args: comp.Executor.Args}, OutputArtifacts: comp.OutputArtifacts},
			map[string]any{"x": "1", "y": 2, "z": []any{1, "a"}}, map[string][]string{"in": {"abc"}}),
	}
	for i, c := range changed {
		if c == base {
			t.Errorf("change %d did not change the fingerprint", i)
		}
	}
}

func TestRetryDelay(t *testing.T) {
	r := RetryPolicy{MaxRetryCount: 5, Backoff: time.Second, Factor: 2, Max: 5 * time.Second}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	for i, w := range want {
		if got := r.Delay(i + 1); got != w {
			t.Errorf("Delay(%d) = %v, want %v", i+1, got, w)
		}
	}
	if (RetryPolicy{MaxRetryCount: 3, Factor: 2, Max: time.Hour}).Delay(2) != 0 {
		t.Error("zero backoff should retry immediately")
	}
}

func TestParseParamText(t *testing.T) {
	cases := []struct {
		s    string
		t    ParamType
		want any
		ok   bool
	}{
		{"3", ParamInteger, 3.0, true}, {"3.5", ParamInteger, nil, false}, {"3.5", ParamDouble, 3.5, true},
		{"true", ParamBoolean, true, true}, {"[1,2]", ParamList, []any{1.0, 2.0}, true}, {`{"a":1}`, ParamStruct, map[string]any{"a": 1.0}, true},
		{"{}", ParamList, nil, false}, {" x ", ParamString, " x ", true},
	}
	for _, c := range cases {
		got, err := ParseParamText(c.s, c.t)
		if (err == nil) != c.ok || (c.ok && !reflect.DeepEqual(got, c.want)) {
			t.Errorf("ParseParamText(%q, %s) = %v, %v", c.s, c.t, got, err)
		}
	}
}
