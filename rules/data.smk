rule prepare_subject:
    input:
        unpack(subject_inputs),
    output:
        f"{RESULTS}/data/{{dataset}}/{{subject}}.npz",
    log:
        f"{RESULTS}/logs/prepare/{{dataset}}/{{subject}}.log",
    conda:
        "../envs/rrlsrn.yaml"
    params:
        scale=pipeline.data_scale(config),
        slicing=slice_options,
    script:
        "../workflow_scripts/prepare_subject.py"


rule split:
    output:
        f"{RESULTS}/splits/{{dataset}}.tsv",
    log:
        f"{RESULTS}/logs/split/{{dataset}}.log",
    conda:
        "../envs/rrlsrn.yaml"
    params:
        split=dataset_split,
    script:
        "../workflow_scripts/split.py"


rule kirby21_session:
    output:
        "{kirby_root}/KKI2009-{nn}/KKI2009-{nn}-MPRAGE.nii",
    log:
        "{kirby_root}/logs/KKI2009-{nn}.log",
    wildcard_constraints:
        nn=r"\d\d",
    retries: 3
    conda:
        "../envs/rrlsrn.yaml"
    params:
        base_url=kirby21_base_url,
    script:
        "../workflow_scripts/kirby21_session.py"


rule manifest:
    input:
        dataset_prepared_files,
    output:
        f"{RESULTS}/manifests/{{dataset}}.tsv",
    log:
        f"{RESULTS}/logs/manifest/{{dataset}}.log",
    conda:
        "../envs/rrlsrn.yaml"
    params:
        units=dataset_units,
        split=dataset_split,
        facts=unit_facts,
    script:
        "../workflow_scripts/manifest.py"


rule data_summary:
    input:
        expand(f"{RESULTS}/manifests/{{dataset}}.tsv", dataset=DATASETS),
    output:
        report(
            f"{RESULTS}/tables/data_summary.md",
            caption="../report/data_summary.rst",
            category="Data",
        ),
        csv=f"{RESULTS}/tables/data_summary.csv",
        tex=f"{RESULTS}/tables/data_summary.tex",
    log:
        f"{RESULTS}/logs/data_summary.log",
    conda:
        "../envs/rrlsrn.yaml"
    script:
        "../workflow_scripts/data_summary.py"


rule mialsrtk_sample:
    output:
        expand("{{fetal_root}}/{file}", file=MIALSRTK_FILES),
    log:
        "{fetal_root}/logs/mialsrtk_sample.log",
    wildcard_constraints:
        fetal_root=NOT_EMBEDDED,
    retries: 3
    conda:
        "../envs/rrlsrn.yaml"
    params:
        base_url=mialsrtk_base_url,
    script:
        "../workflow_scripts/mialsrtk_sample.py"


rule ixi_archive:
    output:
        "{ixi_root}/IXI-{contrast}.index.tsv",
    log:
        "{ixi_root}/logs/IXI-{contrast}.log",
    wildcard_constraints:
        contrast="T1|T2|PD",
        ixi_root=NOT_EMBEDDED,
    retries: 3
    conda:
        "../envs/rrlsrn.yaml"
    params:
        spec=ixi_spec,
    script:
        "../workflow_scripts/ixi_archive.py"


rule ixi_volume:
    input:
        "{ixi_root}/IXI-{contrast}.index.tsv",
    output:
        "{ixi_root}/IXI-{contrast}/{subject}-{contrast}.nii.gz",
    log:
        "{ixi_root}/logs/IXI-{contrast}/{subject}.log",
    wildcard_constraints:
        contrast="T1|T2|PD",
        subject=r"IXI\d{3}-(Guys|HH|IOP)-\d{4}",
        ixi_root=NOT_EMBEDDED,
    conda:
        "../envs/rrlsrn.yaml"
    script:
        "../workflow_scripts/ixi_volume.py"


rule openneuro_file:
    output:
        "{openneuro_root}/{accession}/{key}",
    log:
        "{openneuro_root}/logs/{accession}/{key}.log",
    wildcard_constraints:
        accession=r"ds\d{6}",
        key=r"sub-[^/]+/(ses-[^/]+/)?anat/[^/]+\.nii(\.gz)?",
        openneuro_root=NOT_EMBEDDED,
    retries: 3
    conda:
        "../envs/rrlsrn.yaml"
    params:
        obj=openneuro_file_params,
    script:
        "../workflow_scripts/openneuro_file.py"
