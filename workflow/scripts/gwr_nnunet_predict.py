"""Rule gwr_nnunet_predict: nnU-Net labels for every patient, on each patient's CT grid."""

from pathlib import Path

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.logs import rule_logging
from voxflow.nnunet import predict

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

if __name__ == "__main__":  # nnU-Net's process pools re-import this file ("spawn")
    with rule_logging(snakemake.log[0]) as log:
        out = predict(
            snakemake.input.checkpoint,
            list(snakemake.input.ct),
            Path(snakemake.output[0]).parent,
            device=snakemake.params.device,
            use_mirroring=snakemake.params.mirroring,
        )
        log.info("predicted %d patients", len(out))
