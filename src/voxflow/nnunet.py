"""nnU-Net v2 glue: raw dataset, plan + preprocess, train (short or default schedule), predict.

Everything lives under one ``root`` (e.g. ``results/gwr/nnunet``)::

    root/nnUNet_raw/DatasetXXX_Name/{dataset.json, imagesTr, labelsTr, imagesTs}
    root/nnUNet_preprocessed/DatasetXXX_Name/{nnUNetPlans.json, splits_final.json, ...}
    root/nnUNet_results/DatasetXXX_Name/<Trainer>__nnUNetPlans__3d_fullres/fold_0/checkpoint_final.pth

nnU-Net reads its folders from environment variables when its modules are first imported.
Each function here sets them (:func:`nnunet_env`) for the duration of the call, imports nnU-Net
lazily and points already-imported nnU-Net modules at ``root``, so one process may use several
roots. Run the CLIs (``nnUNetv2_*``) with ``env={**os.environ, **nnunet_env(root)}`` instead.

nnU-Net's planning, preprocessing and final validation use "spawn" process pools: a script that
calls them must keep its top-level code under ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from voxflow.errors import VoxflowError, input_error
from voxflow.io.atomic import write_json

PATH_VARS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
PLANS = "nnUNetPlans"
CONFIGURATION = "3d_fullres"
FILE_ENDING = ".nii.gz"
CHANNEL = "_0000"
SHORT_TRAINER = "nnUNetTrainerVoxflow"
CASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def nnunet_env(
    root: str | Path,
    *,
    num_processes: int | None = None,
    num_processes_da: int = 0,
    compile_network: bool = False,
) -> dict[str, str]:
    """The environment nnU-Net needs for data under ``root``.

    ``num_processes`` (``nnUNet_def_n_proc``, default: the CPU count, at most 8) caps nnU-Net's
    worker pools and its inference threads. ``num_processes_da`` (``nnUNet_n_proc_DA``) is the
    number of background data-augmentation workers; 0 runs augmentation in the training process,
    which is the only reproducible setting (nnU-Net does not seed its workers), but planning
    (``nnUNetv2_plan_and_preprocess``) needs at least 1. ``compile_network``
    (``nnUNet_compile``) enables ``torch.compile`` on CUDA (never on CPU): minutes of warm-up that
    only pay off over long runs.
    """
    root = Path(root).resolve()
    if num_processes is None:
        num_processes = min(os.cpu_count() or 1, 8)
    if num_processes < 1 or num_processes_da < 0:
        raise VoxflowError(
            f"nnunet: num_processes must be >= 1 and num_processes_da >= 0, "
            f"got {num_processes} and {num_processes_da}"
        )
    return {
        "nnUNet_raw": str(root / "nnUNet_raw"),
        "nnUNet_preprocessed": str(root / "nnUNet_preprocessed"),
        "nnUNet_results": str(root / "nnUNet_results"),
        "nnUNet_def_n_proc": str(int(num_processes)),
        "nnUNet_n_proc_DA": str(int(num_processes_da)),
        "nnUNet_compile": "true" if compile_network else "false",
    }


def dataset_name(dataset_id: int, name: str) -> str:
    """nnU-Net's folder name, e.g. ``Dataset501_GWR``."""
    if not 1 <= int(dataset_id) <= 999:
        raise VoxflowError(f"nnunet: dataset id must be 1-999, got {dataset_id}")
    if not NAME.match(name):
        raise VoxflowError(f"nnunet: dataset name '{name}' must be letters, digits, '_' or '-'")
    return f"Dataset{int(dataset_id):03d}_{name}"


def find_dataset(base: str | Path, dataset_id: int) -> Path:
    """The one ``DatasetXXX_*`` folder of ``dataset_id`` in ``base`` (raw/preprocessed/results)."""
    base = Path(base)
    found = sorted(p for p in base.glob(f"Dataset{int(dataset_id):03d}_*") if p.is_dir())
    if not found:
        raise input_error(
            base, f"no nnU-Net dataset {int(dataset_id):03d}", "Run the previous nnU-Net step first"
        )
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise input_error(base, f"several folders for dataset {int(dataset_id):03d}: {names}")
    return found[0]


# --------------------------------------------------------------------------------------------
# raw dataset


def _check_labels(labels: Mapping[str, int]) -> dict[str, int]:
    values = sorted(int(v) for v in labels.values())
    if values != list(range(len(values))) or not values:
        raise VoxflowError(
            f"nnunet: label values must be 0..N-1 without gaps (0 = background), got {dict(labels)}"
        )
    return {str(k): int(v) for k, v in sorted(labels.items(), key=lambda kv: kv[1])}


def _check_case_ids(ids: Sequence[str], what: str) -> None:
    for case in ids:
        if not CASE_ID.match(case):
            raise VoxflowError(
                f"nnunet: {what} case id '{case}' must be letters, digits, '_' or '-' "
                "(nnU-Net derives it from the file name)"
            )
    dup = sorted({c for c in ids if list(ids).count(c) > 1})
    if dup:
        raise VoxflowError(f"nnunet: duplicate {what} case id(s) {dup}")


def _read_ct(path: Path):
    from voxflow.io.images import check_finite, read_image

    vol = read_image(path, dtype=None)
    if vol.data.ndim != 3:
        raise input_error(path, f"expected a 3D CT volume, got shape {vol.shape}")
    if not np.issubdtype(vol.data.dtype, np.number) or vol.data.dtype == bool:
        raise input_error(path, f"CT must be numeric (HU), got {vol.data.dtype}")
    return check_finite(vol, "CT")


def _label_array(vol, allowed: set[int]) -> np.ndarray:
    data = vol.data
    if not (np.issubdtype(data.dtype, np.integer) or data.dtype == bool):
        if not np.all(np.isfinite(data)) or not np.array_equal(data, np.round(data)):
            raise input_error(vol.path, "label map has non-integer values")
    found = {int(v) for v in np.unique(data)}
    extra = sorted(found - allowed)
    if extra:
        raise input_error(
            vol.path, f"label values {extra} are not in the dataset labels {sorted(allowed)}"
        )
    return data.astype(np.uint8)


def write_raw_dataset(
    cases: Sequence[tuple[str, str | Path, str | Path]],
    root: str | Path,
    dataset_id: int,
    name: str,
    labels: Mapping[str, int],
    test_cases: Sequence[tuple[str, str | Path]] = (),
) -> Path:
    """Write ``root/nnUNet_raw/DatasetXXX_Name`` from ``(case, ct, label)`` training triples.

    CTs (HU; NIfTI, NRRD or MetaImage) go to ``imagesTr/<case>_0000.nii.gz`` (``imagesTs`` for
    ``test_cases``), labels as uint8 to ``labelsTr/<case>.nii.gz``. ``dataset.json`` names the one
    channel ``CT``, so nnU-Net applies its CT normalisation. Each label must share its CT's grid
    and use only the values of ``labels`` (``{"background": 0, ...}``, consecutive). Earlier
    contents of the dataset folder are replaced; ``dataset.json`` is written last.
    """
    from voxflow.io.images import check_same_grid, read_image, write_nifti

    labels = _check_labels(labels)
    if not cases:
        raise VoxflowError("nnunet: no training cases for the raw dataset")
    _check_case_ids([c for c, _, _ in cases], "training")
    _check_case_ids([c for c, _ in test_cases], "test")
    raw = Path(root) / "nnUNet_raw"
    folder = raw / dataset_name(dataset_id, name)
    clash = [p.name for p in raw.glob(f"Dataset{int(dataset_id):03d}_*") if p != folder]
    if clash:
        raise input_error(
            raw,
            f"dataset id {int(dataset_id):03d} is already used by {clash}",
            "Remove that folder or pick another id",
        )
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        for old in (folder / sub).glob("*"):
            old.unlink()
    (folder / "dataset.json").unlink(missing_ok=True)

    allowed = set(labels.values())
    for case, image, label in cases:
        ct = _read_ct(Path(image))
        seg = read_image(label, dtype=None)
        if seg.data.ndim == 4 and seg.shape[3] == 1:
            seg.data = seg.data[..., 0]
        check_same_grid(ct, seg)
        write_nifti(folder / "imagesTr" / f"{case}{CHANNEL}{FILE_ENDING}", ct.data, ct.affine)
        write_nifti(
            folder / "labelsTr" / f"{case}{FILE_ENDING}", _label_array(seg, allowed), seg.affine
        )
    for case, image in test_cases:
        ct = _read_ct(Path(image))
        write_nifti(folder / "imagesTs" / f"{case}{CHANNEL}{FILE_ENDING}", ct.data, ct.affine)

    dataset_json = {
        "name": name,
        "description": "written by voxflow.nnunet",
        "channel_names": {"0": "CT"},
        "labels": labels,
        "numTraining": len(cases),
        "file_ending": FILE_ENDING,
        "overwrite_image_reader_writer": "SimpleITKIO",
    }
    write_json(folder / "dataset.json", dataset_json)
    return folder


# --------------------------------------------------------------------------------------------
# nnU-Net session: environment + lazy import


@contextlib.contextmanager
def _nnunet(root: str | Path | None, **env_options: Any) -> Iterator[dict[str, str]]:
    """Set nnU-Net's environment for ``root`` and import it; restore the environment after."""
    env = nnunet_env(root or ".", **env_options)
    if root is None:  # inference needs no data folders: keep whatever the caller has
        env = {k: v for k, v in env.items() if k not in PATH_VARS}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # paths.py prints unset folders
                import nnunetv2.configuration
                import nnunetv2.paths  # noqa: F401  (first import reads the folders)
        except ImportError as err:
            raise VoxflowError(
                f"nnunet: cannot import nnunetv2 ({err}); install it (pip install nnunetv2==2.6.0)"
            ) from err
        _rebind(env)
        yield env
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _rebind(env: Mapping[str, str]) -> None:
    """Point loaded nnU-Net modules at ``env`` (they copy the folders at import time)."""
    values: dict[str, Any] = {k: env[k] for k in PATH_VARS if k in env}
    values["default_num_processes"] = int(env["nnUNet_def_n_proc"])
    for mod_name, mod in list(sys.modules.items()):
        if mod is None or not (mod_name == "nnunetv2" or mod_name.startswith("nnunetv2.")):
            continue
        for key, value in values.items():
            if key in vars(mod):
                setattr(mod, key, value)


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """Cap torch's intra-op CPU threads for a block (``None``: leave them)."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@functools.cache
def _short_trainer() -> type:
    """``nnUNetTrainer`` under its own name (results folder), for shortened schedules."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    return type(
        SHORT_TRAINER,
        (nnUNetTrainer,),
        {
            "__doc__": "nnUNetTrainer whose schedule voxflow.nnunet.train sets.",
            "__module__": __name__,
        },
    )


# --------------------------------------------------------------------------------------------
# plan + preprocess, split


def plan_and_preprocess(
    dataset_id: int,
    root: str | Path,
    configuration: str = CONFIGURATION,
    num_processes: int = 1,
    *,
    verify: bool = True,
    planner: str = "ExperimentPlanner",
    gpu_memory_target_gb: float | None = None,
) -> Path:
    """Fingerprint, plan and preprocess one configuration; return the preprocessed dataset folder.

    Same as ``nnUNetv2_plan_and_preprocess -d ID -c 3d_fullres -np N --verify_dataset_integrity``.
    ``planner="ExperimentPlanner"`` is nnU-Net's original (paper) planner; ``nnUNetPlannerResEncM``
    etc. are the newer residual-encoder presets (other plans name). ``gpu_memory_target_gb``
    (default 8) sizes the patch and batch.
    """
    raw = find_dataset(Path(root) / "nnUNet_raw", dataset_id)
    if not (raw / "dataset.json").is_file():
        raise input_error(raw, "no dataset.json", "Run write_raw_dataset first")
    # the planner sets torch's thread count to nnUNet_n_proc_DA, which must then be >= 1
    with _nnunet(root, num_processes=num_processes, num_processes_da=num_processes):
        from nnunetv2.experiment_planning.plan_and_preprocess_api import (
            extract_fingerprints,
            plan_experiments,
            preprocess,
        )

        try:
            extract_fingerprints(
                [int(dataset_id)],
                num_processes=num_processes,
                check_dataset_integrity=verify,
                clean=True,
                verbose=False,
            )
        except (AssertionError, RuntimeError) as err:
            raise input_error(raw, f"nnU-Net dataset check failed: {err}") from err
        plans_name = plan_experiments(
            [int(dataset_id)], planner, gpu_memory_target_in_gb=gpu_memory_target_gb
        )
        out = find_dataset(Path(root) / "nnUNet_preprocessed", dataset_id)
        plans = json.loads((out / f"{plans_name}.json").read_text())
        if configuration not in plans["configurations"]:
            raise input_error(
                out / f"{plans_name}.json",
                f"nnU-Net planned no '{configuration}' configuration",
                f"Planned: {sorted(plans['configurations'])}",
            )
        preprocess(
            [int(dataset_id)],
            plans_name,
            configurations=(configuration,),
            num_processes=(num_processes,),
        )
    return out


def write_split(
    dataset_id: int, root: str | Path, train: Sequence[str], val: Sequence[str]
) -> Path:
    """Write ``splits_final.json`` with one fold, so nnU-Net's fold 0 is exactly ``train``/``val``.

    Call it after :func:`plan_and_preprocess` (which creates the folder) and before :func:`train`.
    """
    pre = find_dataset(Path(root) / "nnUNet_preprocessed", dataset_id)
    known = {
        p.name[: -len(FILE_ENDING)] for p in (pre / "gt_segmentations").glob(f"*{FILE_ENDING}")
    }
    if not known:
        raise input_error(pre, "no preprocessed cases", "Run plan_and_preprocess first")
    train, val = [str(c) for c in train], [str(c) for c in val]
    if not train or not val:
        raise VoxflowError("nnunet: the split needs at least one training and one validation case")
    unknown = sorted(set(train + val) - known)
    if unknown:
        raise input_error(pre, f"split names cases that were not preprocessed: {unknown}")
    both = sorted(set(train) & set(val))
    if both:
        raise VoxflowError(f"nnunet: case(s) {both} are in both the training and validation set")
    path = pre / "splits_final.json"
    write_json(path, [{"train": train, "val": val}])
    return path


# --------------------------------------------------------------------------------------------
# train


def train(
    dataset_id: int,
    root: str | Path,
    fold: int | str = 0,
    epochs: int | None = None,
    iterations_per_epoch: int = 250,
    val_iterations: int = 50,
    device: str = "auto",
    seed: int = 0,
    *,
    configuration: str = CONFIGURATION,
    plans: str = PLANS,
    num_processes_da: int = 0,
    validate: bool = False,
    threads: int | None = None,
) -> Path:
    """Train one fold; return its ``checkpoint_final.pth``.

    ``epochs=None`` is nnU-Net's default ``nnUNetTrainer`` and schedule (1000 epochs of 250
    training + 50 validation iterations; the iteration arguments are ignored). Otherwise the
    ``nnUNetTrainerVoxflow`` subclass (its own results folder) runs ``epochs`` x
    ``iterations_per_epoch`` (+ ``val_iterations``). Fold ``0`` is the split of
    :func:`write_split` (required); ``"all"`` trains on every case. Python, NumPy and torch are
    seeded with ``seed``; runs repeat exactly on CPU only with ``num_processes_da=0``.
    ``validate`` also predicts the validation cases at the end (``fold_0/validation``), as
    ``nnUNetv2_train`` does. ``threads`` caps torch's CPU threads during the call.
    """
    if fold != "all" and not isinstance(fold, int):
        raise VoxflowError(f"nnunet: fold must be an int or 'all', got {fold!r}")
    if epochs is not None and (epochs < 1 or iterations_per_epoch < 1 or val_iterations < 1):
        raise VoxflowError(
            "nnunet: epochs, iterations_per_epoch and val_iterations must be >= 1, got "
            f"{epochs}, {iterations_per_epoch}, {val_iterations}"
        )
    pre = find_dataset(Path(root) / "nnUNet_preprocessed", dataset_id)
    plans_file = pre / f"{plans}.json"
    if not plans_file.is_file():
        raise input_error(plans_file, "plans not found", "Run plan_and_preprocess first")
    plans_json = json.loads(plans_file.read_text())
    if configuration not in plans_json["configurations"]:
        raise input_error(plans_file, f"no configuration '{configuration}'")
    if fold != "all":
        splits_file = pre / "splits_final.json"
        if not splits_file.is_file():
            raise input_error(splits_file, "split not found", "Call write_split first")
        n_folds = len(json.loads(splits_file.read_text()))
        if not 0 <= fold < n_folds:
            raise input_error(splits_file, f"fold {fold} not in the {n_folds} fold(s) of the split")
    dataset_json = json.loads((pre / "dataset.json").read_text())

    from voxflow.train.device import seed_everything, select_device

    dev = select_device(device)
    with _nnunet(root, num_processes_da=num_processes_da), _torch_threads(threads):
        import torch
        from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

        if dev.type == "cuda":  # as nnUNetv2_train does
            torch.backends.cudnn.benchmark = True
        seed_everything(seed)
        cls = nnUNetTrainer if epochs is None else _short_trainer()
        trainer = cls(
            plans=plans_json,
            configuration=configuration,
            fold=fold,
            dataset_json=dataset_json,
            device=dev,
        )
        if epochs is not None:
            trainer.num_epochs = int(epochs)
            trainer.num_iterations_per_epoch = int(iterations_per_epoch)
            trainer.num_val_iterations_per_epoch = int(val_iterations)
        out = Path(trainer.output_folder)
        for stale in ("checkpoint_final.pth", "checkpoint_latest.pth", "checkpoint_best.pth"):
            (out / stale).unlink(missing_ok=True)
        trainer.run_training()
        if validate:
            trainer.perform_actual_validation(False)
    return out / "checkpoint_final.pth"


# --------------------------------------------------------------------------------------------
# predict


def _case_inputs(images: Sequence[str | Path] | str | Path) -> list[tuple[str, Path]]:
    if isinstance(images, str | Path) and Path(images).is_dir():
        files = sorted(Path(images).glob(f"*{CHANNEL}{FILE_ENDING}"))
        if not files:
            raise input_error(images, f"no *{CHANNEL}{FILE_ENDING} images in the folder")
    elif isinstance(images, str | Path):
        files = [Path(images)]
    else:
        files = [Path(p) for p in images]
    out = []
    for f in files:
        name = f.name
        for suffix in (FILE_ENDING, ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"):
            if name.lower().endswith(suffix):
                name = name[: -len(suffix)]
                break
        out.append((name.removesuffix(CHANNEL), f))
    _check_case_ids([c for c, _ in out], "prediction")
    return out


def _model_dir(checkpoint: Path) -> Path:
    model_dir = checkpoint.parent.parent
    for need in (checkpoint, model_dir / "plans.json", model_dir / "dataset.json"):
        if not need.is_file():
            raise input_error(need, "nnU-Net model file not found", "Run train first")
    return model_dir


def _load_predictor(
    checkpoint: str | Path,
    device: str = "auto",
    use_mirroring: bool = False,
    step_size: float = 0.5,
) -> Any:
    """An initialised ``nnUNetPredictor`` for one checkpoint of any nnUNetTrainer (sub)class.

    The model folder (``checkpoint``'s grandparent) holds ``plans.json`` and ``dataset.json``.
    Call inside ``_nnunet`` (nnU-Net imported, its environment set).
    """
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from voxflow.train.device import select_device

    checkpoint = Path(checkpoint)
    model_dir = _model_dir(checkpoint)
    try:
        ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
        params, trainer_name = ckpt["network_weights"], ckpt["trainer_name"]
        configuration = ckpt["init_args"]["configuration"]
    except (OSError, RuntimeError, KeyError, EOFError) as err:
        raise input_error(checkpoint, f"not a readable nnU-Net checkpoint ({err})") from err
    plans_manager = PlansManager(json.loads((model_dir / "plans.json").read_text()))
    dataset_json = json.loads((model_dir / "dataset.json").read_text())
    config = plans_manager.get_configuration(configuration)
    network = nnUNetTrainer.build_network_architecture(
        config.network_arch_class_name,
        config.network_arch_init_kwargs,
        config.network_arch_init_kwargs_req_import,
        determine_num_input_channels(plans_manager, config, dataset_json),
        plans_manager.get_label_manager(dataset_json).num_segmentation_heads,
        enable_deep_supervision=False,
    )
    network.load_state_dict(params)
    dev = select_device(device)
    with contextlib.redirect_stdout(io.StringIO()):  # "perform_everything_on_device ... CPU"
        predictor = nnUNetPredictor(
            tile_step_size=step_size,
            use_gaussian=True,
            use_mirroring=use_mirroring,
            perform_everything_on_device=dev.type == "cuda",
            device=dev,
            verbose=False,
            verbose_preprocessing=False,
            allow_tqdm=False,
        )
    predictor.manual_initialization(
        network,
        plans_manager,
        config,
        [params],
        dataset_json,
        trainer_name,
        ckpt.get("inference_allowed_mirroring_axes"),
    )
    return predictor


def predict(
    checkpoint: str | Path,
    images: Sequence[str | Path] | str | Path,
    output_folder: str | Path,
    device: str = "auto",
    *,
    use_mirroring: bool = False,
    step_size: float = 0.5,
    threads: int | None = None,
) -> list[Path]:
    """Segment CT volumes with a trained model; return ``output_folder/<case>.nii.gz`` (uint8).

    ``images``: files or a folder of ``<case>_0000.nii.gz``; the case is the file name without
    its suffix and ``_0000``. Predictions are on each input's grid (same shape and affine).
    ``use_mirroring`` (test-time flips, nnU-Net's default) costs 8x on 3D; ``step_size`` is the
    sliding-window overlap (0.5 = nnU-Net's default). One case at a time, no worker processes;
    ``threads`` caps torch's CPU threads (default: the CPU count, at most 8, as nnU-Net does).
    """
    from voxflow.io.images import write_nifti

    inputs = _case_inputs(images)
    _model_dir(Path(checkpoint))
    outputs = []
    n_threads = int(threads) if threads else min(os.cpu_count() or 1, 8)
    with _nnunet(None, num_processes=n_threads), _torch_threads(threads):
        from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

        predictor = _load_predictor(checkpoint, device, use_mirroring, step_size)
        reader = SimpleITKIO()
        for case, path in inputs:
            ct = _read_ct(path)  # voxflow's view of the grid: (i, j, k) and the RAS affine
            try:
                data, props = reader.read_images([str(path)])
            except RuntimeError as err:
                raise input_error(path, f"SimpleITK cannot read the image ({err})") from err
            with contextlib.redirect_stdout(io.StringIO()):
                seg = predictor.predict_single_npy_array(data.astype(np.float32), props)
            seg = np.asarray(seg).transpose(2, 1, 0)  # SimpleITK (k, j, i) -> (i, j, k)
            if seg.shape != ct.shape:
                raise input_error(
                    path, f"nnU-Net returned shape {seg.shape} for an image of shape {ct.shape}"
                )
            outputs.append(
                write_nifti(Path(output_folder) / f"{case}{FILE_ENDING}", seg, ct.affine, np.uint8)
            )
    return outputs
