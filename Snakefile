from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "config/schema.yaml")


wildcard_constraints:
    subject=r"sub-[0-9]+",


include: "workflow/rules/common.smk"
include: "workflow/rules/phantom.smk"
include: "workflow/rules/dicom.smk"


rule all:
    default_target: True
    input:
        headline_outputs(),
