"""Every flow module documents exactly its parameters (what a deployment's parameter form shows) and runs locally
through the flow itself: no second option system beside `human3r`, the deployments and the typed options."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

FLOWS = sorted(p.stem for p in (Path(__file__).parents[2] / "flows").glob("*.py") if p.stem != "__init__")


def _flows_of(module):
    from prefect import Flow

    return [obj for obj in vars(module).values() if isinstance(obj, Flow) and obj.fn.__module__ == module.__name__]


@pytest.mark.parametrize("name", FLOWS)
def test_every_parameter_is_described_and_no_other(name):
    from prefect.utilities.callables import parameter_schema

    module = importlib.import_module(f"flows.{name}")
    (flow,) = _flows_of(module)
    schema = parameter_schema(flow.fn)
    undescribed = [p for p, spec in schema.properties.items() if not spec.get("description")]
    assert not undescribed, f"{name}: parameters missing from the docstring's Args: {undescribed}"
    args_block = flow.fn.__doc__.split("Args:", 1)[1]
    documented = re.findall(r"^ {8}(\w+):", args_block, flags=re.M)
    assert documented == list(schema.properties), f"{name}: Args {documented} vs parameters {list(schema.properties)}"


@pytest.mark.parametrize("name", FLOWS)
def test_the_module_runs_its_flow_locally_with_the_flows_own_defaults(name):
    module = importlib.import_module(f"flows.{name}")
    (flow,) = _flows_of(module)
    tree = ast.parse(Path(module.__file__).read_text())
    main = tree.body[-1]
    assert isinstance(main, ast.If) and ast.unparse(main.test) == "__name__ == '__main__'"
    assert [ast.unparse(s) for s in main.body] == [f"{flow.fn.__name__}()"]  # no argparse, no sys.argv
