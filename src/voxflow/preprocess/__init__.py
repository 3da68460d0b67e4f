"""Preprocessing stages shared by the studies: cropping, intensity normalisation."""
