#!/usr/bin/env python3
"""Evaluates CEL rules the way a Kubernetes >= 1.25 API server would (cel-python): reads a JSON list of
{"rule": ..., "self": ...} from stdin, prints a JSON list of booleans (or error strings). Used by CELRulesTests."""

import json
import sys

try:
    import celpy
except ImportError:
    sys.exit("cel_eval: the cel-python package is missing (scripts/deps.sh test installs it)")

env = celpy.Environment()
out = []
for case in json.load(sys.stdin):
    try:
        program = env.program(env.compile(case["rule"]))
        result = program.evaluate({"self": celpy.json_to_cel(case["self"])})
        out.append(bool(result) if isinstance(result, celpy.celtypes.BoolType) else f"not a bool: {result!r}")
    except Exception as e:  # a rule that does not compile or evaluate is a failure of the test
        out.append(f"error: {e}")
print(json.dumps(out))
