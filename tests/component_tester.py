"""`ComponentTesterMixin`: the checks every component family shares, as transformers' `ModelTesterMixin` does.

A family's test file declares one small subclass per component (its tiny model, inputs and tolerances) and keeps
only what is special to the family. The common checks:

- save / load round trip: `save_pretrained` writes safetensors, the model's source and `auto_map`; the Auto class
  loads it back as our class with the same outputs;
- Auto registration: `AutoConfig` and every registered Auto class resolve the `model_type` to our classes;
- remote code: the saved folder loads with `trust_remote_code=True` in a process where `hf_slm` cannot be imported,
  and gives the same outputs (one subprocess for every tester a pytest session selected: see `remote_code_report`);
- batch vs single: each item of a padded batch gives the output it gives alone;
- dtype: the model runs in bfloat16 with finite outputs close to float32;
- device: cpu, and cuda where there is one;
- `torch.export` and `torch.compile(fullgraph=True)` give the eager outputs. A component whose operations still stop
  the tracer names the blocking op in `export_blocked` / `fullgraph_blocked`: the check must then fail, and the day
  it passes the reason must go (a strict xfail).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
import transformers

from hf_slm.models.registration import REGISTERED
from tiny_components import COMPONENTS

# A process that cannot import hf_slm: any attempt raises.
BLOCK_HF_SLM = """
import sys, importlib.abc
class _BlockHfSlm(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "hf_slm" or name.startswith("hf_slm."):
            raise ImportError("hf_slm is blocked in this process")
sys.meta_path.insert(0, _BlockHfSlm())
"""

# Loads every saved folder with trust_remote_code, runs each recorded call and saves the results as plain data.
REMOTE_CHILD = BLOCK_HF_SLM + """
import json, torch, transformers

def plain(value):
    if isinstance(value, transformers.Cache):  # a KV cache: its tensors are in the logits already
        return None
    if isinstance(value, dict) or hasattr(value, "keys"):  # ModelOutput, BatchFeature
        return {k: plain(value[k]) for k in value.keys()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    return value

report = {}
for name, job in json.load(open(sys.argv[1])).items():
    model = getattr(transformers, job["auto"]).from_pretrained(job["folder"], trust_remote_code=True).eval()
    calls = torch.load(job["calls"], weights_only=False)
    with torch.no_grad():
        results = {key: plain(getattr(model, method)(**kwargs)) for key, (method, kwargs) in calls.items()}
    modules = {"model": type(model).__module__}
    if job["processor_auto"]:
        processor = getattr(transformers, job["processor_auto"]).from_pretrained(job["folder"], trust_remote_code=True)
        results["processor"] = plain(processor(**torch.load(job["processor_inputs"], weights_only=False)))
        modules["processor"] = type(processor).__module__
    torch.save(results, job["out"])
    report[name] = modules
imported = [m for m in sys.modules if m == "hf_slm" or m.startswith("hf_slm.")]
print(json.dumps({"modules": report, "hf_slm_imported": imported}))
"""


def plain(value):
    """ModelOutput / BatchFeature -> dict, recursively (what the remote child saves, comparable in this process)."""
    if isinstance(value, transformers.Cache):  # a KV cache: its tensors are in the logits already
        return None
    if isinstance(value, dict) or hasattr(value, "keys"):
        return {k: plain(value[k]) for k in value.keys()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    return value


def assert_same(got, expected, rtol=1e-4, atol=1e-5, path="output"):
    """Integer tensors exactly, float tensors to a tolerance, through dicts and sequences."""
    if isinstance(expected, dict):
        assert set(got) == set(expected), path
        for key in expected:
            assert_same(got[key], expected[key], rtol, atol, f"{path}.{key}")
    elif isinstance(expected, (list, tuple)):
        assert len(got) == len(expected), path
        for i, (g, e) in enumerate(zip(got, expected)):
            assert_same(g, e, rtol, atol, f"{path}[{i}]")
    elif torch.is_tensor(expected):
        assert torch.is_tensor(got) and got.shape == expected.shape and got.dtype == expected.dtype, path
        if expected.is_floating_point():
            torch.testing.assert_close(got, expected, rtol=rtol, atol=atol, msg=path)
        else:
            assert torch.equal(got, expected), path
    else:
        assert got == expected, path


def tensors_of(output) -> list[torch.Tensor]:
    values = output.to_tuple() if isinstance(output, transformers.utils.ModelOutput) else output
    values = values if isinstance(values, (tuple, list)) else (values,)
    return [v for v in values if torch.is_tensor(v)]


def run_remote_children(testers: list["ComponentTesterMixin"], root: Path) -> dict:
    """Save each tester's component and load them all in ONE fresh process without hf_slm (interpreter start-up
    and the transformers import dominate on 2 cores)."""
    jobs, expected = {}, {}
    for tester in testers:
        name = type(tester).__name__
        folder = root / name
        model = tester.get_model()
        model.save_pretrained(folder)
        calls = tester.remote_calls(model)
        torch.save(calls, root / f"{name}_calls.pt")
        with torch.no_grad():
            expected[name] = {key: plain(getattr(model, method)(**kwargs)) for key, (method, kwargs) in calls.items()}
        job = {"auto": tester.auto_class, "folder": str(folder), "calls": str(root / f"{name}_calls.pt"),
               "out": str(root / f"{name}_out.pt"), "processor_auto": None}  # fmt: skip
        processor = tester.get_processor()
        if processor is not None:
            processor.save_pretrained(folder)
            inputs = tester.processor_inputs()
            job |= {"processor_auto": tester.processor_auto_class,
                    "processor_inputs": str(root / f"{name}_processor_inputs.pt")}  # fmt: skip
            torch.save(inputs, job["processor_inputs"])
            expected[name]["processor"] = plain(processor(**inputs))
        jobs[name] = job
    (root / "jobs.json").write_text(json.dumps(jobs))
    env = {**os.environ, "HF_MODULES_CACHE": str(root / "modules"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(REMOTE_CHILD), str(root / "jobs.json")],
                          capture_output=True, text=True, env=env, cwd=root, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["hf_slm_imported"] == [], info["hf_slm_imported"]
    return {
        name: {"modules": info["modules"][name], "expected": expected[name],
               "got": torch.load(root / f"{name}_out.pt", weights_only=False)}  # fmt: skip
        for name in jobs
    }


class ComponentTesterMixin:
    """Common checks of one component. A subclass sets `component` (its row in `tiny_components.COMPONENTS`, which
    gives the tiny model, the Auto class recorded in `auto_map` and the example inputs) and `model_class`, and
    overrides what differs: `get_batch_and_items` for the batch check, `compared_outputs`, tolerances."""

    component: str  # key of tiny_components.COMPONENTS
    model_class: type
    #: output fields compared between runs (save/load, batch vs single, dtype, device)
    compared_outputs: tuple[str, ...] = ("units", "codes", "logits", "waveform")
    #: tolerance of a padded batch item against the item alone (0: bit-exact)
    batch_atol: float = 1e-5
    #: outputs a padded batch is known to change, with the reason: the check then expects them to differ (a strict
    #: xfail), and fails the day they match
    batch_differs: dict[str, str] = {}
    #: bfloat16 vs float32: float outputs within `bf16_rtol` relative L2 error, integer outputs agreeing on at least
    #: `bf16_min_agreement` of their entries
    bf16_rtol: float = 0.05
    bf16_min_agreement: float = 0.9
    #: the op that stops torch.export / fullgraph compile, or None when the component traces
    export_blocked: str | None = None
    fullgraph_blocked: str | None = None
    #: Auto class and inputs of the processor or feature extractor saved next to the model, if any
    processor_auto_class: str | None = None
    _built: dict[type, Any] = {}

    # ---------------------------------------------------------------------------------------------- declarations
    @property
    def auto_class(self) -> str:
        return COMPONENTS[self.component][1]

    def get_model(self):
        """A fresh copy of the component, built once per tester class (fitting k-means costs seconds on 2 cores)."""
        cache = ComponentTesterMixin._built
        if type(self) not in cache:
            cache[type(self)] = COMPONENTS[self.component][0]().eval()
        return copy.deepcopy(cache[type(self)])

    def get_inputs(self) -> dict:
        return COMPONENTS[self.component][2]()

    def get_batch_and_items(self) -> tuple[dict, list[dict]]:
        """A padded batch and each item alone: the default crops nothing, subclasses return real padding."""
        raise NotImplementedError

    def export_inputs(self) -> dict:
        return self.get_inputs()

    def remote_calls(self, model) -> dict[str, tuple[str, dict]]:
        """Calls run on the remote-code model: name -> (method, kwargs). Default: the forward on `get_inputs`."""
        return {"forward": ("__call__", self.get_inputs())}

    def get_processor(self):
        return None

    def processor_inputs(self) -> dict:
        raise NotImplementedError

    # ---------------------------------------------------------------------------------------------- helpers
    def outputs(self, model, inputs) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            out = model(**inputs)
        got = {name: getattr(out, name) for name in self.compared_outputs if getattr(out, name, None) is not None}
        assert got, f"{type(out).__name__} has none of {self.compared_outputs}"
        return got

    @staticmethod
    def _to(inputs: dict, device=None, dtype=None) -> dict:
        moved = {}
        for key, value in inputs.items():
            if torch.is_tensor(value):
                value = value.to(device) if device is not None else value
                if dtype is not None and value.is_floating_point():
                    value = value.to(dtype)
            moved[key] = value
        return moved

    # ---------------------------------------------------------------------------------------------- checks
    def test_save_load_round_trip(self, tmp_path):
        model = self.get_model()
        model.save_pretrained(tmp_path)
        config = json.loads((tmp_path / "config.json").read_text())
        assert config["model_type"] == model.config.model_type
        assert self.auto_class in config["auto_map"], f"register_for_auto_class must record {self.auto_class}"
        assert (tmp_path / "model.safetensors").exists() and not list(tmp_path.glob("*.bin"))
        assert list(tmp_path.glob("modeling_*.py")), "the model's source must travel with it"
        assert type(transformers.AutoConfig.from_pretrained(tmp_path)) is type(model.config)
        loaded = getattr(transformers, self.auto_class).from_pretrained(tmp_path).eval()
        assert type(loaded) is self.model_class
        inputs = self.get_inputs()
        assert_same(self.outputs(loaded, inputs), self.outputs(model, inputs), rtol=0, atol=0)

    def test_auto_classes_resolve_to_the_family(self):
        model = self.get_model()
        model_type = model.config.model_type
        assert model_type.startswith("hf_slm_") and REGISTERED[model_type]["model"] is self.model_class
        assert transformers.CONFIG_MAPPING[model_type] is type(model.config)
        assert type(transformers.AutoConfig.for_model(model_type)) is type(model.config)
        for auto in REGISTERED[model_type]["auto_classes"]:
            assert type(getattr(transformers, auto).from_config(model.config)) is self.model_class, auto

    def test_remote_code_without_hf_slm(self, remote_code_report):
        report = remote_code_report[type(self).__name__]
        assert all(m.startswith("transformers_modules") for m in report["modules"].values()), report["modules"]
        assert_same(report["got"], report["expected"])

    def test_padded_batch_matches_each_item_alone(self):
        model = self.get_model()
        batch, items = self.get_batch_and_items()
        assert len(items) > 1
        batched, differing = self.outputs(model, batch), set()
        for i, item in enumerate(items):
            for name, value in self.outputs(model, item).items():
                crop = batched[name][i][tuple(slice(0, n) for n in value.shape[1:])]
                if name in self.batch_differs:
                    same = crop.shape == value[0].shape and torch.allclose(crop, value[0], rtol=1e-4, atol=1e-5)
                    differing |= set() if same else {name}
                elif value.is_floating_point():
                    torch.testing.assert_close(crop, value[0], rtol=0 if self.batch_atol == 0 else 1e-4,
                                               atol=self.batch_atol, msg=f"{name} of item {i}")  # fmt: skip
                else:
                    assert torch.equal(crop, value[0]), f"{name} of item {i}"
        if self.batch_differs:
            assert differing, f"padded batches now match for {sorted(self.batch_differs)}: remove batch_differs"
            pytest.xfail("; ".join(f"{name}: {self.batch_differs[name]}" for name in sorted(differing)))

    def test_bfloat16_is_finite_and_close_to_float32(self):
        model, inputs = self.get_model(), self.get_inputs()
        reference = self.outputs(model, inputs)
        half = self.outputs(model.to(torch.bfloat16), self._to(inputs, dtype=torch.bfloat16))
        for name, expected in reference.items():
            got = half[name]
            assert got.shape == expected.shape, name
            if expected.is_floating_point():
                got = got.float()  # k-means features and Griffin-Lim stay in float32 by design
                assert torch.isfinite(got).all(), name
                error = (got - expected).norm() / expected.norm().clamp_min(1e-12)
                assert error < self.bf16_rtol, f"{name}: relative error {error:.3g} in bfloat16"
            else:
                agreement = (got == expected).float().mean()
                assert agreement >= self.bf16_min_agreement, f"{name}: {agreement:.0%} equal in bfloat16"

    @pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
        not torch.cuda.is_available(), reason="no CUDA device"))])  # fmt: skip
    def test_runs_on_device(self, device):
        model, inputs = self.get_model(), self.get_inputs()
        reference = self.outputs(model, inputs)
        got = self.outputs(model.to(device), self._to(inputs, device=device))
        for name, value in got.items():
            assert value.device.type == device, name
        assert_same({k: v.cpu() for k, v in got.items()}, reference, rtol=1e-3, atol=1e-4)

    def _expect_traceable(self, blocked: str | None, check: Callable[[], Any]):
        if blocked is None:
            return check()
        try:
            check()
        except Exception:
            pytest.xfail(blocked)
        pytest.fail(f"traces now: remove the reason it was blocked ({blocked})")

    def test_torch_export_matches_eager(self):
        model, kwargs = self.get_model(), self.export_inputs()

        def check():
            with torch.no_grad():
                eager = model(**kwargs)
                exported = torch.export.export(model, (), kwargs)
                assert_same(tensors_of(exported.module()(**kwargs)), tensors_of(eager), rtol=1e-5, atol=1e-5)

        self._expect_traceable(self.export_blocked, check)

    def test_fullgraph_compile_matches_eager(self):
        """The `eager` backend: graph breaks are found by Dynamo before any backend runs, so inductor's compile time
        (minutes on 2 CPU cores) would add nothing to what is tested."""
        model, kwargs = self.get_model(), self.export_inputs()
        torch._dynamo.reset()

        def check():
            with torch.no_grad():
                compiled = torch.compile(model, fullgraph=True, backend="eager")(**kwargs)
                assert_same(tensors_of(compiled), tensors_of(model(**kwargs)), rtol=1e-5, atol=1e-5)

        self._expect_traceable(self.fullgraph_blocked, check)
