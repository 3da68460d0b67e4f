"""Physical forward models (signal equations) used by the phantoms and the fits."""
