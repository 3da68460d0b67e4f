rule l3_phantom:
    output:
        ct=directory(f"{L3_PHANTOM_ROOT}/{{patient}}"),
        params=f"{L3_TRUTH_ROOT}/{{patient}}/params.json",
    log:
        "logs/l3/l3_phantom/{patient}.log",
    benchmark:
        "logs/l3/l3_phantom/{patient}.benchmark.tsv"
    wildcard_constraints:
        patient=r"p[0-9]+",
    conda:
        "../../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    params:
        seed=config["seed"],
        # the cohort size is not a patient's setting: growing the cohort keeps the others
        phantom=lambda wc: {
            k: v for k, v in l3_cfg()["phantom"].items() if k != "patients"
        },
    script:
        "../scripts/l3_phantom.py"


rule l3_phantom_labels:
    input:
        lambda wc: expand(f"{L3_TRUTH_ROOT}/{{p}}/params.json", p=l3_patients()),
    output:
        f"{L3_PHANTOM_ROOT}/l3_labels.csv",
    log:
        "logs/l3/l3_phantom_labels/all.log",
    benchmark:
        "logs/l3/l3_phantom_labels/all.benchmark.tsv"
    # cheap: runs on the submitting host on a cluster
    localrule: True
    conda:
        "../../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/l3_phantom_labels.py"


rule l3_ct_to_nifti:
    input:
        lambda wc: f"{l3_root()}/{wc.patient}",
    output:
        nifti="results/l3/ct/{patient}.nii.gz",
        sidecar="results/l3/ct/{patient}.json",
    log:
        "logs/l3/l3_ct_to_nifti/{patient}.log",
    benchmark:
        "logs/l3/l3_ct_to_nifti/{patient}.benchmark.tsv"
    conda:
        "../../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        # the axial series with most slices (a scout or sagittal reformat is skipped)
        dicom=lambda wc: {
            **config["dicom"],
            "series": {
                **config["dicom"]["series"],
                "plane": config["dicom"]["series"]["plane"] or "axial",
            },
        },
    script:
        "../scripts/dicom_to_nifti.py"


rule l3_preprocess:
    input:
        ct="results/l3/ct/{patient}.nii.gz",
        labels=l3_label_file,
    output:
        "results/l3/slices/{patient}.npz",
    log:
        "logs/l3/l3_preprocess/{patient}.log",
    benchmark:
        "logs/l3/l3_preprocess/{patient}.benchmark.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    params:
        labels=lambda wc: l3_cfg()["labels"],
        patients=lambda wc: l3_patients(),
        image_size=lambda wc: l3_cfg()["image_size"],
        window=lambda wc: l3_cfg()["window_hu"],
    script:
        "../scripts/l3_preprocess.py"


rule l3_folds:
    output:
        "results/l3/folds.tsv",
    log:
        "logs/l3/l3_folds/all.log",
    benchmark:
        "logs/l3/l3_folds/all.benchmark.tsv"
    # cheap: runs on the submitting host on a cluster
    localrule: True
    conda:
        "../../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        table=lambda wc: l3_folds(),
        columns=["patient", "fold"],
    script:
        "../scripts/split_table.py"


rule l3_tune:
    input:
        folds="results/l3/folds.tsv",
        slices=lambda wc: l3_slices(l3_fold_patients(wc.fold, "train")),
    output:
        "results/l3/optuna/{arm}/fold{fold}/worker{worker}.tsv",
    log:
        "logs/l3/l3_tune/{arm}_fold{fold}_worker{worker}.log",
    benchmark:
        "logs/l3/l3_tune/{arm}_fold{fold}_worker{worker}.benchmark.tsv"
    priority: 10
    conda:
        "../../envs/torch.yaml"
    threads: config["train_threads"]
    resources:
        gpu=GPU_PER_JOB,
        mem_mb=6000,
        runtime=720,
    params:
        # the study's journal: shared by the workers of one (arm, fold), kept after a kill
        journal=lambda wc: f"results/l3/optuna/{wc.arm}/fold{wc.fold}/study.journal",
        cfg=lambda wc: l3_train_cfg(),
        tune=lambda wc: l3_cfg()["tune"],
        seed=config["seed"],
        device=config["device"],
    script:
        "../scripts/l3_tune.py"


rule l3_best:
    input:
        lambda wc: expand(
            "results/l3/optuna/{{arm}}/fold{{fold}}/worker{w}.tsv",
            w=range(l3_cfg()["tune"]["workers"]),
        ),
    output:
        best="results/l3/optuna/{arm}/fold{fold}/best.json",
        trials="results/l3/optuna/{arm}/fold{fold}/trials.tsv",
    log:
        "logs/l3/l3_best/{arm}_fold{fold}.log",
    benchmark:
        "logs/l3/l3_best/{arm}_fold{fold}.benchmark.tsv"
    # cheap: runs on the submitting host on a cluster
    localrule: True
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    params:
        journal=lambda wc: f"results/l3/optuna/{wc.arm}/fold{wc.fold}/study.journal",
    script:
        "../scripts/l3_best.py"


rule l3_train:
    input:
        best="results/l3/optuna/{arm}/fold{fold}/best.json",
        slices=lambda wc: l3_slices(l3_fold_patients(wc.fold, "train")),
    output:
        model="results/l3/train/{arm}/fold{fold}/model.pt",
        history="results/l3/train/{arm}/fold{fold}/history.tsv",
        curve=report(
            "results/l3/train/{arm}/fold{fold}/training_curve.png",
            caption="../report/l3_curve.rst",
            category="l3",
            subcategory="training curves",
        ),
    log:
        "logs/l3/l3_train/{arm}_fold{fold}.log",
    benchmark:
        "logs/l3/l3_train/{arm}_fold{fold}.benchmark.tsv"
    priority: 10
    conda:
        "../../envs/torch.yaml"
    threads: config["train_threads"]
    resources:
        gpu=GPU_PER_JOB,
        mem_mb=6000,
        runtime=240,
    params:
        cfg=lambda wc: l3_train_cfg(),
        seed=config["seed"],
        device=config["device"],
    script:
        "../scripts/l3_train.py"


rule l3_predict:
    input:
        model="results/l3/train/{arm}/fold{fold}/model.pt",
        slices=lambda wc: l3_slices(l3_fold_patients(wc.fold, "test")),
    output:
        "results/l3/pred/{arm}/fold{fold}.tsv",
    log:
        "logs/l3/l3_predict/{arm}_fold{fold}.log",
    benchmark:
        "logs/l3/l3_predict/{arm}_fold{fold}.benchmark.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: config["train_threads"]
    resources:
        gpu=GPU_PER_JOB,
        mem_mb=4000,
        runtime=30,
    params:
        cfg=lambda wc: {k: l3_cfg()[k] for k in ("model", "context_mm")},
        device=config["device"],
    script:
        "../scripts/l3_predict.py"


rule l3_table:
    input:
        folds="results/l3/folds.tsv",
        pred=lambda wc: [f"results/l3/pred/{a}/fold{f}.tsv" for a, f in l3_runs()],
        best=lambda wc: [
            f"results/l3/optuna/{a}/fold{f}/best.json" for a, f in l3_runs()
        ],
        trials=lambda wc: [
            f"results/l3/optuna/{a}/fold{f}/trials.tsv" for a, f in l3_runs()
        ],
        slices=lambda wc: l3_slices(l3_patients()),
    output:
        errors="results/l3/slice_error.tsv",
        summary=report(
            "results/l3/summary.tsv", caption="../report/l3_summary.rst", category="l3"
        ),
        scatter=report(
            "results/l3/scatter.png", caption="../report/l3_summary.rst", category="l3"
        ),
        best="results/l3/best_params.tsv",
        history=report(
            "results/l3/optuna_history.png",
            caption="../report/l3_tuning.rst",
            category="l3",
        ),
    log:
        "logs/l3/l3_table/all.log",
    benchmark:
        "logs/l3/l3_table/all.benchmark.tsv"
    # cheap: runs on the submitting host on a cluster
    localrule: True
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        runs=lambda wc: l3_runs(),
        decode=lambda wc: l3_cfg()["decode"],
    script:
        "../scripts/l3_table.py"
