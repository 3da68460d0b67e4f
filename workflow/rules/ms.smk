rule ms_phantom:
    output:
        expand(
            "resources/ms/phantom/training/training{index}/preprocessed/training{index}_01_{ch}_pp.nii",
            index=ms_phantom_indices(),
            ch=["flair", "mprage", "pd", "t2"],
        ),
        expand(
            "resources/ms/phantom/training/training{index}/masks/training{index}_01_mask{r}.nii",
            index=ms_phantom_indices(),
            r=[1, 2],
        ),
    log:
        "logs/ms/ms_phantom/all.log",
    benchmark:
        "logs/ms/ms_phantom/all.benchmark.tsv"
    # first: a multi-threaded root job started early overlaps nothing; started later it
    # waits for both cores to drain while one-thread jobs could run (README "Speed")
    priority: 20
    conda:
        "../../envs/imaging.yaml"
    # one job, subjects in parallel processes: a job per subject would pay a Python start-up
    # and an MNI152 template build each for ~2 s of work
    threads: 8
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        seed=config["seed"],
        phantom=lambda wc: ms_cfg()["phantom"],
        brain=config["brain_phantom"],
    script:
        "../scripts/ms_phantom.py"


rule ms_preprocess:
    input:
        ms_case_files,
    output:
        expand(
            "results/ms/preprocessed/{{case}}/{file}.nii.gz",
            file=[*ms_available_channels(), "mask"],
        ),
    log:
        "logs/ms/ms_preprocess/{case}.log",
    benchmark:
        "logs/ms/ms_preprocess/{case}.benchmark.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        spacing_mm=lambda wc: ms_cfg()["spacing_mm"],
        normalise=lambda wc: ms_cfg()["normalise"],
    script:
        "../scripts/ms_preprocess.py"


rule ms_split:
    output:
        "results/ms/split.tsv",
    log:
        "logs/ms/ms_split/all.log",
    benchmark:
        "logs/ms/ms_split/all.benchmark.tsv"
    # cheap: runs on the submitting host on a cluster
    localrule: True
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        cases=lambda wc: ms_cases(),
        seed=config["seed"],
        fractions=lambda wc: ms_cfg()["split"],
    script:
        "../scripts/ms_split.py"


rule ms_train:
    input:
        split="results/ms/split.tsv",
        images=lambda wc: ms_preprocessed(),
    output:
        model="results/ms/train/{model}/{channel}/model.pt",
        history="results/ms/train/{model}/{channel}/history.tsv",
        curve=report(
            "results/ms/train/{model}/{channel}/training_curve.png",
            caption="../report/ms_curve.rst",
            category="ms",
            subcategory="training curves",
        ),
    log:
        "logs/ms/ms_train/{model}_{channel}.log",
    benchmark:
        "logs/ms/ms_train/{model}_{channel}.benchmark.tsv"
    # longest jobs first: evaluations and baselines then fill the cores while the last train
    priority: 10
    conda:
        "../../envs/torch.yaml"
    threads: config["train_threads"]
    resources:
        gpu=GPU_PER_JOB,
        mem_mb=8000,
        runtime=240,
    params:
        cfg=lambda wc: {
            **{k: v for k, v in ms_cfg().items() if k != "train_overrides"},
            "train": ms_train_settings(wc.channel),
        },
        channels=lambda wc: ms_available_channels(),
        seed=config["seed"],
        device=config["device"],
    script:
        "../scripts/ms_train.py"


rule ms_evaluate:
    input:
        split="results/ms/split.tsv",
        model="results/ms/train/{model}/{channel}/model.pt",
        images=lambda wc: ms_preprocessed(),
    output:
        table="results/ms/eval/{model}/{channel}.tsv",
        overlay=report(
            "results/ms/eval/{model}/{channel}_overlay.png",
            caption="../report/ms_overlay.rst",
            category="ms",
            subcategory="overlays",
        ),
    log:
        "logs/ms/ms_evaluate/{model}_{channel}.log",
    benchmark:
        "logs/ms/ms_evaluate/{model}_{channel}.benchmark.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: config["train_threads"]
    resources:
        gpu=GPU_PER_JOB,
        mem_mb=8000,
        runtime=60,
    params:
        cfg=lambda wc: ms_inference_cfg(),
        channels=lambda wc: ms_available_channels(),
        device=config["device"],
    script:
        "../scripts/ms_evaluate.py"


rule ms_threshold_baseline:
    input:
        split="results/ms/split.tsv",
        images=lambda wc: ms_preprocessed(),
    output:
        table="results/ms/eval/threshold/{channel}.tsv",
        rule="results/ms/eval/threshold/{channel}.json",
    log:
        "logs/ms/ms_threshold_baseline/{channel}.log",
    benchmark:
        "logs/ms/ms_threshold_baseline/{channel}.benchmark.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    script:
        "../scripts/ms_threshold_baseline.py"


rule ms_table:
    input:
        runs=lambda wc: [f"results/ms/eval/{m}/{c}.tsv" for m, c in ms_runs()],
        baselines=lambda wc: expand(
            "results/ms/eval/threshold/{channel}.tsv", channel=ms_available_channels()
        ),
    output:
        table=report(
            "results/ms/dsc.tsv", caption="../report/ms_dsc.rst", category="ms"
        ),
        per_case="results/ms/per_subject.tsv",
    log:
        "logs/ms/ms_table/all.log",
    benchmark:
        "logs/ms/ms_table/all.benchmark.tsv"
    # cheap: runs on the submitting host on a cluster
    localrule: True
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/ms_table.py"


rule ms_real_preprocess:
    input:
        ms_real_case_files,
    output:
        expand(
            "results/ms/real/preprocessed/{{case}}/{file}.nii.gz",
            file=[*ms_real_channels(), "mask"],
        ),
    log:
        "logs/ms/ms_real_preprocess/{case}.log",
    benchmark:
        "logs/ms/ms_real_preprocess/{case}.benchmark.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        # the grid the models were trained on (anti-aliased: a 1 mm scan looks like one
        # acquired at the demo's voxel size)
        spacing_mm=lambda wc: ms_model_spacing(),
        normalise=lambda wc: ms_cfg()["normalise"],
    script:
        "../scripts/ms_preprocess.py"


rule ms_real:
    input:
        models=lambda wc: [f"results/ms/train/{m}/{c}/model.pt" for m, c in ms_runs()],
        thresholds=lambda wc: expand(
            "results/ms/eval/threshold/{channel}.json", channel=ms_real_channels()
        ),
        images=lambda wc: ms_real_preprocessed(),
        native_masks=lambda wc: [str(c.mask) for c in ms_real_check_cases().values()],
    output:
        report("results/ms/real.tsv", caption="../report/ms_real.rst", category="ms"),
    log:
        "logs/ms/ms_real/all.log",
    benchmark:
        "logs/ms/ms_real/all.benchmark.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: config["train_threads"]
    resources:
        gpu=GPU_PER_JOB,
        mem_mb=8000,
        runtime=30,
    params:
        runs=lambda wc: ms_runs(),
        channels=lambda wc: ms_available_channels(),
        cases=lambda wc: list(ms_real_check_cases()),
        cfg=lambda wc: ms_inference_cfg(),
        device=config["device"],
    script:
        "../scripts/ms_real.py"
