"""Stand-in for `python3 -m kfp.dsl.executor_main` (test fixture, see ../../README.md)."""
import argparse
import importlib.util
import inspect
import json
import os
import sys
import typing

from kfp import dsl


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--component_module_path", required=True)
    ap.add_argument("--executor_input", required=True)
    ap.add_argument("--function_to_execute", required=True)
    args, _ = ap.parse_known_args()
    ei = json.loads(args.executor_input)
    print("[stand-in KFP executor] executor_input:", json.dumps(ei, indent=2, sort_keys=True))
    spec = importlib.util.spec_from_file_location("ephemeral_component", args.component_module_path)
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, os.path.dirname(args.component_module_path))
    spec.loader.exec_module(mod)
    fn = getattr(mod, args.function_to_execute)

    inputs, outputs = ei.get("inputs", {}), ei.get("outputs", {})
    hints = typing.get_type_hints(fn)
    kwargs, out_arts = {}, {}
    for name in inspect.signature(fn).parameters:
        hint = hints.get(name)
        origin, targs = typing.get_origin(hint), typing.get_args(hint)
        if origin in (dsl.Input, dsl.Output):
            cls = targs[0] if targs else dsl.Artifact
            side = inputs if origin is dsl.Input else outputs
            raw = side.get("artifacts", {}).get(name, {}).get("artifacts", [{}])[0]
            art = cls(name=raw.get("name", name), uri=raw.get("uri", ""), metadata=raw.get("metadata"))
            if origin is dsl.Output:
                os.makedirs(os.path.dirname(art.path) or ".", exist_ok=True)
                out_arts[name] = art
            kwargs[name] = art
        elif name in inputs.get("parameterValues", {}):
            kwargs[name] = inputs["parameterValues"][name]
    result = fn(**kwargs)

    out = {}
    if isinstance(result, dsl.Artifact) and "Output" in outputs.get("artifacts", {}):
        # A pythonic artifact return (-> Dataset): the returned artifact, with its own URI, is the output.
        result.name = outputs["artifacts"]["Output"]["artifacts"][0].get("name", "Output")
        out_arts["Output"] = result
    elif result is not None and "Output" in outputs.get("parameters", {}):
        out["parameterValues"] = {"Output": result}
    if out_arts:
        out["artifacts"] = {n: {"artifacts": [{"name": a.name, "uri": a.uri, "metadata": a.metadata}]} for n, a in out_arts.items()}
    path = outputs.get("outputFile")
    if path:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w") as f:
            json.dump(out, f)


if __name__ == "__main__":
    main()
