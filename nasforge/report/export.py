"""Export a found ``ChainNet`` as a folder that is usable without nasforge.

The folder holds a verbatim copy of ``nasforge/spaces/chain_net.py`` (which imports only torch),
the spec and weights it loads, an ONNX file for non-torch runtimes, metadata and a short README.
Every export is checked before it is handed back: a model that reloads differently, or an ONNX
file that computes something else, is worse than no export at all.
"""

from __future__ import annotations

import copy
import datetime
import importlib.util
import inspect
import json
import logging
import shutil
import uuid
import warnings
from pathlib import Path
from types import ModuleType
from typing import Dict, Optional, Union

import torch

from ..spaces import chain_net
from ..spaces.chain_net import ChainNet

logger = logging.getLogger(__name__)

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
#: The TorchScript exporter is asked for opset 17; the dynamo exporter's own lowest is 18.
TORCHSCRIPT_OPSET = 17
DYNAMO_OPSET = 18
#: Largest allowed difference, relative to max(1, largest reference logit).
TORCH_TOLERANCE = 1e-5
ONNX_TOLERANCE = 1e-4

FILES = {
    "model_py": "model.py",
    "spec": "spec.json",
    "weights": "weights.pt",
    "metadata": "metadata.json",
    "onnx": "model.onnx",
    "readme": "README.md",
}


def export_model(
    model: ChainNet,
    out_dir: Union[str, Path],
    example_input: torch.Tensor,
    metadata: Optional[Dict] = None,
    *,
    overwrite: bool = False,
) -> Dict[str, Path]:
    """Write ``model`` to ``out_dir`` as a standalone folder and check that it reproduces the model.

    ``example_input`` is a batch shaped ``(batch, in_channels, *input_size)``; it drives the ONNX
    trace and the checks. The model is exported in eval mode; the caller's model is not changed
    (a CPU copy is exported). ``metadata`` must be JSON-serialisable; the export's own fields
    (input shape, class count, versions, date) take precedence over keys of the same name.

    An existing non-empty ``out_dir`` is refused unless ``overwrite=True``, in which case the
    export's files are replaced and any other files there are left alone.

    Returns the written paths, keyed ``model_py``, ``spec``, ``weights``, ``metadata``, ``onnx``
    and ``readme``. Raises RuntimeError when the reloaded copy or the ONNX file (checked only
    where onnxruntime is importable) disagrees with the model; the files are left for inspection.
    """
    spec = getattr(model, "spec", None)
    if not isinstance(model, torch.nn.Module) or not isinstance(spec, dict):
        raise TypeError(f"export_model needs a ChainNet, got {type(model).__name__}")
    _check_example(spec, example_input)
    user_meta = dict(metadata or {})
    try:
        json.dumps(user_meta)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"metadata must be JSON-serialisable: {exc}") from exc

    out = Path(out_dir)
    if out.exists():
        if not out.is_dir():
            raise ValueError(f"export target {out} exists and is not a directory")
        if any(out.iterdir()) and not overwrite:
            raise ValueError(f"export target {out} is not empty; pass overwrite=True to replace the export there")
    out.mkdir(parents=True, exist_ok=True)
    paths = {key: out / name for key, name in FILES.items()}

    # A CPU copy in eval mode: the export must not move the caller's model or flip its mode.
    net = copy.deepcopy(model).cpu().eval()
    x = example_input.detach().cpu()
    with torch.no_grad():
        reference = net(x)

    shutil.copyfile(_chain_net_source(), paths["model_py"])
    paths["spec"].write_text(json.dumps(net.spec, indent=2) + "\n")
    torch.save(net.state_dict(), paths["weights"])

    ort = _onnxruntime()
    exporter, opset = _write_onnx(net, x, paths["onnx"], ort)

    meta = dict(user_meta)
    meta.update(
        {
            "input_shape": [int(spec["in_channels"]), *(int(s) for s in spec["input_size"])],
            "num_classes": int(spec["num_classes"]),
            "torch_version": torch.__version__,
            "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "onnx_exporter": exporter,
            "onnx_opset": opset,
            "onnx_input": INPUT_NAME,
            "onnx_output": OUTPUT_NAME,
            "onnx_checked": ort is not None,
        }
    )
    paths["metadata"].write_text(json.dumps(meta, indent=2) + "\n")
    paths["readme"].write_text(_readme(spec))

    _check_reload(out, x, reference)
    return paths


def _check_example(spec: Dict, example: torch.Tensor) -> None:
    """Refuse an example the network cannot take, before anything is written."""
    if not isinstance(example, torch.Tensor) or not example.is_floating_point():
        raise ValueError("example_input must be a floating-point torch.Tensor")
    want = (int(spec["in_channels"]), *(int(s) for s in spec["input_size"]))
    if example.dim() != len(want) + 1 or tuple(example.shape[1:]) != want or example.shape[0] < 1:
        raise ValueError(f"example_input has shape {tuple(example.shape)}, expected (batch, {', '.join(map(str, want))})")


def _chain_net_source() -> Path:
    return Path(inspect.getsourcefile(chain_net) or chain_net.__file__)


def _onnxruntime() -> Optional[ModuleType]:
    """onnxruntime if installed: it is only a test dependency, so its check is optional."""
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime


def _export_onnx(net: torch.nn.Module, x: torch.Tensor, path: Path, dynamo: bool) -> int:
    """Export with a dynamic batch dimension; return the opset asked for."""
    if dynamo:
        batch = torch.export.Dim("batch", min=1)
        with warnings.catch_warnings():
            # torch-internal notice raised inside torch.export; nothing a caller can act on.
            warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
            torch.onnx.export(
                net,
                (x,),
                str(path),
                dynamo=True,
                opset_version=DYNAMO_OPSET,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: batch},),
                external_data=False,  # one self-contained file, whatever the model's size
                verbose=False,
            )
        return DYNAMO_OPSET
    with warnings.catch_warnings():
        # The trace turns spatial sizes into constants (the padding in chain_net reads shapes);
        # that is intended, since only the batch dimension varies. The exporter's own
        # deprecation notice is known: the dynamo exporter is the fallback.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="You are using the legacy TorchScript-based ONNX export")
        warnings.filterwarnings("ignore", message="The feature will be removed")
        torch.onnx.export(
            net,
            (x,),
            str(path),
            dynamo=False,
            opset_version=TORCHSCRIPT_OPSET,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )
    return TORCHSCRIPT_OPSET


def _write_onnx(net: torch.nn.Module, x: torch.Tensor, path: Path, ort: Optional[ModuleType]):
    """Write ``model.onnx`` with the first exporter whose file checks out; return (name, opset).

    The TorchScript exporter goes first: it is fast (a fraction of a second against seconds) and
    exact for these ops. It is deprecated, so where it is gone or fails, the dynamo exporter runs.
    """
    errors = []
    for name, dynamo in (("torchscript", False), ("dynamo", True)):
        try:
            opset = _export_onnx(net, x, path, dynamo)
            if ort is not None:
                _check_onnx(ort, path, net, x)
        except Exception as exc:  # noqa: BLE001  (any failure: try the other exporter)
            errors.append(f"{name} exporter: {type(exc).__name__}: {exc}")
            logger.info("ONNX export with the %s exporter failed: %s", name, exc)
            continue
        return name, opset
    raise RuntimeError("ONNX export failed with every exporter:\n" + "\n".join(errors))


def _other_batch(x: torch.Tensor) -> torch.Tensor:
    """A batch of another size than the example's, to show the batch dimension is really dynamic."""
    gen = torch.Generator().manual_seed(0)
    return torch.randn((x.shape[0] + 2, *x.shape[1:]), generator=gen, dtype=x.dtype)


def _check_onnx(ort: ModuleType, path: Path, net: torch.nn.Module, x: torch.Tensor) -> None:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    for batch in (x, _other_batch(x)):
        with torch.no_grad():
            want = net(batch)
        got = torch.from_numpy(session.run(None, {input_name: batch.numpy()})[0])
        _compare(want, got, ONNX_TOLERANCE, f"ONNX output (batch of {batch.shape[0]})")


def _check_reload(out: Path, x: torch.Tensor, reference: torch.Tensor) -> None:
    """Load the export through its own ``model.py``, in a module nasforge never saw."""
    name = f"_nasforge_export_check_{uuid.uuid4().hex}"
    module_spec = importlib.util.spec_from_file_location(name, out / FILES["model_py"])
    if module_spec is None or module_spec.loader is None:
        raise RuntimeError(f"export check failed: cannot import {out / FILES['model_py']}")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    reloaded = module.load(str(out))
    with torch.no_grad():
        got = reloaded(x)
    _compare(reference, got, TORCH_TOLERANCE, "reloaded torch model output")


def _compare(want: torch.Tensor, got: torch.Tensor, tolerance: float, what: str) -> None:
    if tuple(want.shape) != tuple(got.shape):
        raise RuntimeError(f"export check failed: {what} has shape {tuple(got.shape)}, expected {tuple(want.shape)}")
    error = float((want.double() - got.double()).abs().max()) if want.numel() else 0.0
    bound = tolerance * max(1.0, float(want.abs().max()) if want.numel() else 0.0)
    if not error <= bound:  # also catches NaN
        raise RuntimeError(f"export check failed: {what} differs from the model by {error:.3g} (allowed {bound:.3g})")


def _readme(spec: Dict) -> str:
    shape = ", ".join(str(int(s)) for s in [spec["in_channels"], *spec["input_size"]])
    return (
        "# Exported nasforge model\n"
        "\n"
        "Files: `model.py` (the network code, needs only torch), `spec.json` (architecture), `weights.pt`, "
        "`model.onnx`, `metadata.json`.\n"
        f"Input: float32 tensor of shape (batch, {shape}); output: logits of shape (batch, {int(spec['num_classes'])}).\n"
        "\n"
        "Plain torch, from this folder (`load` returns the network in eval mode):\n"
        "`import model; m = model.load('.'); logits = m(x)`\n"
        "\n"
        "ONNX Runtime, any batch size:\n"
        f"`import onnxruntime as ort; s = ort.InferenceSession('model.onnx'); logits = s.run(None, {{'{INPUT_NAME}': x.numpy()}})[0]`\n"
    )
