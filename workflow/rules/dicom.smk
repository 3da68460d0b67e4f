rule dicom_to_nifti:
    input:
        dicom_folder,
    output:
        nifti="results/dicom/{name}.nii.gz",
        sidecar="results/dicom/{name}.json",
    log:
        "logs/dicom/dicom_to_nifti/{name}.log",
    benchmark:
        "logs/dicom/dicom_to_nifti/{name}.benchmark.tsv"
    conda:
        "../../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        dicom=config["dicom"],
    script:
        "../scripts/dicom_to_nifti.py"
