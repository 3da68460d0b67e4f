"""Rule ms_evaluate: sliding-window inference on the test cases; metrics and an overlay."""

from pathlib import Path

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.evaluate.plots import plot_montage
from voxflow.io.images import read_image
from voxflow.io.tables import read_tsv, write_tsv
from voxflow.logs import rule_logging
from voxflow.studies.ms import channels_of, evaluate_model

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    cfg, wc = snakemake.params.cfg, snakemake.wildcards
    split = read_tsv(snakemake.input.split, required=["case", "split"])
    pre = Path(snakemake.input.images[0]).parents[1]
    test = [pre / c for c in split.loc[split.split == "test", "case"]]
    table, preds = evaluate_model(
        wc.model,
        wc.channel,
        snakemake.params.channels,
        Path(snakemake.input.model),
        test,
        cfg,
        snakemake.params.device,
    )
    log.info("test metrics:\n%s", table.to_string(index=False))
    write_tsv(table, snakemake.output.table)
    first = test[0]
    image = read_image(first / f"{channels_of(wc.channel, snakemake.params.channels)[0]}.nii.gz")
    truth = read_image(first / "mask.nii.gz").data
    pred = (preds[first.name] >= cfg["threshold"]).astype(float)
    plot_montage(
        [image.data] * 3,
        [first.name, "truth", f"{wc.model} {wc.channel}"],
        snakemake.output.overlay,
        overlays=[None, truth, pred],
        row_labels=["axial", "coronal", "sagittal"],
    )
