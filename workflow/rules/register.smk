rule register_mr_to_ct:
    input:
        unpack(registration_inputs),
    output:
        transform="results/{study}/registered/{patient}/ct_to_mr.tfm",
        labels="results/{study}/registered/{patient}/labels.nii.gz",
        info="results/{study}/registered/{patient}/registration.json",
        qc=report(
            "results/{study}/registered/{patient}/qc.png",
            caption="../report/registration_qc.rst",
            category="{study}",
            subcategory="registration QC",
        ),
    log:
        "logs/{study}/register_mr_to_ct/{patient}.log",
    benchmark:
        "logs/{study}/register_mr_to_ct/{patient}.benchmark.tsv"
    conda:
        "../../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        cfg=config["register"],
    script:
        "../scripts/register_mr_to_ct.py"
