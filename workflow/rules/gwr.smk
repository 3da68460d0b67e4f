rule gwr_template:
    output:
        "resources/gwr/template.npz",
    log:
        "logs/gwr/gwr_template/all.log",
    benchmark:
        "logs/gwr/gwr_template/all.benchmark.tsv"
    conda:
        "../../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    params:
        voxel_mm=lambda wc: gwr_cfg()["phantom"].get("mr_voxel_mm", 1.5),
    script:
        "../scripts/brain_template.py"


rule gwr_phantom:
    input:
        "resources/gwr/template.npz",
    output:
        ct=directory("resources/gwr/phantom/{patient}/ct"),
        mr="resources/gwr/phantom/{patient}/mr.nii.gz",
        labels="resources/gwr/phantom/{patient}/mr_labels.nii.gz",
        transform="resources/gwr/truth/{patient}/ct_to_mr.tfm",
        params="resources/gwr/truth/{patient}/params.json",
    log:
        "logs/gwr/gwr_phantom/{patient}.log",
    benchmark:
        "logs/gwr/gwr_phantom/{patient}.benchmark.tsv"
    conda:
        "../../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        seed=config["seed"],
        # the cohort size is not a patient's setting: growing the cohort keeps the others
        phantom=lambda wc: {
            k: v for k, v in gwr_cfg()["phantom"].items() if k != "patients"
        },
    script:
        "../scripts/gwr_phantom.py"


rule gwr_phantom_outcomes:
    input:
        lambda wc: expand("resources/gwr/truth/{p}/params.json", p=gwr_patients()),
    output:
        "resources/gwr/phantom/outcomes.csv",
    log:
        "logs/gwr/gwr_phantom_outcomes/all.log",
    benchmark:
        "logs/gwr/gwr_phantom_outcomes/all.benchmark.tsv"
    # cheap: runs on the submitting host on a cluster
    localrule: True
    conda:
        "../../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        seed=config["seed"],
        phantom=lambda wc: gwr_cfg()["phantom"],
    script:
        "../scripts/gwr_phantom_outcomes.py"


rule gwr_ct_to_nifti:
    input:
        lambda wc: f"{gwr_root()}/{wc.patient}/ct",
    output:
        nifti="results/gwr/ct/{patient}.nii.gz",
        sidecar="results/gwr/ct/{patient}.json",
    log:
        "logs/gwr/gwr_ct_to_nifti/{patient}.log",
    benchmark:
        "logs/gwr/gwr_ct_to_nifti/{patient}.benchmark.tsv"
    conda:
        "../../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        dicom=config["dicom"],
    script:
        "../scripts/dicom_to_nifti.py"


rule gwr_registration_table:
    input:
        info=lambda wc: expand(
            "results/gwr/registered/{p}/registration.json", p=gwr_patients()
        ),
        ct=lambda wc: expand("results/gwr/ct/{p}.nii.gz", p=gwr_patients()),
        truth=lambda wc: (
            expand("resources/gwr/truth/{p}/ct_to_mr.tfm", p=gwr_patients())
            if gwr_phantom()
            else []
        ),
    output:
        "results/gwr/registration.tsv",
    log:
        "logs/gwr/gwr_registration_table/all.log",
    benchmark:
        "logs/gwr/gwr_registration_table/all.benchmark.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        patients=lambda wc: gwr_patients(),
    script:
        "../scripts/gwr_registration_table.py"


rule gwr_preprocess:
    input:
        ct="results/gwr/ct/{patient}.nii.gz",
        labels="results/gwr/registered/{patient}/labels.nii.gz",
    output:
        expand(
            "results/gwr/preprocessed/{{patient}}/{f}.nii.gz",
            f=["reference", "ct_hu", "labels"],
        ),
    log:
        "logs/gwr/gwr_preprocess/{patient}.log",
    benchmark:
        "logs/gwr/gwr_preprocess/{patient}.benchmark.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        spacing_mm=lambda wc: gwr_cfg()["spacing_mm"],
        labels=lambda wc: gwr_cfg()["labels"],
    script:
        "../scripts/gwr_preprocess.py"


rule gwr_split:
    output:
        "results/gwr/split.tsv",
    log:
        "logs/gwr/gwr_split/all.log",
    benchmark:
        "logs/gwr/gwr_split/all.benchmark.tsv"
    # cheap: runs on the submitting host on a cluster
    localrule: True
    conda:
        "../../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        table=lambda wc: gwr_split(),
        columns=["patient", "split"],
    script:
        "../scripts/split_table.py"


rule gwr_fingerprint:
    input:
        lambda wc: expand(
            "results/gwr/preprocessed/{p}/{f}.nii.gz",
            p=gwr_in_split("train"),
            f=["ct_hu", "labels"],
        ),
    output:
        "results/gwr/fingerprint.json",
    log:
        "logs/gwr/gwr_fingerprint/all.log",
    benchmark:
        "logs/gwr/gwr_fingerprint/all.benchmark.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        roi_mm=lambda wc: gwr_cfg()["roi_mm"],
    script:
        "../scripts/gwr_fingerprint.py"


rule gwr_train:
    input:
        split="results/gwr/split.tsv",
        fingerprint="results/gwr/fingerprint.json",
        images=lambda wc: expand(
            "results/gwr/preprocessed/{p}/{f}.nii.gz",
            p=gwr_patients(),
            f=["ct_hu", "labels"],
        ),
    output:
        model="results/gwr/train/{gwrmodel}/model.pt",
        history="results/gwr/train/{gwrmodel}/history.tsv",
        curve=report(
            "results/gwr/train/{gwrmodel}/training_curve.png",
            caption="../report/gwr_curve.rst",
            category="gwr",
            subcategory="training curves",
        ),
    log:
        "logs/gwr/gwr_train/{gwrmodel}.log",
    benchmark:
        "logs/gwr/gwr_train/{gwrmodel}.benchmark.tsv"
    priority: 10
    conda:
        "../../envs/torch.yaml"
    # the study's one training job: at least two threads (ms/qq train several side by side)
    threads: max(config["train_threads"], 2)
    resources:
        gpu=GPU_PER_JOB,
        mem_mb=8000,
        runtime=240,
    params:
        cfg=lambda wc: {k: gwr_cfg()[k] for k in GWR_TRAIN_KEYS},
        split=lambda wc: gwr_split(),
        seed=config["seed"],
        device=config["device"],
    script:
        "../scripts/gwr_train.py"


rule gwr_predict:
    input:
        model="results/gwr/train/{gwrmodel}/model.pt",
        fingerprint="results/gwr/fingerprint.json",
        images=lambda wc: expand(
            "results/gwr/preprocessed/{p}/ct_hu.nii.gz", p=gwr_patients()
        ),
        ct=lambda wc: expand("results/gwr/ct/{p}.nii.gz", p=gwr_patients()),
    output:
        expand("results/gwr/pred/{{gwrmodel}}/{p}.nii.gz", p=gwr_patients()),
    log:
        "logs/gwr/gwr_predict/{gwrmodel}.log",
    benchmark:
        "logs/gwr/gwr_predict/{gwrmodel}.benchmark.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: config["train_threads"]
    resources:
        gpu=GPU_PER_JOB,
        mem_mb=8000,
        runtime=60,
    params:
        cfg=lambda wc: {
            k: gwr_cfg()[k]
            for k in ("patch_size", "patch_overlap", "model", "mirror_axes")
        },
        device=config["device"],
    script:
        "../scripts/gwr_predict.py"


rule gwr_evaluate:
    input:
        ct=lambda wc: expand("results/gwr/ct/{p}.nii.gz", p=gwr_patients()),
        reference=lambda wc: expand(
            "results/gwr/preprocessed/{p}/reference.nii.gz", p=gwr_patients()
        ),
        pred=lambda wc: expand(
            "results/gwr/pred/{m}/{p}.nii.gz", m=wc.anymodel, p=gwr_patients()
        ),
        outcomes=lambda wc: gwr_outcomes(),
    output:
        dice="results/gwr/eval/{anymodel}/dice.tsv",
        gwr="results/gwr/eval/{anymodel}/gwr.tsv",
        overlay=report(
            "results/gwr/eval/{anymodel}/overlay.png",
            caption="../report/gwr_overlay.rst",
            category="gwr",
            subcategory="overlays",
        ),
    log:
        "logs/gwr/gwr_evaluate/{anymodel}.log",
    benchmark:
        "logs/gwr/gwr_evaluate/{anymodel}.benchmark.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        patients=lambda wc: gwr_patients(),
        split=lambda wc: gwr_split(),
        threshold=lambda wc: gwr_cfg()["poor_gwr"],
    script:
        "../scripts/gwr_evaluate.py"


rule gwr_table:
    input:
        # so that the study's table target also builds the registration table
        registration="results/gwr/registration.tsv",
        dice=lambda wc: expand("results/gwr/eval/{m}/dice.tsv", m=gwr_models()),
        gwr=lambda wc: expand("results/gwr/eval/{m}/gwr.tsv", m=gwr_models()),
    output:
        summary=report(
            "results/gwr/summary.tsv",
            caption="../report/gwr_summary.rst",
            category="gwr",
        ),
        dice="results/gwr/dice.tsv",
        gwr=report(
            "results/gwr/gwr.tsv", caption="../report/gwr_gwr.rst", category="gwr"
        ),
        histogram=report(
            "results/gwr/dice_histogram.png",
            caption="../report/gwr_summary.rst",
            category="gwr",
        ),
    log:
        "logs/gwr/gwr_table/all.log",
    benchmark:
        "logs/gwr/gwr_table/all.benchmark.tsv"
    # cheap: runs on the submitting host on a cluster
    localrule: True
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    params:
        threshold=lambda wc: gwr_cfg()["poor_gwr"],
    script:
        "../scripts/gwr_table.py"


rule gwr_nnunet_dataset:
    input:
        ct=lambda wc: expand("results/gwr/ct/{p}.nii.gz", p=gwr_patients()),
        labels=lambda wc: expand(
            "results/gwr/preprocessed/{p}/reference.nii.gz", p=gwr_patients()
        ),
    output:
        f"{GWR_NNUNET}/nnUNet_raw/{gwr_nnunet_dataset()}/dataset.json",
    log:
        "logs/gwr/gwr_nnunet_dataset/all.log",
    benchmark:
        "logs/gwr/gwr_nnunet_dataset/all.benchmark.tsv"
    conda:
        "../../envs/nnunet.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        patients=lambda wc: gwr_patients(),
        dataset_id=lambda wc: gwr_cfg()["nnunet"]["dataset_id"],
    script:
        "../scripts/gwr_nnunet_dataset.py"


rule gwr_nnunet_plan:
    input:
        f"{GWR_NNUNET}/nnUNet_raw/{gwr_nnunet_dataset()}/dataset.json",
    output:
        plans=f"{GWR_NNUNET}/nnUNet_preprocessed/{gwr_nnunet_dataset()}/nnUNetPlans.json",
        split=f"{GWR_NNUNET}/nnUNet_preprocessed/{gwr_nnunet_dataset()}/splits_final.json",
    log:
        "logs/gwr/gwr_nnunet_plan/all.log",
    benchmark:
        "logs/gwr/gwr_nnunet_plan/all.benchmark.tsv"
    conda:
        "../../envs/nnunet.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        dataset_id=lambda wc: gwr_cfg()["nnunet"]["dataset_id"],
        split=lambda wc: gwr_split(),
    script:
        "../scripts/gwr_nnunet_plan.py"


rule gwr_nnunet_train:
    input:
        plans=f"{GWR_NNUNET}/nnUNet_preprocessed/{gwr_nnunet_dataset()}/nnUNetPlans.json",
        split=f"{GWR_NNUNET}/nnUNet_preprocessed/{gwr_nnunet_dataset()}/splits_final.json",
    output:
        gwr_nnunet_checkpoint(),
    log:
        "logs/gwr/gwr_nnunet_train/all.log",
    benchmark:
        "logs/gwr/gwr_nnunet_train/all.benchmark.tsv"
    priority: 10
    conda:
        "../../envs/nnunet.yaml"
    threads: config["train_threads"]
    resources:
        gpu=GPU_PER_JOB,
        mem_mb=16000,
        runtime=2880,
    params:
        cfg=lambda wc: gwr_cfg()["nnunet"],
        seed=config["seed"],
        device=config["device"],
    script:
        "../scripts/gwr_nnunet_train.py"


rule gwr_nnunet_predict:
    input:
        checkpoint=gwr_nnunet_checkpoint(),
        ct=lambda wc: expand("results/gwr/ct/{p}.nii.gz", p=gwr_patients()),
    output:
        expand("results/gwr/pred/nnunet/{p}.nii.gz", p=gwr_patients()),
    log:
        "logs/gwr/gwr_nnunet_predict/all.log",
    benchmark:
        "logs/gwr/gwr_nnunet_predict/all.benchmark.tsv"
    conda:
        "../../envs/nnunet.yaml"
    threads: config["train_threads"]
    resources:
        gpu=GPU_PER_JOB,
        mem_mb=8000,
        runtime=120,
    params:
        mirroring=lambda wc: gwr_cfg()["nnunet"]["mirroring"],
        device=config["device"],
    script:
        "../scripts/gwr_nnunet_predict.py"
