# rrlsrn-bench: reproduce and extend Song et al. 2022 (RRLSRN). See README.md.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/infer.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"


rule all:
    input:
        all_outputs(),
    default_target: True
