rule mgmt_phantom:
    output:
        train=directory(f"{MGMT_PHANTOM_ROOT}/train"),
        labels=f"{MGMT_PHANTOM_ROOT}/train_labels.csv",
        planted=MGMT_PLANTED,
    log:
        "logs/mgmt/mgmt_phantom/all.log",
    benchmark:
        "logs/mgmt/mgmt_phantom/all.benchmark.tsv"
    # first: a multi-threaded root job started early overlaps nothing; started later it
    # waits for both cores to drain while one-thread jobs could run (README "Speed")
    priority: 20
    conda:
        "../../envs/imaging.yaml"
    # one job, patients in parallel processes: a job per patient would pay a Python start-up
    # each for ~1.5 s of work
    threads: 8
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        seed=config["seed"],
        phantom=lambda wc: mgmt_cfg()["phantom"],
    script:
        "../scripts/mgmt_phantom.py"


rule mgmt_ingest:
    input:
        labels=lambda wc: f"{mgmt_root()}/train_labels.csv",
        patients=mgmt_shard_input,
    output:
        directory("results/mgmt/cases/shard{shard}"),
    log:
        "logs/mgmt/mgmt_ingest/shard{shard}.log",
    benchmark:
        "logs/mgmt/mgmt_ingest/shard{shard}.benchmark.tsv"
    wildcard_constraints:
        shard=r"[0-9]+",
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        root=lambda wc: mgmt_root(),
        ids=lambda wc: mgmt_shard_ids(wc.shard),
        dicom=config["dicom"],
        cfg=lambda wc: {k: mgmt_cfg()[k] for k in ("series", "series_2d", "preprocess")},
    script:
        "../scripts/mgmt_ingest.py"


rule mgmt_splits:
    input:
        lambda wc: f"{mgmt_root()}/train_labels.csv",
    output:
        "results/mgmt/splits.tsv",
    log:
        "logs/mgmt/mgmt_splits/all.log",
    benchmark:
        "logs/mgmt/mgmt_splits/all.benchmark.tsv"
    # cheap: runs on the submitting host on a cluster
    localrule: True
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        root=lambda wc: mgmt_root(),
        exclude=lambda wc: mgmt_cfg()["exclude"],
        split=lambda wc: mgmt_cfg()["split"],
        seed=config["seed"],
    script:
        "../scripts/mgmt_splits.py"


rule mgmt_train:
    input:
        splits="results/mgmt/splits.tsv",
        cases=lambda wc: mgmt_cases(),
    output:
        model="results/mgmt/train/{mgmtmodel}/{split}/model.pt",
        history="results/mgmt/train/{mgmtmodel}/{split}/history.tsv",
        curve=report(
            "results/mgmt/train/{mgmtmodel}/{split}/training_curve.png",
            caption="../report/mgmt_curve.rst",
            category="mgmt",
            subcategory="training curves",
        ),
        pred="results/mgmt/pred/{mgmtmodel}/{split}.tsv",
        confusion=report(
            "results/mgmt/confusion/{mgmtmodel}_{split}.png",
            caption="../report/mgmt_confusion.rst",
            category="mgmt",
            subcategory="confusion matrices",
        ),
    log:
        "logs/mgmt/mgmt_train/{mgmtmodel}_{split}.log",
    benchmark:
        "logs/mgmt/mgmt_train/{mgmtmodel}_{split}.benchmark.tsv"
    priority: 10
    conda:
        "../../envs/torch.yaml"
    threads: config["train_threads"]
    resources:
        gpu=GPU_PER_JOB,
        mem_mb=6000,
        runtime=240,
    params:
        cfg=lambda wc: {k: mgmt_cfg()[k] for k in MGMT_TRAIN_KEYS},
        seed=config["seed"],
        device=config["device"],
    script:
        "../scripts/mgmt_train.py"


rule mgmt_table:
    input:
        splits="results/mgmt/splits.tsv",
        pred=lambda wc: expand(
            "results/mgmt/pred/{m}/{s}.tsv",
            m=MGMT_MODELS,
            s=mgmt_splits_names(),
        ),
        planted=lambda wc: [MGMT_PLANTED] if mgmt_phantom() else [],
    output:
        folds="results/mgmt/folds.tsv",
        summary=report(
            "results/mgmt/summary.tsv",
            caption="../report/mgmt_summary.rst",
            category="mgmt",
        ),
        holdout=report(
            "results/mgmt/holdout.tsv",
            caption="../report/mgmt_summary.rst",
            category="mgmt",
        ),
        roc=report(
            "results/mgmt/roc.png",
            caption="../report/mgmt_summary.rst",
            category="mgmt",
        ),
    log:
        "logs/mgmt/mgmt_table/all.log",
    benchmark:
        "logs/mgmt/mgmt_table/all.benchmark.tsv"
    # cheap: runs on the submitting host on a cluster
    localrule: True
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        effect=lambda wc: mgmt_cfg()["phantom"]["effect"],
        bootstrap=lambda wc: mgmt_cfg()["bootstrap"],
        seed=config["seed"],
    script:
        "../scripts/mgmt_table.py"
