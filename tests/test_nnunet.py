"""voxflow.nnunet: raw dataset layout and checks, environment, and one tiny nnU-Net run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from voxflow import nnunet
from voxflow.errors import VoxflowError
from voxflow.io.images import write_nifti

LABELS = {
    "background": 0,
    "corpus_callosum": 1,
    "caudate": 2,
    "putamen": 3,
    "internal_capsule": 4,
}
# (centre offset in mm from the head centre, semi-axes in mm, HU) per label
BLOBS = {
    1: ((0.0, 4.0, 14.0), (6.0, 18.0, 5.0), 70.0),
    2: ((-12.0, 10.0, 4.0), (5.0, 7.0, 8.0), 110.0),
    3: ((14.0, 0.0, -2.0), (5.0, 10.0, 8.0), 150.0),
    4: ((-14.0, -14.0, -6.0), (4.0, 8.0, 6.0), -40.0),
}


def make_case(
    folder: Path,
    case: str,
    seed: int,
    shape: tuple[int, int, int] = (48, 48, 24),
    spacing: tuple[float, float, float] = (2.0, 2.0, 4.0),
) -> tuple[Path, Path]:
    """A head-like CT (int16 HU: air, skull, brain, 4 blobs, noise) and its labels (uint8)."""
    g = np.random.default_rng(seed)
    sp = np.asarray(spacing)
    centre = (np.asarray(shape) - 1) / 2 * sp + g.uniform(-3, 3, 3)
    mm = np.stack(
        np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, sp, strict=True)], indexing="ij"), -1
    )
    rel = mm - centre
    head = np.asarray([0.40, 0.45, 0.40]) * np.asarray(shape) * sp * g.uniform(0.95, 1.05, 3)
    r = np.sqrt(((rel / head) ** 2).sum(-1))
    hu = np.where(r < 1.0, 1000.0, -1000.0)
    hu[r < 0.9] = 30.0
    labels = np.zeros(shape, np.uint8)
    for value, (offset, semi, level) in BLOBS.items():
        c = np.asarray(offset) + g.uniform(-2, 2, 3)
        inside = (((rel - c) / np.asarray(semi)) ** 2).sum(-1) < 1.0
        labels[inside & (r < 0.9)] = value
        hu[inside & (r < 0.9)] = level
    hu += g.normal(0, 5, shape)
    affine = np.diag([*sp, 1.0])
    affine[:3, 3] = g.uniform(-80, -40, 3)
    image = write_nifti(folder / f"{case}_ct.nii.gz", np.round(hu), affine, np.int16)
    label = write_nifti(folder / f"{case}_labels.nii.gz", labels, affine, np.uint8)
    return image, label


@pytest.fixture
def cases(tmp_path):
    src = tmp_path / "src"
    return [(f"case{i}", *make_case(src, f"case{i}", seed=i)) for i in range(3)]


# ----------------------------------------------------------------------------------------------
# environment and layout (no nnU-Net needed)


def test_import_is_lazy():
    code = (
        "import sys, voxflow.nnunet; "
        "print(any(m.startswith(('nnunetv2', 'torch')) for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_env_paths_and_knobs(tmp_path):
    env = nnunet.nnunet_env(tmp_path, num_processes=2, num_processes_da=0)
    assert env["nnUNet_raw"] == str(tmp_path.resolve() / "nnUNet_raw")
    assert env["nnUNet_preprocessed"] == str(tmp_path.resolve() / "nnUNet_preprocessed")
    assert env["nnUNet_results"] == str(tmp_path.resolve() / "nnUNet_results")
    assert env["nnUNet_def_n_proc"] == "2"
    assert env["nnUNet_n_proc_DA"] == "0"
    assert env["nnUNet_compile"] == "false"
    assert nnunet.nnunet_env(tmp_path, compile_network=True)["nnUNet_compile"] == "true"
    with pytest.raises(VoxflowError, match="num_processes"):
        nnunet.nnunet_env(tmp_path, num_processes=0)


def test_dataset_name():
    assert nnunet.dataset_name(7, "GWR") == "Dataset007_GWR"
    with pytest.raises(VoxflowError, match="1-999"):
        nnunet.dataset_name(1000, "GWR")
    with pytest.raises(VoxflowError, match="name"):
        nnunet.dataset_name(1, "G W R")


def test_raw_dataset_layout(tmp_path, cases):
    test_img = cases[0][1]
    folder = nnunet.write_raw_dataset(
        cases, tmp_path / "nn", 501, "GWR", LABELS, test_cases=[("new1", test_img)]
    )
    assert folder == tmp_path / "nn" / "nnUNet_raw" / "Dataset501_GWR"
    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "CT"}
    assert meta["labels"] == LABELS
    assert meta["numTraining"] == 3
    assert meta["file_ending"] == ".nii.gz"
    assert sorted(p.name for p in (folder / "imagesTr").iterdir()) == [
        f"case{i}_0000.nii.gz" for i in range(3)
    ]
    assert sorted(p.name for p in (folder / "labelsTr").iterdir()) == [
        f"case{i}.nii.gz" for i in range(3)
    ]
    assert [p.name for p in (folder / "imagesTs").iterdir()] == ["new1_0000.nii.gz"]
    src, dst = nib.load(cases[1][1]), nib.load(folder / "imagesTr" / "case1_0000.nii.gz")
    np.testing.assert_array_equal(np.asarray(dst.dataobj), np.asarray(src.dataobj))
    np.testing.assert_allclose(dst.affine, src.affine)
    seg = nib.load(folder / "labelsTr" / "case1.nii.gz")
    assert seg.get_data_dtype() == np.uint8
    # a rewrite with fewer cases leaves no stale files behind
    nnunet.write_raw_dataset(cases[:2], tmp_path / "nn", 501, "GWR", LABELS)
    assert len(list((folder / "imagesTr").iterdir())) == 2
    assert not list((folder / "imagesTs").iterdir())


def test_raw_dataset_rejects_other_grid(tmp_path, cases):
    img = nib.load(cases[0][2])
    shifted = img.affine.copy()
    shifted[0, 3] += 5
    bad = write_nifti(tmp_path / "bad_labels.nii.gz", np.asarray(img.dataobj), shifted)
    with pytest.raises(VoxflowError, match="bad_labels.nii.gz: affine differs"):
        nnunet.write_raw_dataset([("c0", cases[0][1], bad)], tmp_path / "nn", 1, "X", LABELS)
    small = write_nifti(tmp_path / "small.nii.gz", np.zeros((4, 4, 4), np.uint8), img.affine)
    with pytest.raises(VoxflowError, match=r"small.nii.gz: shape \(4, 4, 4\) differs"):
        nnunet.write_raw_dataset([("c0", cases[0][1], small)], tmp_path / "nn", 1, "X", LABELS)


def test_raw_dataset_rejects_unknown_labels(tmp_path, cases):
    img = nib.load(cases[0][2])
    data = np.asarray(img.dataobj).copy()
    data[0, 0, 0] = 7
    bad = write_nifti(tmp_path / "seven.nii.gz", data, img.affine)
    with pytest.raises(VoxflowError, match=r"seven.nii.gz: label values \[7\] are not in"):
        nnunet.write_raw_dataset([("c0", cases[0][1], bad)], tmp_path / "nn", 1, "X", LABELS)
    frac = write_nifti(tmp_path / "frac.nii.gz", data * 0.5, img.affine, np.float32)
    with pytest.raises(VoxflowError, match="frac.nii.gz: label map has non-integer values"):
        nnunet.write_raw_dataset([("c0", cases[0][1], frac)], tmp_path / "nn", 1, "X", LABELS)


def test_raw_dataset_rejects_bad_definitions(tmp_path, cases):
    root = tmp_path / "nn"
    with pytest.raises(VoxflowError, match="0..N-1"):
        nnunet.write_raw_dataset(cases, root, 1, "X", {"background": 0, "a": 2})
    with pytest.raises(VoxflowError, match="duplicate"):
        nnunet.write_raw_dataset([cases[0], cases[0]], root, 1, "X", LABELS)
    with pytest.raises(VoxflowError, match="case id 'a b'"):
        nnunet.write_raw_dataset([("a b", *cases[0][1:])], root, 1, "X", LABELS)
    with pytest.raises(VoxflowError, match="image not found"):
        nnunet.write_raw_dataset(
            [("c", tmp_path / "nope.nii.gz", cases[0][2])], root, 1, "X", LABELS
        )
    nnunet.write_raw_dataset(cases[:1], root, 1, "X", LABELS)
    with pytest.raises(VoxflowError, match="already used by"):
        nnunet.write_raw_dataset(cases[:1], root, 1, "Y", LABELS)


def test_steps_need_previous_steps(tmp_path, cases):
    root = tmp_path / "nn"
    with pytest.raises(VoxflowError, match="no nnU-Net dataset 004"):
        nnunet.plan_and_preprocess(4, root)
    with pytest.raises(VoxflowError, match="Run the previous nnU-Net step first"):
        nnunet.train(4, root, epochs=1)
    with pytest.raises(VoxflowError, match="no nnU-Net dataset"):
        nnunet.write_split(4, root, ["a"], ["b"])
    with pytest.raises(VoxflowError, match="model file not found"):
        nnunet.predict(tmp_path / "nope" / "fold_0" / "checkpoint_final.pth", [cases[0][1]], root)


def test_env_is_restored_and_roots_switch(tmp_path):
    """Each call points nnU-Net (which copies its folders at import) at its own root."""
    pytest.importorskip("nnunetv2")
    before = os.environ.get("nnUNet_raw")
    with nnunet._nnunet(tmp_path / "a") as env:
        import nnunetv2.utilities.dataset_name_id_conversion as conv

        assert os.environ["nnUNet_raw"] == env["nnUNet_raw"] == conv.nnUNet_raw
        assert env["nnUNet_raw"].endswith("a/nnUNet_raw")
    assert os.environ.get("nnUNet_raw") == before
    (tmp_path / "b" / "nnUNet_raw" / "Dataset003_B").mkdir(parents=True)
    with nnunet._nnunet(tmp_path / "b"):
        assert conv.nnUNet_results == str((tmp_path / "b" / "nnUNet_results").resolve())
        assert conv.convert_id_to_dataset_name(3) == "Dataset003_B"


# ----------------------------------------------------------------------------------------------
# end to end on tiny data


@pytest.mark.slow
def test_plan_train_predict(tmp_path, monkeypatch):
    pytest.importorskip("nnunetv2")
    src, root = tmp_path / "src", tmp_path / "nn"
    cases = [(f"c{i}", *make_case(src, f"c{i}", seed=i, shape=(32, 32, 16))) for i in range(4)]
    nnunet.write_raw_dataset(cases, root, 42, "Tiny", LABELS)
    pre = nnunet.plan_and_preprocess(42, root, num_processes=1)
    plans = json.loads((pre / "nnUNetPlans.json").read_text())
    assert "3d_fullres" in plans["configurations"]
    assert (pre / "nnUNetPlans_3d_fullres").is_dir()
    nnunet.write_split(42, root, ["c0", "c1", "c2"], ["c3"])
    with pytest.raises(VoxflowError, match="in both"):
        nnunet.write_split(42, root, ["c0", "c3"], ["c3"])

    ckpt = nnunet.train(
        42, root, 0, epochs=1, iterations_per_epoch=2, val_iterations=1, device="cpu"
    )
    model = (
        root
        / "nnUNet_results"
        / "Dataset042_Tiny"
        / "nnUNetTrainerVoxflow__nnUNetPlans__3d_fullres"
    )
    assert ckpt == model / "fold_0" / "checkpoint_final.pth"
    assert ckpt.is_file()
    import torch

    first = torch.load(ckpt, weights_only=False)["network_weights"]
    again = nnunet.train(
        42, root, 0, epochs=1, iterations_per_epoch=2, val_iterations=1, device="cpu"
    )
    second = torch.load(again, weights_only=False)["network_weights"]
    assert all(torch.equal(first[k], second[k]) for k in first), "same seed, other weights"

    # the paper preset: nnU-Net's own trainer and schedule (run_training stubbed out)
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    seen = []
    monkeypatch.setattr(
        nnUNetTrainer,
        "run_training",
        lambda self: seen.append(
            (type(self).__name__, self.num_epochs, self.num_iterations_per_epoch)
        ),
    )
    paper = nnunet.train(42, root, 0, epochs=None, device="cpu")
    assert seen == [("nnUNetTrainer", 1000, 250)]
    assert paper.parent.parent.name == "nnUNetTrainer__nnUNetPlans__3d_fullres"

    out = nnunet.predict(
        ckpt, [cases[3][1], cases[0][1]], tmp_path / "pred", device="cpu", threads=1
    )
    assert [p.name for p in out] == ["c3_ct.nii.gz", "c0_ct.nii.gz"]
    for path, (_, image, _) in zip(out, [cases[3], cases[0]], strict=True):
        pred, ref = nib.load(path), nib.load(image)
        assert pred.shape == ref.shape
        np.testing.assert_allclose(pred.affine, ref.affine, atol=1e-5)
        values = np.unique(np.asarray(pred.dataobj))
        assert set(values.tolist()) <= set(LABELS.values())
