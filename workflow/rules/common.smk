import functools
import os

from snakemake.exceptions import WorkflowError

from voxflow.gpus import gpus_per_job
from voxflow.locks import clear_stale_locks

# A lock left by a killed run (kill -9, OOM kill, power cut) no longer needs `--unlock`: removed
# here, before Snakemake checks it, if no process of that run is alive (src/voxflow/locks.py).
clear_stale_locks(workflow)

# Studies that have rules in this version: name -> headline outputs.
STUDY_TARGETS = {
    "ms": ["results/ms/dsc.tsv"],
    "qq": ["results/qq/rmse.tsv", "results/qq/oef_rmse.tsv"],
    "l3": ["results/l3/summary.tsv"],
    "mgmt": ["results/mgmt/summary.tsv", "results/mgmt/holdout.tsv"],
    "gwr": [
        "results/gwr/summary.tsv",
        "results/gwr/gwr.tsv",
        "results/gwr/registration.tsv",
    ],
}

_missing = [s for s in config["studies"] if s not in STUDY_TARGETS]
if _missing:
    raise WorkflowError(
        f"config 'studies' lists {_missing}, which this version of voxflow does not "
        f"implement yet; implemented: {sorted(STUDY_TARGETS) or 'none'}. "
        "Remove them from 'studies'."
    )


BRAIN_MAPS = ["t1", "gm", "wm", "csf", "mask"]


# ---- GPU jobs -------------------------------------------------------------------------------
# The `gpu` resource of training/inference jobs: 1 where they run on CUDA (a local GPU or
# device: cuda), 0 on a CPU-only machine, where `--resources gpu=1` must not serialise them
# (two 1-thread trainings side by side). profiles/slurm sets it to 1 per rule (--gpus=1).
GPU_PER_JOB = gpus_per_job(config["device"])
# Locally, GPU jobs share the (first visible) GPU one at a time unless `--resources gpu=N`
# (or a profile's `resources`) says otherwise.
if GPU_PER_JOB and "gpu" not in workflow.global_resources:
    workflow.register_resource("gpu", 1)


def brain_subjects():
    """Subject IDs of the brain phantom cohort: sub-001 ... sub-NNN."""
    return [f"sub-{i:03d}" for i in range(1, config["brain_phantom"]["subjects"] + 1)]


def headline_outputs():
    """Default target: the phantom QC, plus the headline tables of each enabled study."""
    outputs = ["results/brain/phantom_qc.tsv", "results/brain/phantom_montage.png"]
    outputs += expand(
        "results/dicom/{name}.nii.gz", name=sorted(config["dicom"]["inputs"])
    )
    for study in config["studies"]:
        outputs += STUDY_TARGETS[study]
    if "ms" in config["studies"] and ms_real_root():
        outputs.append("results/ms/real.tsv")
    return outputs


def dicom_folder(wildcards):
    """The DICOM folder configured for a stand-alone conversion (dicom.inputs)."""
    inputs = config["dicom"]["inputs"]
    if wildcards.name not in inputs:
        raise WorkflowError(
            f"results/dicom/{wildcards.name}.nii.gz: no dicom.inputs entry "
            f"'{wildcards.name}'; configured: {sorted(inputs) or 'none'}"
        )
    return inputs[wildcards.name]


# ---- study ms -------------------------------------------------------------------------------
MS_PHANTOM_ROOT = "resources/ms/phantom"


def ms_cfg():
    if "ms" not in config:
        raise WorkflowError("config has no 'ms' block; copy it from config/config.yaml")
    return config["ms"]


@functools.cache
def ms_real_cohort():
    """case ID -> MSCase of the real dataset, read from disk once per Snakemake run."""
    from voxflow.io.layouts.ms import read_cohort

    cohort = ms_cfg()["cohort"]
    cases = read_cohort(cohort.get("layout", "isbi2015"), cohort["root"])
    return {c.case: c for c in cases}


def ms_phantom_indices():
    """Two-digit subject numbers of the phantom cohort (01 ... NN)."""
    return [f"{i:02d}" for i in range(1, ms_cfg()["phantom"]["subjects"] + 1)]


def ms_cases():
    """Case IDs of the ms cohort (phantom: from config; real data: read from disk)."""
    if not ms_cfg()["cohort"].get("root"):
        n = ms_cfg()["phantom"]["subjects"]
        return [f"training{i:02d}_01" for i in range(1, n + 1)]
    return list(ms_real_cohort())


def ms_case_files(wildcards):
    """Raw files of one case (channels and mask), as the layout names them."""
    cohort = ms_cfg()["cohort"]
    if not cohort.get("root"):
        from voxflow.phantoms.ms import isbi2015_paths

        index = int(wildcards.case.removeprefix("training").split("_")[0])
        paths = isbi2015_paths(MS_PHANTOM_ROOT, index)
        return [str(paths[k]) for k in (*ms_cfg()["channels"], "mask1")]
    case = ms_real_cohort().get(wildcards.case)
    if case is None:
        raise WorkflowError(
            f"ms: case {wildcards.case} not found under {cohort['root']}"
        )
    return [str(p) for p in (*case.channels.values(), case.mask)]


def ms_available_channels(layout=None):
    """Configured channels a layout provides (miccai2008/open_ms_data lack PD); by default
    the training cohort's."""
    layout = layout or ms_cfg()["cohort"].get("layout", "isbi2015")
    lacking = {"miccai2008": {"pd"}, "open_ms_data": {"pd"}}.get(layout, set())
    return [c for c in ms_cfg()["channels"] if c not in lacking]


def ms_runs():
    """(model, channel) pairs to train: every model x channel, plus 'multi' if enabled."""
    channels = ms_available_channels() + (["multi"] if ms_cfg()["multichannel"] else [])
    return [(m, c) for m in ms_cfg()["models"] for c in channels]


def ms_inference_cfg():
    """The settings sliding-window inference needs (ms_evaluate, ms_real)."""
    return {
        k: ms_cfg()[k] for k in ("patch_size", "patch_overlap", "threshold", "model")
    }


def ms_train_settings(channel):
    """The effective train settings of one channel (base + that channel's overrides)."""
    return {**ms_cfg()["train"], **ms_cfg()["train_overrides"].get(channel, {})}


# `ms.real_check.root: auto` looks here (relative to the workflow): the real open_ms_data
# patient the project's shared test data carries (Lesjak et al. 2017, CC-BY).
MS_SHARED_REAL = "../shared/data/ms/open_ms_data"


def ms_real_root():
    """Root of the real cohort the phantom-trained models are checked on ("" = no check)."""
    root = ms_cfg()["real_check"]["root"]
    if root == "auto":
        shared = os.path.join(workflow.basedir, MS_SHARED_REAL)
        return os.path.normpath(shared) if os.path.isdir(shared) else ""
    return root


@functools.cache
def ms_real_check_cases():
    """case ID -> MSCase of the real-check cohort."""
    from voxflow.io.layouts.ms import read_cohort

    if not ms_real_root():
        raise WorkflowError(
            "results/ms/real.tsv needs a real cohort: set ms.real_check.root to an "
            f"{ms_cfg()['real_check']['layout']} folder ('auto' looks for {MS_SHARED_REAL} "
            "beside the workflow, which is not there)"
        )
    return {
        c.case: c for c in read_cohort(ms_cfg()["real_check"]["layout"], ms_real_root())
    }


def ms_real_channels():
    """The trained channels the real-check layout has (open_ms_data: no PD)."""
    have = ms_available_channels(ms_cfg()["real_check"]["layout"])
    return [c for c in ms_available_channels() if c in have]


def ms_real_case_files(wildcards):
    """Raw files of one real-check case (its channels, then the mask)."""
    case = ms_real_check_cases()[wildcards.case]
    return [str(case.channels[c]) for c in ms_real_channels()] + [str(case.mask)]


def ms_real_preprocessed():
    return expand(
        "results/ms/real/preprocessed/{case}/{file}.nii.gz",
        case=list(ms_real_check_cases()),
        file=[*ms_real_channels(), "mask"],
    )


def ms_model_spacing():
    """Voxel size (mm) the ms models are trained at: ms.spacing_mm, else the phantom grid."""
    if ms_cfg()["spacing_mm"]:
        return ms_cfg()["spacing_mm"]
    if ms_cfg()["cohort"].get("root"):
        raise WorkflowError(
            "ms.real_check on a real training cohort needs ms.spacing_mm (the grid the "
            "models are trained at)"
        )
    return ms_cfg()["phantom"]["voxel_mm"]


def ms_preprocessed():
    return expand(
        "results/ms/preprocessed/{case}/{file}.nii.gz",
        case=ms_cases(),
        file=[*ms_available_channels(), "mask"],
    )


# ---- study qq -------------------------------------------------------------------------------
QQ_PHANTOM_ROOT = "resources/qq/phantom"
QQ_FILES = ["mgre.nii.gz", "qsm.nii.gz", "echo_times.json", "mask.nii.gz"] + [
    f"gt/{p}.nii.gz" for p in ["S0", "R2", "Y", "v", "chi_nb"]
]


def qq_cfg():
    if "qq" not in config:
        raise WorkflowError("config has no 'qq' block; copy it from config/config.yaml")
    return config["qq"]


def qq_root():
    return qq_cfg()["cohort"].get("root") or QQ_PHANTOM_ROOT


@functools.cache
def qq_subjects():
    """Subject IDs (phantom: sub-001...; real data: the folders under the cohort root)."""
    if not qq_cfg()["cohort"].get("root"):
        return [f"sub-{i:03d}" for i in range(1, qq_cfg()["phantom"]["subjects"] + 1)]
    from voxflow.io.layouts.qq import check_cohort_echoes, read_cohort

    cases = read_cohort(qq_root())
    check_cohort_echoes(cases, qq_cfg()["n_echoes"])
    return [c.subject for c in cases]


@functools.cache
def qq_split():
    """subject -> train/val/test; the qq_split rule writes the same table."""
    from voxflow.studies.qq import make_split

    s = qq_cfg()["split"]
    split = make_split(qq_subjects(), config["seed"], s["test"], s["val"])
    return dict(zip(split.subject, split.split))


def qq_in_split(role):
    return [s for s, r in qq_split().items() if r == role]


def qq_cropped(subjects):
    return expand(
        "results/qq/cropped/{subject}/{f}.nii.gz",
        subject=subjects,
        f=["inputs", "targets", "mask"],
    )


def qq_subject_files(wildcards):
    """A subject's files in the qq layout (a real cohort may lack the optional mask)."""
    files = [f"{qq_root()}/{wildcards.subject}/{f}" for f in QQ_FILES]
    if qq_cfg()["cohort"].get("root"):
        optional = os.path.join(qq_root(), wildcards.subject, "mask.nii.gz")
        files = [f for f in files if f != optional or os.path.exists(f)]
    return files


# ---- study gwr ------------------------------------------------------------------------------
GWR_PHANTOM_ROOT = "resources/gwr/phantom"
GWR_TRUTH_ROOT = "resources/gwr/truth"
# the settings the own U-Net's training depends on (changing others does not retrain it)
GWR_TRAIN_KEYS = [
    "patch_size",
    "samples_per_volume",
    "foreground_probability",
    "batch_size",
    "model",
    "augment",
    "train",
]


def gwr_cfg():
    if "gwr" not in config:
        raise WorkflowError(
            "config has no 'gwr' block; copy it from config/config.yaml"
        )
    return config["gwr"]


def gwr_phantom():
    """True when the cohort is the generated phantom (no cohort root configured)."""
    return not gwr_cfg()["cohort"].get("root")


def gwr_root():
    return GWR_PHANTOM_ROOT if gwr_phantom() else gwr_cfg()["cohort"]["root"]


@functools.cache
def gwr_patients():
    """Patient IDs (phantom: p001...; real data: the folders under the cohort root)."""
    if gwr_phantom():
        return [f"p{i:03d}" for i in range(1, gwr_cfg()["phantom"]["patients"] + 1)]
    from voxflow.io.layouts.gwr import read_cohort

    return [c.patient for c in read_cohort(gwr_root())]


@functools.cache
def gwr_split():
    """patient -> train/val; the gwr_split rule writes the same table."""
    from voxflow.studies.gwr import make_split

    split = make_split(gwr_patients(), config["seed"], gwr_cfg()["val_fraction"])
    return dict(zip(split.patient, split.split))


def gwr_in_split(role):
    return [p for p, r in gwr_split().items() if r == role]


def gwr_outcomes():
    """The cohort's outcomes.csv (generated for the phantom; optional for real data)."""
    path = os.path.join(gwr_root(), "outcomes.csv")
    return [path] if gwr_phantom() or os.path.exists(path) else []


def gwr_models():
    """Own U-Net models plus 'nnunet' (the paper's backbone) as configured."""
    return list(gwr_cfg()["models"])


def registration_inputs(wildcards):
    """Fixed image (CT as NIfTI), moving image (MR) and its labels of one registration."""
    if wildcards.study != "gwr":
        raise WorkflowError(
            f"register_mr_to_ct: no registration inputs for study {wildcards.study}"
        )
    root = gwr_root()
    return {
        "fixed": f"results/gwr/ct/{wildcards.patient}.nii.gz",
        "moving": f"{root}/{wildcards.patient}/mr.nii.gz",
        "labels": f"{root}/{wildcards.patient}/mr_labels.nii.gz",
    }


GWR_NNUNET = "results/gwr/nnunet"


def gwr_nnunet_dataset():
    """nnU-Net's dataset folder name for the configured ID, e.g. Dataset501_GWR."""
    return f"Dataset{gwr_cfg()['nnunet']['dataset_id']:03d}_GWR"


def gwr_nnunet_checkpoint():
    """Where nnU-Net writes the final checkpoint of fold 0 (our train/val split)."""
    short = gwr_cfg()["nnunet"]["epochs"] is not None
    trainer = "nnUNetTrainerVoxflow" if short else "nnUNetTrainer"
    return (
        f"{GWR_NNUNET}/nnUNet_results/{gwr_nnunet_dataset()}/"
        f"{trainer}__nnUNetPlans__3d_fullres/fold_0/checkpoint_final.pth"
    )


# ---- study l3 -------------------------------------------------------------------------------
L3_PHANTOM_ROOT = "resources/l3/phantom"
L3_TRUTH_ROOT = "resources/l3/truth"


def l3_cfg():
    if "l3" not in config:
        raise WorkflowError("config has no 'l3' block; copy it from config/config.yaml")
    return config["l3"]


def l3_phantom():
    """True when the cohort is the generated phantom (no cohort root configured)."""
    return not l3_cfg()["cohort"].get("root")


def l3_root():
    return L3_PHANTOM_ROOT if l3_phantom() else l3_cfg()["cohort"]["root"]


@functools.cache
def l3_patients():
    """Patient IDs (phantom: p001...; real data: the folders under the cohort root)."""
    if l3_phantom():
        return [f"p{i:03d}" for i in range(1, l3_cfg()["phantom"]["patients"] + 1)]
    from voxflow.io.layouts.l3 import read_patients

    return read_patients(l3_root())


def l3_label_file(wildcards):
    """The labels a patient's slices need: the cohort's CSV or the patient's vertebra mask."""
    labels = l3_cfg()["labels"]
    if labels["source"] == "mask":
        return f"{l3_root()}/{wildcards.patient}/{labels['mask_name']}"
    return f"{l3_root()}/l3_labels.csv"


@functools.cache
def l3_folds():
    """patient -> fold; the l3_folds rule writes the same table."""
    from voxflow.studies.l3 import make_folds

    df = make_folds(l3_patients(), config["seed"], l3_cfg()["folds"])
    return dict(zip(df.patient, df.fold.astype(int)))


def l3_fold_patients(fold, role):
    """Test patients of a fold, or its training patients (all others)."""
    fold = int(fold)
    return [p for p, f in l3_folds().items() if (f == fold) == (role == "test")]


def l3_slices(patients):
    return expand("results/l3/slices/{p}.npz", p=patients)


def l3_runs():
    """(arm, fold) pairs: every configured arm on every fold."""
    return [(a, f) for a in l3_cfg()["arms"] for f in range(l3_cfg()["folds"])]


# the settings a design's training depends on (others do not retune or retrain)
L3_TRAIN_KEYS = ["model", "context_mm", "train", "augment", "inner_val_fraction"]


def l3_train_cfg():
    """Settings of the tuning and training jobs: L3_TRAIN_KEYS and the F1 threshold (the
    decoding's smoothing only matters to the tables, so changing it retunes nothing)."""
    cfg = {k: l3_cfg()[k] for k in L3_TRAIN_KEYS}
    return {**cfg, "decode": {"threshold": l3_cfg()["decode"]["threshold"]}}


# ---- study mgmt -----------------------------------------------------------------------------
MGMT_PHANTOM_ROOT = "resources/mgmt/phantom"
MGMT_PLANTED = "resources/mgmt/truth/planted.tsv"


def mgmt_cfg():
    if "mgmt" not in config:
        raise WorkflowError(
            "config has no 'mgmt' block; copy it from config/config.yaml"
        )
    return config["mgmt"]


def mgmt_phantom():
    """True when the study runs on its generated phantom cohort."""
    return not mgmt_cfg()["cohort"].get("root")


def mgmt_root():
    return MGMT_PHANTOM_ROOT if mgmt_phantom() else mgmt_cfg()["cohort"]["root"]


@functools.cache
def mgmt_patients():
    """BraTS21IDs of the cohort minus the exclusions (real cohorts: checked against the CSV)."""
    exclude = {e.zfill(5) for e in mgmt_cfg()["exclude"]}
    if mgmt_phantom():
        from voxflow.phantoms.mgmt import MGMTPhantomConfig, cohort_ids

        phantom = mgmt_cfg()["phantom"]
        cfg = MGMTPhantomConfig.from_dict(phantom)
        ids = cohort_ids(phantom["patients"], config["seed"], cfg)
        return [i for i in ids if i not in exclude]
    from voxflow.io.layouts.mgmt import read_patients

    return list(read_patients(mgmt_root(), exclude))


def mgmt_shard_ids(shard):
    from voxflow.studies.mgmt import shard_of

    n = mgmt_cfg()["shards"]
    return [p for p in mgmt_patients() if shard_of(p, n) == int(shard)]


def mgmt_shard_input(wildcards):
    """The phantom's train folder, or the shard's patient folders of a real cohort."""
    if mgmt_phantom():
        return [f"{MGMT_PHANTOM_ROOT}/train"]
    return [f"{mgmt_root()}/train/{p}" for p in mgmt_shard_ids(wildcards.shard)]


def mgmt_cases():
    return expand("results/mgmt/cases/shard{k}", k=range(mgmt_cfg()["shards"]))


def mgmt_splits_names():
    return [f"fold{k}" for k in range(mgmt_cfg()["split"]["folds"])] + ["final"]


MGMT_MODELS = ["2d", "3d"]
# settings of the training jobs (a change reruns training; the bootstrap does not)
MGMT_TRAIN_KEYS = ["models", "train", "augment"]


# ---- cohort check ---------------------------------------------------------------------------
# A real cohort (<study>.cohort.root, and ms.real_check's) is checked before any job runs, as
# `voxflow check` does: every problem at once, one line each. A passed check is cached under
# .snakemake/voxflow/ (keyed by the files' sizes and times and the settings), so reruns are
# cheap; a failed one stops the run with nothing built.
COHORT_CHECK_CACHE = ".snakemake/voxflow/cohort-check"


def real_cohorts():
    """(study, root, ms layout, split?) of every real cohort the configured studies read."""
    cohorts = [
        (s, config[s]["cohort"]["root"], None, True)
        for s in config["studies"]
        if config[s]["cohort"].get("root")
    ]
    if "ms" in config["studies"] and ms_real_root():
        cohorts.append(("ms", ms_real_root(), ms_cfg()["real_check"]["layout"], False))
    return cohorts


def check_real_cohorts():
    from voxflow.check import check_cached

    for study, root, layout, split in real_cohorts():
        checked = check_cached(study, root, config, COHORT_CHECK_CACHE, layout, split)
        if checked is not None and not checked.ok:
            raise WorkflowError(
                f"voxflow check: {checked.text()}\nNothing was run. Fix the cohort (or the "
                f"config) and rerun; `voxflow check {root} --study {study}` lists the problems."
            )


check_real_cohorts()


# ---- scheduling -----------------------------------------------------------------------------
# Snakemake's job rate limiter (--max-jobs-per-timespan, default 100/1s) re-arms a 1 s timer at
# the end of every scheduling round in which jobs wait for cores, and every finished job starts
# a round: on a busy 2-core run the timers pile up, one per finished job, and the scheduler
# re-selects jobs (and stats every input of every waiting job) many times a second. It cost
# the demo several CPU minutes (README "Speed"). Local jobs gain nothing from the limit, so
# local runs drop it; executors that submit to a queue (SLURM) keep it.
onstart:
    if workflow.local_exec and hasattr(workflow.scheduler, "job_rate_limiter"):
        workflow.scheduler.job_rate_limiter = None
