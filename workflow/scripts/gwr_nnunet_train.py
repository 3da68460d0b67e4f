"""Rule gwr_nnunet_train: nnU-Net 3d_fullres, fold 0 (short schedule or nnU-Net's default)."""

from pathlib import Path

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.logs import rule_logging
from voxflow.nnunet import train

# nnU-Net's process pools ("spawn") re-import this file from its path, without Snakemake's
# preamble: everything, `snakemake` included, stays under the guard
if __name__ == "__main__":
    snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)
    with rule_logging(snakemake.log[0]) as log:
        cfg = snakemake.params.cfg
        root = Path(snakemake.input.plans).parents[2]
        log.info("nnU-Net training: %s", cfg)
        checkpoint = train(
            cfg["dataset_id"],
            root,
            fold=0,
            epochs=cfg["epochs"],
            iterations_per_epoch=cfg["iterations_per_epoch"],
            val_iterations=cfg["val_iterations"],
            device=snakemake.params.device,
            seed=snakemake.params.seed,
        )
        if Path(checkpoint).resolve() != Path(snakemake.output[0]).resolve():
            raise RuntimeError(
                f"nnU-Net wrote {checkpoint}, the rule expects {snakemake.output[0]}"
            )
