from snakemake.exceptions import WorkflowError

# Studies that have rules in this version: name -> headline outputs.
STUDY_TARGETS = {}

_missing = [s for s in config["studies"] if s not in STUDY_TARGETS]
if _missing:
    raise WorkflowError(
        f"config 'studies' lists {_missing}, which this version of voxflow does not "
        f"implement yet; implemented: {sorted(STUDY_TARGETS) or 'none'}. "
        "Remove them from 'studies'."
    )


BRAIN_MAPS = ["t1", "gm", "wm", "csf", "mask"]


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
