"""Export a found network as a folder usable without nasforge: any network of the protocol in
:mod:`nasforge.spaces.networks` (a ``.spec`` whose kind has a registered torch-only module).

The folder holds a verbatim copy of the network's module as ``model.py`` (``nasforge/spaces/chain_net.py``,
or another kind's, such as ``cell_net.py``, with ``chain_net.py`` beside it: they import only torch),
the spec and weights it loads, the training data's preprocessing, an ONNX file for non-torch
runtimes, metadata and a short README.

Given the data's preprocessing record (:attr:`nasforge.data.Dataset.preprocessing`), both the
torch model and the ONNX graph start with it (:class:`~nasforge.spaces.chain_net.RawInput`): they
take the raw arrays of the user's data file, as they are, and not inputs standardised by hand,
which an export without its statistics silently got wrong (issue 13). Every export is checked
before it is handed back: a model that reloads differently, or an ONNX file that computes
something else, is worse than no export at all.
"""

from __future__ import annotations

import copy
import datetime
import importlib.util
import json
import logging
import shutil
import uuid
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Dict, Optional, Union

import numpy as np
import torch

from ..data.datasets import EXPORT_DTYPES
from ..spaces.chain_net import RawInput, check_preprocessing
from ..spaces.networks import NetworkProtocolError, export_sources, unsavable

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
    "preprocessing": "preprocessing.json",
    "metadata": "metadata.json",
    "onnx": "model.onnx",
    "readme": "README.md",
}


def export_model(
    model: torch.nn.Module,
    out_dir: Union[str, Path],
    example_input: Optional[torch.Tensor] = None,
    metadata: Optional[Dict] = None,
    *,
    preprocessing: Optional[Dict[str, Any]] = None,
    overwrite: bool = False,
) -> Dict[str, Path]:
    """Write ``model`` to ``out_dir`` as a standalone folder and check that it reproduces the model.

    ``preprocessing`` is the record of the data the model was trained on. With it, the exported
    torch module and ONNX graph take raw inputs shaped ``(batch, *raw_shape)`` (the arrays of the
    data file) and replay the preprocessing inside; the ONNX input has the raw dtype when it is
    one of :data:`~nasforge.data.datasets.EXPORT_DTYPES`, float64 otherwise. Without it, they take
    the network's own input ``(batch, in_channels, *input_size)``, float32.

    ``example_input`` is a batch of such inputs; it drives the ONNX trace and the checks
    (default: random raw-like inputs made from the preprocessing; without preprocessing it is
    required). The model is exported in eval mode; the caller's model is not changed (a CPU copy
    is exported, so a CUDA model exports too). ``metadata`` must be JSON-serialisable; the export's
    own fields (input shape and dtype, preprocessing, class count, versions, date) take precedence
    over keys of the same name.

    An existing non-empty ``out_dir`` is refused unless ``overwrite=True``, in which case the
    export's files are replaced and any other files there are left alone.

    Returns the written paths, keyed ``model_py``, ``spec``, ``weights``, ``preprocessing``,
    ``metadata``, ``onnx`` and ``readme``. Raises RuntimeError when the reloaded copy or the ONNX
    file (checked only where onnxruntime is importable) disagrees with the model; the files are
    left for inspection.
    """
    spec = _network_spec(model)
    prep = _checked_preprocessing(spec, preprocessing)
    input_dtype = export_dtype(prep) if prep is not None else None
    example_input = _example(spec, example_input, prep, input_dtype)
    user_meta = _checked_metadata(metadata)
    out = _export_dir(out_dir, overwrite)
    paths = {key: out / name for key, name in FILES.items()}

    # A CPU copy in eval mode: the export must not move the caller's model or flip its mode.
    net = copy.deepcopy(model).cpu().eval()
    exported = RawInput(net, prep).eval() if prep is not None else net
    x = example_input.detach().cpu()
    with torch.no_grad():
        reference = exported(x)

    _write_torch_files(net, prep, out, paths)
    ort = _onnxruntime()
    other = (lambda n: raw_example(prep, n, seed=1)) if prep is not None else None
    exporter, opset = _write_onnx(exported, x, paths["onnx"], ort, other)
    onnx = {"onnx_exporter": exporter, "onnx_opset": opset, "onnx_input": INPUT_NAME, "onnx_output": OUTPUT_NAME,
            "onnx_checked": ort is not None}
    paths["metadata"].write_text(json.dumps(_metadata(user_meta, spec, prep, input_dtype, onnx), indent=2) + "\n")
    paths["readme"].write_text(_readme(spec, prep, input_dtype))

    _check_reload(out, x, reference)
    return paths


def _network_spec(model: torch.nn.Module) -> Dict:
    why = unsavable(model)
    if why:  # before anything is written
        raise NetworkProtocolError(f"cannot export the network: {why}")
    return model.spec


def _example(spec: Dict, example_input: Optional[torch.Tensor], prep: Optional[Dict[str, Any]],
             input_dtype: Optional[str]) -> torch.Tensor:
    """The caller's example once checked, or random raw-like inputs made from the preprocessing."""
    if example_input is None:
        if prep is None:
            raise ValueError("example_input is required when there is no preprocessing to make one from")
        example_input = raw_example(prep, 3, seed=0)
    _check_example(spec, example_input, prep, input_dtype)
    return example_input


def _checked_metadata(metadata: Optional[Dict]) -> Dict:
    user_meta = dict(metadata or {})
    try:
        json.dumps(user_meta)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"metadata must be JSON-serialisable: {exc}") from exc
    return user_meta


def _export_dir(out_dir: Union[str, Path], overwrite: bool) -> Path:
    """The export folder, made; one holding anything is refused unless ``overwrite``."""
    out = Path(out_dir)
    if out.exists():
        if not out.is_dir():
            raise ValueError(f"export target {out} exists and is not a directory")
        if any(out.iterdir()) and not overwrite:
            raise ValueError(f"export target {out} is not empty; pass overwrite=True to replace the export there")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _write_torch_files(net: torch.nn.Module, prep: Optional[Dict[str, Any]], out: Path,
                       paths: Dict[str, Path]) -> None:
    """The network's code, its spec and weights, and the preprocessing its input replays."""
    _copy_network_code(net.spec, out)
    paths["spec"].write_text(json.dumps(net.spec, indent=2) + "\n")
    torch.save(net.state_dict(), paths["weights"])
    # always written: ``null`` says "no preprocessing", and an overwrite must not leave an old one
    paths["preprocessing"].write_text(json.dumps(prep, indent=2) + "\n")


def _metadata(user_meta: Dict, spec: Dict, prep: Optional[Dict[str, Any]], input_dtype: Optional[str],
              onnx: Dict[str, Any]) -> Dict[str, Any]:
    """The caller's metadata, overridden by the export's own fields (inputs, classes, versions, ONNX)."""
    network_shape = [int(spec["in_channels"]), *(int(s) for s in spec["input_size"])]
    meta = dict(user_meta)
    meta.update(
        {
            "input_shape": list(prep["raw_shape"]) if prep is not None else network_shape,
            "input_dtype": input_dtype or "float32",
            "network_input_shape": network_shape,
            "preprocessing": prep,
            "num_classes": int(spec["num_classes"]),
            "torch_version": torch.__version__,
            "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            **onnx,
        }
    )
    return meta


def export_dtype(prep: Dict[str, Any]) -> str:
    """The dtype the exported ONNX graph takes: the raw one, or float64 (exact for the others)."""
    raw = str(prep.get("raw_dtype", "float64"))
    return raw if raw in EXPORT_DTYPES else "float64"


def raw_example(prep: Dict[str, Any], batch: int, seed: int = 0) -> torch.Tensor:
    """Random inputs that look like the raw data (its scale, shape and dtype), for traces and checks:
    standard normal network inputs taken back through the preprocessing."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((batch, *prep["input_shape"]))
    stats = prep.get("standardise")
    if stats:
        def per_channel(v):
            return np.asarray(v, dtype=np.float64).reshape(-1, *([1] * (z.ndim - 2))) if isinstance(v, list) else v
        z = z * per_channel(stats["std"]) + per_channel(stats["mean"])
    if prep.get("divide") is not None:
        z = z * prep["divide"]
    dtype = np.dtype(export_dtype(prep))
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        z = np.clip(np.round(z), info.min, info.max)
    return torch.from_numpy(np.ascontiguousarray(z.reshape(batch, *prep["raw_shape"]).astype(dtype)))


def _checked_preprocessing(spec: Dict, preprocessing: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """A JSON copy of the record once it fits the network, refused (ValueError) before anything is written."""
    if preprocessing is None:
        return None
    try:
        prep = json.loads(json.dumps(preprocessing))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"preprocessing must be JSON-serialisable: {exc}") from exc
    if not isinstance(prep, dict):
        raise ValueError(f"preprocessing must be a record (dict), got {type(preprocessing).__name__}")
    check_preprocessing(prep)
    want = [int(spec["in_channels"]), *(int(s) for s in spec["input_size"])]
    if list(prep["input_shape"]) != want:
        raise ValueError(f"preprocessing makes inputs of shape {prep['input_shape']} but the network takes {want}: "
                         "is it the record of another dataset?")
    return prep


def _check_example(spec: Dict, example: torch.Tensor, prep: Optional[Dict[str, Any]], dtype: Optional[str]) -> None:
    """Refuse an example the exported model cannot take, before anything is written."""
    if not isinstance(example, torch.Tensor):
        raise ValueError("example_input must be a torch.Tensor")
    if prep is None:
        if not example.is_floating_point():
            raise ValueError("example_input must be a floating-point torch.Tensor")
        want = (int(spec["in_channels"]), *(int(s) for s in spec["input_size"]))
    else:
        if str(example.dtype).replace("torch.", "") != dtype:
            raise ValueError(f"example_input has dtype {example.dtype}, but the export takes raw inputs of {dtype}")
        want = tuple(prep["raw_shape"])
    if example.dim() != len(want) + 1 or tuple(example.shape[1:]) != want or example.shape[0] < 1:
        raise ValueError(f"example_input has shape {tuple(example.shape)}, expected (batch, {', '.join(map(str, want))})")


def _copy_network_code(spec: Dict, out: Path) -> None:
    """``model.py`` (the network's module, verbatim) and the files it loads beside it."""
    for name, source in export_sources(spec).items():
        shutil.copyfile(source, out / name)


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


def _write_onnx(net: torch.nn.Module, x: torch.Tensor, path: Path, ort: Optional[ModuleType],
                other: Optional[Callable[[int], torch.Tensor]] = None):
    """Write ``model.onnx`` with the first exporter whose file checks out; return (name, opset).

    The TorchScript exporter goes first: it is fast (a fraction of a second against seconds) and
    exact for these ops. It is deprecated, so where it is gone or fails, the dynamo exporter runs.
    """
    errors = []
    for name, dynamo in (("torchscript", False), ("dynamo", True)):
        try:
            opset = _export_onnx(net, x, path, dynamo)
            if ort is not None:
                _check_onnx(ort, path, net, x, other)
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


def _check_onnx(ort: ModuleType, path: Path, net: torch.nn.Module, x: torch.Tensor,
                other: Optional[Callable[[int], torch.Tensor]] = None) -> None:
    """Run the ONNX file on the example and on a batch of another size, both raw-shaped when the
    export takes raw inputs, and compare with the torch model."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    for batch in (x, other(x.shape[0] + 2) if other is not None else _other_batch(x)):
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


def _readme(spec: Dict, prep: Optional[Dict[str, Any]], dtype: Optional[str]) -> str:
    classes = int(spec["num_classes"])
    if prep is None:
        shape = ", ".join(str(int(s)) for s in [spec["in_channels"], *spec["input_size"]])
        takes = f"Input: float32 tensor of shape (batch, {shape}); output: logits of shape (batch, {classes}).\n"
        feed = "x"
    else:
        shape = ", ".join(str(int(s)) for s in prep["raw_shape"])
        takes = (f"Input: the raw arrays of the training data ({prep.get('raw', 'as loaded')}), shape (batch, {shape}); "
                 f"the preprocessing in `preprocessing.json` (reshape, scale, standardise with the training "
                 f"statistics) is part of the model. Output: logits of shape (batch, {classes}).\n")
        feed = f"x.astype('{dtype}')"
    return (
        "# Exported nasforge model\n"
        "\n"
        "Files: `model.py` (the network code, needs only torch), `spec.json` (architecture), `weights.pt`, "
        "`preprocessing.json`, `model.onnx`, `metadata.json`.\n"
        + takes
        + "\n"
        "Plain torch, from this folder (`load` returns the model in eval mode):\n"
        "`import model, torch; m = model.load('.'); logits = m(torch.as_tensor(x))`\n"
        "\n"
        "ONNX Runtime, any batch size:\n"
        f"`import onnxruntime as ort; s = ort.InferenceSession('model.onnx'); logits = s.run(None, {{'{INPUT_NAME}': {feed}}})[0]`\n"
    )
