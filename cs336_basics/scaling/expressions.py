"""Expression-valued hyperparameters: a small, safe arithmetic evaluator and its hook into the config tree.

    evaluate("3e13/flops", {"flops": 1.5e9})            -> 20000.0
    evaluate("3e-3*(B/32)**0.5", {"B": 128})           -> 0.006
    evaluate("__import__('os')", {})                   -> ValueError (only the whitelisted calls below)

The expression is parsed with `ast` and walked node by node; only numbers, the names of the table below, + - * / **,
unary minus/plus, parentheses and the calls min, max, sqrt, log, exp are allowed; everything is computed in
floats, so no expression can run for long or build huge integers. Never `eval`.

In a config (flag, JSON file or preset) any numeric field may hold such a string. `resolve_expressions` evaluates
the pending ones once, in dependency order (`steps` needs the run length, `N` the whole model), and records each as
config.expressions["section.field"] = {"expression": ..., "value": ...}; config.json keeps that record, and a
resumed run re-uses the value without evaluating again.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping
from typing import Any

# The names an expression may use, with what they mean (shown by --help and the README).
NAMES: dict[str, str] = {
    "N": "non-embedding parameters (all but the token embedding and the LM head)",
    "N_total": "all trainable parameters",
    "N_embed": "embedding parameters (token embedding + untied LM head)",
    "d": "model.d_model",
    "L": "model.num_layers",
    "T": "model.context_length",
    "B": "sequences per optimizer step (data.batch_size x data.grad_accum_steps)",
    "tokens": "tokens per optimizer step (B x T)",
    "flops": "training FLOPs per optimizer step (cs336_basics.accounting: 3 x forward matmul FLOPs x tokens)",
    "steps": "optimizer steps of the run (not in schedule.max_steps / total_tokens themselves)",
}

# Which config fields each name is computed from: a name is unusable while one of them is itself pending.
# A trailing "." means every field of that section.
DEPENDS: dict[str, tuple[str, ...]] = {
    "N": ("model.",), "N_total": ("model.",), "N_embed": ("model.",),
    "d": ("model.d_model",), "L": ("model.num_layers",), "T": ("model.context_length",),
    "B": ("data.batch_size", "data.grad_accum_steps"),
    "tokens": ("data.batch_size", "data.grad_accum_steps", "model.context_length"),
    "flops": ("model.", "data.batch_size", "data.grad_accum_steps"),
    "steps": ("schedule.max_steps", "schedule.total_tokens", "data.batch_size", "data.grad_accum_steps",
              "model.context_length"),
}  # fmt: skip

FUNCTIONS = {"min": min, "max": max, "sqrt": math.sqrt, "log": math.log, "exp": math.exp}
_ARITY = {"min": (2, 16), "max": (2, 16), "sqrt": (1, 1), "log": (1, 1), "exp": (1, 1)}
MAX_LENGTH = 500  # characters: expressions are one-liners; this also bounds the parser's recursion

HELP = ("Any numeric field also takes an arithmetic expression, e.g. --schedule.max_steps '3e13/flops' or "
        "--schedule.max_lr '3e-3*(B/32)**0.5': numbers, + - * / **, parentheses, min, max, sqrt, log, exp and "
        "the names " + "; ".join(f"{k} = {v}" for k, v in NAMES.items()) + ". Integer fields round the value; "
        "config.json records the expression and its value.")


class _Evaluator:
    """Walks a parsed expression; every node type not handled here is refused."""

    def __init__(self, names: Mapping[str, float], dry: bool = False):
        self.names = names
        self.dry = dry  # only check the structure and the names; compute nothing

    def visit(self, node: ast.AST) -> float:
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is None:
            raise ValueError(f"{_describe(node)} is not allowed")
        return method(node)

    def visit_Expression(self, node: ast.Expression) -> float:
        return self.visit(node.body)

    def visit_Constant(self, node: ast.Constant) -> float:
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise ValueError(f"the constant {node.value!r} is not a number")
        return float(node.value)

    def visit_Name(self, node: ast.Name) -> float:
        if self.dry and node.id in NAMES:
            return 1.0
        if node.id not in self.names:
            if node.id in NAMES:
                raise ValueError(f"the name {node.id!r} is not known yet for this field")
            raise ValueError(f"unknown name {node.id!r} (known: {', '.join(NAMES)})")
        return float(self.names[node.id])

    def visit_UnaryOp(self, node: ast.UnaryOp) -> float:
        value = self.visit(node.operand)
        if isinstance(node.op, ast.USub):
            return -value
        if isinstance(node.op, ast.UAdd):
            return value
        raise ValueError(f"the operator {type(node.op).__name__} is not allowed")

    def visit_BinOp(self, node: ast.BinOp) -> float:
        left, right = self.visit(node.left), self.visit(node.right)
        op = type(node.op)
        if self.dry and op in (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow):
            return 1.0
        if op is ast.Add:
            return left + right
        if op is ast.Sub:
            return left - right
        if op is ast.Mult:
            return left * right
        if op is ast.Div:
            if right == 0:
                raise ValueError("division by zero")
            return left / right
        if op is ast.Pow:
            if left == 0 and right < 0:
                raise ValueError("division by zero (0 to a negative power)")
            try:
                result = left**right  # floats: overflow raises instead of building a huge integer
            except OverflowError:
                raise ValueError(f"{left:g} ** {right:g} is too large") from None
            if isinstance(result, complex):
                raise ValueError(f"{left:g} ** {right:g} is not a real number")
            return result
        raise ValueError(f"the operator {op.__name__} is not allowed (only + - * / **)")

    def visit_Call(self, node: ast.Call) -> float:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            raise ValueError(f"calling {ast.unparse(node.func)!r} is not allowed (only {', '.join(FUNCTIONS)})")
        name = node.func.id
        if node.keywords:
            raise ValueError(f"{name}() takes no keyword arguments")
        args = [self.visit(a) for a in node.args]
        low, high = _ARITY[name]
        if not low <= len(args) <= high:
            raise ValueError(f"{name}() takes {low if low == high else f'{low} to {high}'} arguments, "
                             f"got {len(args)}")
        if self.dry:
            return 1.0
        if name in ("sqrt", "log") and (args[0] < 0 or (name == "log" and args[0] == 0)):
            raise ValueError(f"{name}({args[0]:g}) is undefined")
        try:
            return float(FUNCTIONS[name](*args))
        except OverflowError:
            raise ValueError(f"{name}({args[0]:g}) is too large") from None


def _describe(node: ast.AST) -> str:
    kinds = {"Attribute": "attribute access", "Lambda": "a lambda", "ListComp": "a comprehension",
             "SetComp": "a comprehension", "DictComp": "a comprehension", "GeneratorExp": "a comprehension",
             "Subscript": "indexing", "Compare": "a comparison", "BoolOp": "and/or", "IfExp": "if/else",
             "NamedExpr": "assignment", "Starred": "unpacking", "JoinedStr": "an f-string"}  # fmt: skip
    kind = type(node).__name__
    return kinds.get(kind, f"{kind} syntax") + (f" ({ast.unparse(node)!r})" if hasattr(ast, "unparse") else "")


def evaluate(expression: str, names: Mapping[str, float], field: str | None = None, *, dry: bool = False) -> float:
    """The value of `expression` given `names`; ValueError naming `field` and the expression on anything refused.

    evaluate("min(2**10, N/100)", {"N": 5e4}) -> 500.0
    """
    where = f"{field}: " if field else ""
    if not isinstance(expression, str):
        raise ValueError(f"{where}expected an expression string, got {expression!r}")
    try:
        if len(expression) > MAX_LENGTH:
            raise ValueError(f"longer than {MAX_LENGTH} characters")
        try:
            tree = ast.parse(expression.strip(), mode="eval")
        except SyntaxError as e:
            raise ValueError(f"not a valid expression ({e.msg})") from None
        value = _Evaluator(names, dry).visit(tree)
        if not math.isfinite(value):
            raise ValueError(f"the result {value} is not finite")
    except (ValueError, RecursionError, MemoryError) as e:
        reason = str(e) if isinstance(e, ValueError) else "too deeply nested"
        raise ValueError(f"{where}cannot evaluate {expression!r}: {reason}") from None
    return value


def check(expression: str, field: str | None = None) -> None:
    """Refuse, as `evaluate` would, an expression with a disallowed construct or an unknown name; compute nothing."""
    evaluate(expression, {}, field, dry=True)


def used_names(expression: str) -> set[str]:
    """The bare names an expression reads (functions excluded); {} if it does not parse (evaluate will say why)."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError):
        return set()
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in called}


# ---------------------------------------------------------------------------------------------------------------
# The hook into the config tree


def numeric_args(tp: Any) -> list[Any]:
    """[int] for int or int | None, [float] for float, [] for any non-numeric type: the types an expression fits."""
    import types
    import typing

    args = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    args = [a for a in args if a is not type(None)]
    return args if args and all(a in (int, float) for a in args) else []


def config_names(config: Any) -> dict[str, float]:
    """The value of every name of NAMES for a TrainConfig (accounting is imported here: it loads torch)."""
    from cs336_basics.accounting import parameter_counts, training_flops_per_token

    counts = parameter_counts(config.model)
    embed = counts["token embeddings"] + counts["LM head"]
    total = sum(counts.values())
    return {
        "N": total - embed, "N_total": total, "N_embed": embed,
        "d": config.model.d_model, "L": config.model.num_layers, "T": config.model.context_length,
        "B": config.data.batch_size * config.data.grad_accum_steps, "tokens": config.tokens_per_step,
        "flops": training_flops_per_token(config.model) * config.tokens_per_step,
        "steps": config.total_steps,
    }  # fmt: skip


def _depends_on(name: str, field: str) -> bool:
    return any(field.startswith(d) if d.endswith(".") else field == d for d in DEPENDS[name])


def _blockers(expression: str, pending: Mapping[str, str]) -> list[tuple[str, str]]:
    """(name, field) pairs: names of the expression computed from fields that are still pending."""
    return [(n, f) for n in sorted(used_names(expression)) if n in DEPENDS for f in pending if _depends_on(n, f)]


def to_field_value(value: float, tp: Any, field: str, expression: str) -> int | float:
    """The evaluated value in the field's type: integer fields round it; a negative value is refused."""
    if value < 0:
        raise ValueError(f"{field}: {expression!r} = {value:g} is negative; no numeric field takes a negative value")
    return value if float in numeric_args(tp) else round(value)


def split_expressions(overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Nested overrides without their expression strings, and those as {"section.field": expression}.

    A string given to a numeric field is an expression; it waits, as a record without a value, until
    resolve_expressions evaluates it.
    """
    from cs336_basics.training.config import flat_fields

    fields = flat_fields()
    found: dict[str, str] = {}

    def walk(node: dict[str, Any], prefix: str) -> dict[str, Any]:
        kept = {}
        for key, value in node.items():
            name = prefix + key
            if isinstance(value, dict) and any(f.startswith(name + ".") for f in fields):
                kept[key] = walk(value, name + ".")
            elif isinstance(value, str) and numeric_args(fields.get(name)):
                found[name] = value
            else:
                kept[key] = value
        return kept

    return walk(overrides, ""), found


def record_expressions(config: Any, plain: dict[str, Any], found: dict[str, str]) -> Any:
    """The config with its expression records updated after merging `plain` overrides and the `found` ones.

    A record stays only while its field holds the recorded value: a later plain number for that field drops it.
    """
    import dataclasses

    from cs336_basics.training.config import flat_fields, get_field

    records = {k: dict(v) for k, v in config.expressions.items()}
    for field in flat_fields():
        if field in records and "value" in records[field] and get_field(config, field) != records[field]["value"]:
            del records[field]
        elif field in records and "value" not in records[field] and _given(plain, field):
            del records[field]  # a pending expression overridden by a plain value
    for field, expression in found.items():
        check(expression, field)
        records[field] = {"expression": expression}
    return dataclasses.replace(config, expressions=records)


def _given(nested: dict[str, Any], dotted: str) -> bool:
    node: Any = nested
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def resolve_expressions(config: Any) -> Any:
    """A copy of the TrainConfig with every pending expression (a record without "value") evaluated and recorded.

    Fields are resolved in dependency order: a field may use a name only once none of the fields that name is
    computed from is still pending (so `model.d_ff: '4*d'` and then `schedule.max_steps: '1e12/flops'` work,
    while `schedule.max_steps: 'steps/2'` is a cycle and refused).
    """
    from cs336_basics.training.config import flat_fields, merge, nest

    records = {k: dict(v) for k, v in config.expressions.items()}
    pending = {field: r["expression"] for field, r in records.items() if "value" not in r}
    if not pending:
        return config
    fields = flat_fields()
    while pending:
        ready = {f: e for f, e in pending.items() if not _blockers(e, pending)}
        if not ready:
            field, expression = next(iter(pending.items()))
            name, other = _blockers(expression, pending)[0]
            raise ValueError(f"{field}: {expression!r} uses {name}, which depends on {other}, itself an "
                             f"expression still to be resolved (a cycle)")
        names = config_names(config)
        values = {}
        for field, expression in ready.items():
            value = to_field_value(evaluate(expression, names, field), fields[field], field, expression)
            values[field] = value
            records[field] = {"expression": expression, "value": value}
            del pending[field]
        try:
            config = merge(config, {**nest(values), "expressions": records})
        except ValueError as e:  # e.g. the model's own checks on a resolved width
            resolved = ", ".join(f"{f} = {records[f]['expression']!r} = {v!r}" for f, v in values.items())
            raise ValueError(f"{e} (from {resolved})") from None
    _check_sections(config, records)
    return config


def _check_sections(config: Any, records: dict[str, Any]) -> None:
    """Run every section's own checks (ModelConfig.__post_init__, ...) on the final values: while an expression was
    pending, a section could hold an inconsistent mix of old and new values without being checked."""
    import dataclasses

    def check_tree(obj: Any) -> None:
        for f in dataclasses.fields(obj):
            if dataclasses.is_dataclass(value := getattr(obj, f.name)):
                check_tree(value)
        dataclasses.replace(obj)  # runs __post_init__

    for f in dataclasses.fields(config):
        section = getattr(config, f.name)
        if dataclasses.is_dataclass(section):
            try:
                check_tree(section)
            except ValueError as e:
                used = ", ".join(f"{k} = {r['expression']!r} = {r['value']!r}" for k, r in records.items()
                                 if k.startswith(f.name + "."))
                raise ValueError(f"{e}" + (f" (from {used})" if used else "")) from None


def explain_error(config: Any, error: ValueError) -> ValueError:
    """`error` of a config check, with the expression behind the field it names added (when there is one)."""
    message = str(error)
    for field, record in config.expressions.items():
        if message.startswith(field) and "value" in record:
            return ValueError(f"{message} (from the expression {record['expression']!r})")
    return error
