rule brain_template:
    output:
        "resources/brain/template.npz",
    log:
        "logs/brain/brain_template/all.log",
    benchmark:
        "logs/brain/brain_template/all.benchmark.tsv"
    # cheap: runs on the submitting host on a cluster
    localrule: True
    conda:
        "../../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    params:
        voxel_mm=config["brain_phantom"]["voxel_mm"],
    script:
        "../scripts/brain_template.py"


rule brain_phantom:
    input:
        "resources/brain/template.npz",
    output:
        expand("resources/brain/{{subject}}/{map}.nii.gz", map=BRAIN_MAPS),
    log:
        "logs/brain/brain_phantom/{subject}.log",
    benchmark:
        "logs/brain/brain_phantom/{subject}.benchmark.tsv"
    conda:
        "../../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc: 6000 if config["brain_phantom"]["voxel_mm"] < 1.5 else 3000,
        runtime=20,
    params:
        seed=config["seed"],
        phantom=config["brain_phantom"],
    script:
        "../scripts/brain_phantom.py"


rule brain_phantom_qc:
    input:
        expand(
            "resources/brain/{subject}/{map}.nii.gz",
            subject=brain_subjects(),
            map=BRAIN_MAPS,
        ),
    output:
        table=report(
            "results/brain/phantom_qc.tsv",
            caption="../report/brain_qc.rst",
            category="Brain phantom",
        ),
        montage=report(
            "results/brain/phantom_montage.png",
            caption="../report/brain_qc.rst",
            category="Brain phantom",
        ),
    log:
        "logs/brain/brain_phantom_qc/all.log",
    benchmark:
        "logs/brain/brain_phantom_qc/all.benchmark.tsv"
    # cheap: runs on the submitting host on a cluster
    localrule: True
    conda:
        "../../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    params:
        subject_dirs=expand("resources/brain/{subject}", subject=brain_subjects()),
    script:
        "../scripts/brain_phantom_qc.py"
