rule qq_phantom:
    input:
        expand("resources/brain/{{subject}}/{map}.nii.gz", map=BRAIN_MAPS),
    output:
        expand("resources/qq/phantom/{{subject}}/{f}", f=QQ_FILES),
    log:
        "logs/qq/qq_phantom/{subject}.log",
    benchmark:
        "logs/qq/qq_phantom/{subject}.benchmark.tsv"
    conda:
        "../../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    params:
        seed=config["seed"],
        # the cohort size is not a subject's setting: growing the cohort keeps the others
        phantom=lambda wc: {
            k: v for k, v in qq_cfg()["phantom"].items() if k != "subjects"
        },
        n_echoes=lambda wc: qq_cfg()["n_echoes"],
    script:
        "../scripts/qq_phantom.py"


rule qq_crop:
    input:
        qq_subject_files,
    output:
        expand(
            "results/qq/cropped/{{subject}}/{f}.nii.gz",
            f=["inputs", "targets", "mask"],
        ),
    log:
        "logs/qq/qq_crop/{subject}.log",
    benchmark:
        "logs/qq/qq_crop/{subject}.benchmark.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        crop=lambda wc: qq_cfg()["crop"],
        n_echoes=lambda wc: qq_cfg()["n_echoes"],
    script:
        "../scripts/qq_crop.py"


rule qq_split:
    output:
        "results/qq/split.tsv",
    log:
        "logs/qq/qq_split/all.log",
    benchmark:
        "logs/qq/qq_split/all.benchmark.tsv"
    # cheap: runs on the submitting host on a cluster
    localrule: True
    conda:
        "../../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        table=lambda wc: qq_split(),
        columns=["subject", "split"],
    script:
        "../scripts/split_table.py"


rule qq_normalisation:
    input:
        split="results/qq/split.tsv",
        train=lambda wc: qq_cropped(qq_in_split("train")),
    output:
        "results/qq/normalisation.json",
    log:
        "logs/qq/qq_normalisation/all.log",
    benchmark:
        "logs/qq/qq_normalisation/all.benchmark.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        input_transform=lambda wc: qq_cfg()["input_transform"],
    script:
        "../scripts/qq_normalisation.py"


rule qq_train:
    input:
        norm="results/qq/normalisation.json",
        train=lambda wc: qq_cropped(qq_in_split("train")),
        val=lambda wc: qq_cropped(qq_in_split("val")),
    output:
        model="results/qq/train/{qqmodel}/model.pt",
        history="results/qq/train/{qqmodel}/history.tsv",
        curve=report(
            "results/qq/train/{qqmodel}/training_curve.png",
            caption="../report/qq_curve.rst",
            category="qq",
            subcategory="training curves",
        ),
    log:
        "logs/qq/qq_train/{qqmodel}.log",
    benchmark:
        "logs/qq/qq_train/{qqmodel}.benchmark.tsv"
    # longest jobs first: the fit and evaluations then fill the cores
    priority: 10
    conda:
        "../../envs/torch.yaml"
    threads: config["train_threads"]
    resources:
        gpu=GPU_PER_JOB,
        mem_mb=8000,
        runtime=480,
    params:
        cfg=lambda wc: {k: v for k, v in qq_cfg().items() if k != "fit"},
        seed=config["seed"],
        device=config["device"],
    script:
        "../scripts/qq_train.py"


rule qq_evaluate:
    input:
        norm="results/qq/normalisation.json",
        model="results/qq/train/{qqmodel}/model.pt",
        test=lambda wc: qq_cropped(qq_in_split("test")),
    output:
        table="results/qq/eval/{qqmodel}.tsv",
        pred=expand(
            "results/qq/pred/{{qqmodel}}/{subject}.nii.gz", subject=qq_in_split("test")
        ),
    log:
        "logs/qq/qq_evaluate/{qqmodel}.log",
    benchmark:
        "logs/qq/qq_evaluate/{qqmodel}.benchmark.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: config["train_threads"]
    resources:
        gpu=GPU_PER_JOB,
        mem_mb=8000,
        runtime=60,
    params:
        cfg=lambda wc: {"model": qq_cfg()["model"]},
        device=config["device"],
    script:
        "../scripts/qq_evaluate.py"


rule qq_fit:
    input:
        norm="results/qq/normalisation.json",
        cropped=qq_cropped(["{subject}"]),
        echo_times=lambda wc: f"{qq_root()}/{wc.subject}/echo_times.json",
    output:
        table="results/qq/eval/nlls/{subject}.tsv",
        pred="results/qq/pred/nlls/{subject}.nii.gz",
    log:
        "logs/qq/qq_fit/{subject}.log",
    benchmark:
        "logs/qq/qq_fit/{subject}.benchmark.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        fit=lambda wc: qq_cfg()["fit"],
    script:
        "../scripts/qq_fit.py"


rule qq_table:
    input:
        runs=lambda wc: expand("results/qq/eval/{m}.tsv", m=qq_cfg()["models"]),
        fits=lambda wc: (
            expand("results/qq/eval/nlls/{s}.tsv", s=qq_in_split("test"))
            if qq_cfg()["fit"]["enabled"]
            else []
        ),
        preds=lambda wc: expand(
            "results/qq/pred/{m}/{s}.nii.gz",
            m=qq_cfg()["models"] + (["nlls"] if qq_cfg()["fit"]["enabled"] else []),
            s=qq_in_split("test")[:1],
        ),
        truth=lambda wc: qq_cropped(qq_in_split("test")[:1]),
        test=lambda wc: qq_cropped(qq_in_split("test")),
        norm="results/qq/normalisation.json",
    output:
        table=report(
            "results/qq/rmse.tsv", caption="../report/qq_rmse.rst", category="qq"
        ),
        oef=report(
            "results/qq/oef_rmse.tsv", caption="../report/qq_rmse.rst", category="qq"
        ),
        figure=report(
            "results/qq/oef_maps.png",
            caption="../report/qq_oef_maps.rst",
            category="qq",
        ),
    log:
        "logs/qq/qq_table/all.log",
    benchmark:
        "logs/qq/qq_table/all.benchmark.tsv"
    # cheap: runs on the submitting host on a cluster
    localrule: True
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    script:
        "../scripts/qq_table.py"
