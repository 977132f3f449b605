// Package dag is the single internal model of a Sluice pipeline: both the
// native YAML format and the Kubeflow Pipelines v2 IR (PipelineSpec) compile
// into a [Pipeline], which the engine walks.
//
// # Shape
//
// A [Pipeline] has a root [Component] of kind [KindDAG] whose inputs are the
// pipeline's run parameters. Every [Component] is either a container
// ([KindContainer], with a [Container] executor) or a nested [DAG]
// ([KindDAG]). A [DAG] holds [Task]s in a deterministic topological order;
// each [Task] instantiates a component and binds every input it passes with a
// [Binding] whose [Source] is a constant, an input of the enclosing component,
// an upstream task's output parameter or artifact, or an upstream task's
// final status (exit handlers). The model mirrors the semantics of KFP's
// PipelineTaskSpec (trigger policy, parameter iterator, retry policy,
// caching options).
//
// # Compile and validate
//
// [Compile] checks a model built by a parser and fills derived fields (task
// order, dependencies, binding types). It reports every problem at once as
// [FieldErrors], each naming the source field path (for example
// `root.dag.tasks.join.inputs.parameters.text1: unknown producer task "dl3"`).
// Nothing about a run is created before Compile succeeds.
//
// # Runtime helpers (pure, deterministic)
//
//   - [Render] substitutes KFP placeholders in a container's command/args in
//     one pass; a substituted value is never re-expanded and each argument
//     stays one argv element.
//   - [EvalCondition] evaluates a trigger condition with CEL exactly as KFP's
//     driver exposes it (`inputs.parameter_values['x']`).
//   - [EvalSelector] applies a parameterExpressionSelector.
//   - [Fingerprint] computes the cache key of a step attempt.
//   - [Pipeline.ResolveInputs] applies defaults and checks run parameters.
//
// All helpers are free of I/O, clocks and randomness, so a Temporal workflow
// may call them.
package dag
