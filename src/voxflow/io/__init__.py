"""Reading and writing images, tables and checkpoints (atomically); DICOM conversion."""
