# rrlsrn-bench: reproduce and extend Song et al. 2022 (RRLSRN). See README.md.
import os

from snakemake.utils import min_version

min_version("9.0")

# Jobs in per-rule conda envs (--software-deployment-method conda) import rrlsrn and
# baselines from this folder, not from the envs: Snakemake puts the Snakefile's folder on
# its sys.path and each `script:` preamble appends that path to the job's (checked by
# tests/test_workflow.py), so no PYTHONPATH needs setting here.


configfile: os.path.join(workflow.basedir, "config.yaml")


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/protocol_inputs.smk"
include: "rules/transfer_inputs.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/infer.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"
include: "rules/protocols.smk"
include: "rules/transfer.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
        protocol_outputs(),
        transfer_outputs(),
