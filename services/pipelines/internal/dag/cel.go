package dag

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"sync"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"google.golang.org/protobuf/types/known/structpb"
)

// celCostLimit bounds the work of one condition or selector evaluation, so a
// hostile expression cannot stall a workflow task.
const celCostLimit = 1_000_000

// conditionEnv exposes what KFP's driver exposes to triggerPolicy.condition:
// the task's ExecutorInput fields (`inputs.parameter_values['x']`, and the
// deprecated `inputs.parameters['x']`), plus parseJson(string) -> dyn.
// selectorEnv exposes a google.protobuf.Value's fields (string_value,
// number_value, bool_value, struct_value, list_value, null_value) to
// parameterExpressionSelector, string_value always holding the value's text.
var (
	envOnce      sync.Once
	conditionEnv *cel.Env
	selectorEnv  *cel.Env
	envErr       error
)

func parseJSONFunc() cel.EnvOption {
	return cel.Function("parseJson",
		cel.Overload("parse_json_string", []*cel.Type{cel.StringType}, cel.DynType,
			cel.UnaryBinding(func(arg ref.Val) ref.Val {
				s, ok := arg.Value().(string)
				if !ok {
					return types.MaybeNoSuchOverloadErr(arg)
				}
				var v any
				if err := json.Unmarshal([]byte(s), &v); err != nil {
					return types.NewErr("parseJson: %v", err)
				}
				return types.DefaultTypeAdapter.NativeToValue(v)
			})))
}

func envs() (*cel.Env, *cel.Env, error) {
	envOnce.Do(func() {
		conditionEnv, envErr = cel.NewEnv(
			// map(string, map(string, dyn)) rather than map(string, dyn):
			// cel-go v0.31 fails int() on a value reached through two
			// dynamic index steps.
			cel.Variable("inputs", cel.MapType(cel.StringType, cel.MapType(cel.StringType, cel.DynType))),
			cel.Variable("outputs", cel.MapType(cel.StringType, cel.MapType(cel.StringType, cel.DynType))),
			parseJSONFunc(),
		)
		if envErr != nil {
			return
		}
		selectorEnv, envErr = cel.NewEnv(
			cel.Variable("string_value", cel.StringType),
			cel.Variable("number_value", cel.DoubleType),
			cel.Variable("bool_value", cel.BoolType),
			cel.Variable("struct_value", cel.MapType(cel.StringType, cel.DynType)),
			cel.Variable("list_value", cel.ListType(cel.DynType)),
			cel.Variable("null_value", cel.NullType),
			parseJSONFunc(),
		)
	})
	return conditionEnv, selectorEnv, envErr
}

func compileCEL(env *cel.Env, expr string) (cel.Program, *cel.Ast, error) {
	ast, iss := env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		return nil, nil, fmt.Errorf("invalid CEL expression: %v", iss.Err())
	}
	prg, err := env.Program(ast, cel.CostLimit(celCostLimit))
	if err != nil {
		return nil, nil, fmt.Errorf("invalid CEL expression: %v", err)
	}
	return prg, ast, nil
}

// CheckCondition compiles a trigger condition and checks it yields bool (or
// dyn). It returns the parameter names the expression looks up with a
// literal key (`inputs.parameter_values['x']`), so a caller can check they
// are bound.
func CheckCondition(expr string) (params []string, err error) {
	env, _, err := envs()
	if err != nil {
		return nil, err
	}
	_, ast, err := compileCEL(env, expr)
	if err != nil {
		return nil, err
	}
	if t := ast.OutputType(); !t.IsExactType(cel.BoolType) && !t.IsExactType(cel.DynType) {
		return nil, fmt.Errorf("condition must be a boolean expression, got %s", t)
	}
	for _, m := range paramRefRe.FindAllStringSubmatch(expr, -1) {
		if m[2] != "" {
			params = append(params, m[2])
		} else {
			params = append(params, m[3])
		}
	}
	return params, nil
}

var paramRefRe = regexp.MustCompile(`inputs\.(parameter_values|parameters)\s*\[\s*(?:'([^']*)'|"([^"]*)")\s*\]`)

// EvalCondition evaluates a KFP trigger condition (CEL) against the task's
// input parameter values, as KFP's driver does: the expression sees
// `inputs.parameter_values` (and `inputs.parameters`) holding params, with
// numbers as doubles (so `int(inputs.parameter_values['n']) > 5` and
// `inputs.parameter_values['coin'] == 'heads'` both work). It returns an
// error if the expression is invalid, fails (e.g. a missing key) or does not
// yield a bool. Pure: no I/O, no clock.
func EvalCondition(expr string, params map[string]any) (bool, error) {
	env, _, err := envs()
	if err != nil {
		return false, err
	}
	prg, _, err := compileCEL(env, expr)
	if err != nil {
		return false, err
	}
	pv := make(map[string]any, len(params))
	for k, v := range params {
		pv[k] = normalizeJSON(v)
	}
	out, _, err := prg.Eval(map[string]any{
		"inputs":  map[string]map[string]any{"parameter_values": pv, "parameters": pv},
		"outputs": map[string]map[string]any{},
	})
	if err != nil {
		return false, fmt.Errorf("evaluate condition: %w", err)
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("evaluate condition: result is %s, not bool", out.Type().TypeName())
	}
	return b, nil
}

// CheckSelector compiles a parameterExpressionSelector.
func CheckSelector(expr string) error {
	_, env, err := envs()
	if err != nil {
		return err
	}
	_, _, err = compileCEL(env, expr)
	return err
}

// EvalSelector applies a KFP parameterExpressionSelector (CEL) to value, as
// KFP's driver does: the expression sees the google.protobuf.Value fields of
// value (string_value, number_value, bool_value, struct_value, list_value)
// and string_value always holds the value's text (JSON for lists/structs),
// so `parseJson(string_value)["A_a"]` picks a struct field. The result is
// returned as a JSON value (float64 numbers).
func EvalSelector(expr string, value any) (any, error) {
	_, env, err := envs()
	if err != nil {
		return nil, err
	}
	prg, _, err := compileCEL(env, expr)
	if err != nil {
		return nil, err
	}
	value = normalizeJSON(value)
	text, err := ParamText(value)
	if err != nil {
		return nil, err
	}
	act := map[string]any{"string_value": text}
	switch x := value.(type) {
	case float64:
		act["number_value"] = x
	case bool:
		act["bool_value"] = x
	case map[string]any:
		act["struct_value"] = x
	case []any:
		act["list_value"] = x
	case nil:
		act["null_value"] = types.NullValue
	}
	out, _, err := prg.Eval(act)
	if err != nil {
		return nil, fmt.Errorf("evaluate selector: %w", err)
	}
	native, err := out.ConvertToNative(reflect.TypeOf(&structpb.Value{}))
	if err != nil {
		return nil, fmt.Errorf("evaluate selector: result %s is not a JSON value", out.Type().TypeName())
	}
	return native.(*structpb.Value).AsInterface(), nil
}
