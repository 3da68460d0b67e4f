import os
from pathlib import Path

from snakemake.exceptions import WorkflowError


# The voxflow library lives in src/; rule scripts import it from there too inside per-rule
# conda envs (--sdm conda), which carry only the third-party packages.
VOXFLOW_SRC = str(Path(workflow.basedir) / "src")
if VOXFLOW_SRC not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (VOXFLOW_SRC, os.environ.get("PYTHONPATH", "")) if p
    )

# Studies that have rules in this version: name -> headline outputs.
STUDY_TARGETS = {}

_missing = [s for s in config["studies"] if s not in STUDY_TARGETS]
if _missing:
    raise WorkflowError(
        f"config 'studies' lists {_missing}, which this version of voxflow does not "
        f"implement yet; implemented: {sorted(STUDY_TARGETS) or 'none'}. "
        "Remove them from 'studies'."
    )


wildcard_constraints:
    subject=r"sub-[0-9]+",


BRAIN_MAPS = ["t1", "gm", "wm", "csf", "mask"]


def brain_subjects():
    """Subject IDs of the brain phantom cohort: sub-001 ... sub-NNN."""
    return [f"sub-{i:03d}" for i in range(1, config["brain_phantom"]["subjects"] + 1)]


def headline_outputs():
    """What `rule all` builds: the phantom QC plus each enabled study's headline tables."""
    outputs = ["results/brain/phantom_qc.tsv", "results/brain/phantom_montage.png"]
    for study in config["studies"]:
        outputs += STUDY_TARGETS[study]
    return outputs
