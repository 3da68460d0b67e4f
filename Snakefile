from snakemake.utils import min_version

from voxflow.config import validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "config/schema.yaml")


wildcard_constraints:
    subject=r"sub-[0-9]+",
    model=r"resunet3d|unet3d",
    channel=r"flair|mprage|pd|t2|multi",
    qqmodel=r"resnet3d|cnn3d",
    case=r"[A-Za-z0-9_]+",
    patient=r"[A-Za-z0-9_.-]+",
    study=r"gwr",
    gwrmodel=r"resunet3d|unet3d",
    anymodel=r"resunet3d|unet3d|nnunet",
    arm=r"proposed|control",
    fold=r"[0-9]+",
    worker=r"[0-9]+",
    mgmtmodel=r"2d|3d",
    split=r"fold[0-9]+|final",


include: "workflow/rules/common.smk"
include: "workflow/rules/phantom.smk"
include: "workflow/rules/dicom.smk"
include: "workflow/rules/ms.smk"
include: "workflow/rules/qq.smk"
include: "workflow/rules/register.smk"
include: "workflow/rules/gwr.smk"
include: "workflow/rules/l3.smk"
include: "workflow/rules/mgmt.smk"


rule all:
    default_target: True
    input:
        headline_outputs(),
