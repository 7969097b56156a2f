"""Tests for rrlsrn.tables: the paper's tables built from small metric files."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from rrlsrn.tables import (
    ablation_table,
    load_metrics,
    load_rule_benchmarks,
    load_runtimes,
    paired_table,
    published,
    quality_long,
    quality_table,
    runtime_table,
    write_paper_tables,
    write_table,
)

T_975_DF2 = 4.302652729911275  # Student t quantile, from printed tables

VALUES = {  # method -> subject -> per-slice PSNR
    "bicubic": {"s1": [30.0, 32.0], "s2": [28.0, 29.0, 30.0], "s3": [30.0]},
    "rrlsrn": {"s1": [33.0, 35.0], "s2": [30.0, 31.0, 35.0], "s3": [36.0]},
    "rrlsrn_no_gdl": {"s1": [33.0, 34.0], "s2": [30.0, 31.0, 32.0], "s3": [36.25]},
}


def hand_metrics(dataset: str = "adult") -> pd.DataFrame:
    """Per-slice rows; subject means: bicubic 31, 29, 30; rrlsrn 34, 32, 36;
    rrlsrn_no_gdl 33.5, 31, 36.25.  SSIM = PSNR / 40; masked PSNR = PSNR - 2."""
    rows = []
    for method, subjects in VALUES.items():
        for subject, psnrs in subjects.items():
            for k, v in enumerate(psnrs):
                rows.append(
                    {
                        "method": method,
                        "dataset": dataset,
                        "subject": subject,
                        "slice": 10 + k,
                        "psnr": v,
                        "ssim": v / 40,
                        "psnr_mask": v - 2.0,
                    }
                )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- Tables 1-3


def test_quality_table_by_hand():
    table = quality_table(hand_metrics(), "adult", ["bicubic", "rrlsrn"])
    assert list(table.columns) == ["Statistic", "Metric", "Bicubic", "RRLSRN"]
    assert list(table["Statistic"]) == ["n"] + ["Mean", "SD", "CI (95%)", "CI (paper-style)"] * 3
    assert list(table["Metric"])[1::4] == ["PSNR", "SSIM", "PSNR (mask)"]
    rows = table.set_index(["Statistic", "Metric"])
    assert rows.loc[("n", "subjects"), "RRLSRN"] == "3"
    # rrlsrn subject means 34, 32, 36: mean 34, SD 2, CI 34 +/- t * 2 / sqrt(3)
    half = T_975_DF2 * 2 / math.sqrt(3)
    assert rows.loc[("Mean", "PSNR"), "RRLSRN"] == "34.00"
    assert rows.loc[("SD", "PSNR"), "RRLSRN"] == "2.00"
    assert rows.loc[("CI (95%)", "PSNR"), "RRLSRN"] == f"[{34 - half:.2f},{34 + half:.2f}]"
    assert rows.loc[("CI (95%)", "PSNR"), "RRLSRN"] == "[29.03,38.97]"
    # the paper's way, n = 5 whatever the count: 34 +/- 2.776445 * 2 / sqrt(5) = 34 +/- 2.4833
    assert rows.loc[("CI (paper-style)", "PSNR"), "RRLSRN"] == "[31.52,36.48]"
    # bicubic subject means 31, 29, 30: SD 1; SSIM has four decimals: 30 / 40
    assert rows.loc[("Mean", "PSNR"), "Bicubic"] == "30.00"
    assert rows.loc[("SD", "PSNR"), "Bicubic"] == "1.00"
    assert rows.loc[("Mean", "SSIM"), "Bicubic"] == "0.7500"
    assert rows.loc[("Mean", "PSNR (mask)"), "Bicubic"] == "28.00"


def test_quality_table_puts_the_papers_values_beside_each_method():
    table = quality_table(hand_metrics(), "adult", ["bicubic", "rrlsrn", "absent"], "kirby21")
    # the paper has no bicubic column; absent methods are dropped
    assert list(table.columns) == ["Statistic", "Metric", "Bicubic", "RRLSRN", "RRLSRN (paper)"]
    rows = table.set_index(["Statistic", "Metric"])
    assert rows.loc[("Mean", "PSNR"), "RRLSRN (paper)"] == "37.16"  # Table 1, "Ours"
    # the paper's printed interval sits on the row computed its way
    assert rows.loc[("CI (paper-style)", "SSIM"), "RRLSRN (paper)"] == "[0.9886,0.9919]"
    assert rows.loc[("CI (95%)", "SSIM"), "RRLSRN (paper)"] == ""
    assert rows.loc[("Mean", "PSNR (mask)"), "RRLSRN (paper)"] == ""  # the paper has none
    with pytest.raises(ValueError, match="no metrics for dataset 'fetal'"):
        quality_table(hand_metrics(), "fetal", ["rrlsrn"])


def test_quality_long_has_both_units_and_paper_values():
    long = quality_long(hand_metrics(), {"adult": "namic"})
    row = long.set_index(["method", "metric", "unit"]).loc[("rrlsrn", "psnr", "subject")]
    assert row["n"] == 3 and row["mean"] == pytest.approx(34.0)
    assert row["paper_mean"] == 35.56 and row["paper_ci_high"] == 35.99  # Table 2
    per_slice = long.set_index(["method", "metric", "unit"]).loc[("rrlsrn", "psnr", "slice")]
    assert per_slice["n"] == 6 and math.isnan(per_slice["paper_mean"])


def test_published_values_are_the_papers():
    pub = published()
    assert pub["quality"]["fetal"]["psnr"]["rrlsrn"]["mean"] == 39.40  # Table 3
    assert pub["quality"]["namic"]["ssim"]["nmu"]["mean"] == 0.5590  # Table 2
    assert len(pub["ablations"]["gdl"]["with"]) == 8
    assert pub["runtime"]["kirby21"]["lrtv"] == 11.7059  # Table 6


# ---------------------------------------------------------------- Tables 4 and 5


def test_ablation_table_by_hand():
    table = ablation_table(hand_metrics(), "gdl")
    assert list(table.columns[:5]) == [
        "Dataset",
        "Subject",
        "PSNR without GDL",
        "PSNR with GDL",
        "PSNR difference",
    ]
    ours = table[table["Dataset"] == "adult"].set_index("Subject")
    assert list(ours.index) == [
        "s1",
        "s2",
        "s3",
        "mean (n=3)",
        "improved",
        "p (paired t / Wilcoxon)",
    ]
    assert ours.loc["s1", "PSNR without GDL"] == "33.50"
    assert ours.loc["s1", "PSNR with GDL"] == "34.00"
    assert ours.loc["s1", "PSNR difference"] == "+0.50"
    assert ours.loc["s3", "PSNR difference"] == "-0.25"
    assert ours.loc["mean (n=3)", "PSNR difference"] == "+0.42"  # (0.5 + 1 - 0.25) / 3
    assert ours.loc["improved", "PSNR difference"] == "2 of 3"
    # differences 0.5, 1, -0.25: ranks 2, 3, 1 -> W = 1, exact p = 2 * 2 / 8 = 0.5
    d = np.array([0.5, 1.0, -0.25])
    t_p = 2 * sps.t.sf(d.mean() / (d.std(ddof=1) / math.sqrt(3)), 2)
    assert ours.loc["p (paired t / Wilcoxon)", "PSNR difference"] == f"{t_p:.3f} / 0.500"
    paper = table[table["Dataset"] == "paper: clinical fetal"].set_index("Subject")
    assert len(paper) == 9 and paper.loc["01", "PSNR with GDL"] == "39.18"
    # Table 4 means: without 314.19 / 8 = 39.274, with 315.21 / 8 = 39.401
    assert paper.loc["mean (n=8)", "PSNR difference"] == "+0.13"
    assert paper.loc["mean (n=8)", "PSNR (mask) difference"] == ""


def test_ablation_table_without_the_variant_keeps_the_papers_rows():
    table = ablation_table(hand_metrics(), "bottom_conv")  # no rrlsrn_bicubic_bottom
    assert set(table["Dataset"]) == {"paper: clinical fetal"}
    assert table.set_index("Subject").loc["01", "PSNR without bottom transposed conv"] == "36.78"


def test_both_readings_of_table_5_sit_beside_the_papers_table_5():
    # no bottom: the variant is the feature branch alone; the paper's values are Table 5's
    paper = ablation_table(hand_metrics(), "no_bottom").set_index("Subject")
    assert paper.loc["01", "PSNR without image branch"] == "36.78"
    assert paper.loc["08", "PSNR with image branch"] == "38.90"
    # Table 5 means: without 295.18 / 8 = 36.8975, with 315.21 / 8 = 39.40125 (the 2.5 dB)
    assert paper.loc["mean (n=8)", "PSNR difference"] == "+2.50"


# ---------------------------------------------------------------- Table 6


def runtime_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "method": ["rrlsrn"] * 3 + ["bicubic"] * 2,
            "dataset": "adult",
            "subject": ["s1", "s1", "s2", "s1", "s1"],
            "slice": [0, 1, 0, 0, 1],
            "seconds": [0.1, 0.2, 0.3, 0.001, 0.003],
            "device": "cpu (2 threads)",
        }
    )


def test_runtime_table_by_hand(tmp_path):
    bench = []
    for subject, seconds in (("s1", 1.2), ("s2", 0.6)):
        path = tmp_path / "benchmarks" / "rrlsrn" / "adult" / f"{subject}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"s\th:m:s\tmax_rss\n{seconds}\t0:00:01\t100\n")
        bench.append(path)
    benchmarks = load_rule_benchmarks(bench)
    assert list(benchmarks["subject"]) == ["s1", "s2"]
    assert list(benchmarks["method"]) == ["rrlsrn", "rrlsrn"]
    table = runtime_table(runtime_frame(), ["bicubic", "nmu", "rrlsrn"], benchmarks)
    assert list(table.columns) == ["Dataset", "Timing", "Bicubic", "RRLSRN", "Device"]
    rows = table.set_index(["Dataset", "Timing"])
    method_only = rows.loc[("adult", "per slice (method only)")]
    assert method_only["RRLSRN"] == "0.2000" and method_only["Bicubic"] == "0.0020"
    assert method_only["Device"] == "cpu (2 threads)"
    # whole job: (1.2 + 0.6) s over 3 slices; bicubic has no benchmark file
    whole = rows.loc[("adult", "per slice (whole job)")]
    assert whole["RRLSRN"] == "0.6000" and whole["Bicubic"] == "–"
    assert rows.loc[("paper: Kirby 21", "per slice (paper)"), "RRLSRN"] == "0.8244"
    assert rows.loc[("paper: NAMIC", "per slice (paper)"), "Bicubic"] == "–"


def test_the_papers_faster_srcnn_timings_sit_under_fsrcnn():
    # Table 6's "SRCNN (faster version)" cites ref. 19, FSRCNN (Dong et al. 2016, ECCV)
    runtimes = pd.concat([runtime_frame().assign(method=m) for m in ("srcnn", "fsrcnn")])
    rows = runtime_table(runtimes, ["srcnn", "fsrcnn"]).set_index(["Dataset", "Timing"])
    paper = rows.loc[("paper: Kirby 21", "per slice (paper)")]
    assert paper["FSRCNN"] == "1.7473" and paper["SRCNN"] == "–"
    assert rows.loc[("paper: clinical fetal", "per slice (paper)"), "FSRCNN"] == "1.7254"


# ---------------------------------------------------------------- paired tests


def test_paired_table_rows_and_numbers():
    table = paired_table(hand_metrics())
    subject_rows = table[(table["Unit"] == "subject") & (table["Metric"] == "PSNR")]
    assert list(subject_rows["Method"]) == ["Bicubic", "RRLSRN without GDL"]
    # rrlsrn - bicubic per subject: 3, 3, 6 -> mean 4
    assert subject_rows.iloc[0]["Difference [95% CI]"].startswith("4.00 [")
    assert subject_rows.iloc[0]["n"] == 3
    assert set(table["Unit"]) == {"subject", "slice"}


# ---------------------------------------------------------------- files


def write_run(tmp_path) -> tuple[list, list]:
    """Metric and runtime TSVs laid out as the workflow writes them."""
    metrics, runtimes = [], []
    for dataset in ("adult", "fetal"):
        frame = hand_metrics(dataset)
        for (method, subject), part in frame.groupby(["method", "subject"]):
            path = tmp_path / "metrics" / method / dataset / f"{subject}.tsv"
            path.parent.mkdir(parents=True, exist_ok=True)
            part.to_csv(path, sep="\t", index=False)
            metrics.append(path)
        timing = runtime_frame().assign(dataset=dataset)
        for (method, subject), part in timing.groupby(["method", "subject"]):
            path = tmp_path / "runtime" / method / dataset / f"{subject}.tsv"
            path.parent.mkdir(parents=True, exist_ok=True)
            part.to_csv(path, sep="\t", index=False)
            runtimes.append(path)
    return metrics, runtimes


def test_write_paper_tables_writes_every_table(tmp_path):
    metrics, runtimes = write_run(tmp_path)
    out = tmp_path / "tables"
    paths = write_paper_tables(
        metrics,
        runtimes,
        [tmp_path / "absent.tsv"],  # benchmark files that do not exist are skipped
        ["bicubic", "rrlsrn"],
        {"adult": "kirby21", "fetal": None},
        out,
    )
    stems = ["table1to3_adult", "table1to3_fetal", "table4_gdl", "table5_bottom_conv",
             "table5_no_bottom", "table6_runtime", "paired_tests"]  # fmt: skip
    expected = {f"{s}.{e}" for s in stems for e in ("csv", "md", "tex")} | {"quality_long.csv"}
    assert {p.name for p in paths} == expected
    assert {p.name for p in out.iterdir()} == expected  # no temporary files left
    adult = pd.read_csv(out / "table1to3_adult.csv", dtype=str, keep_default_na=False)
    assert "RRLSRN (paper)" in adult.columns and "RRLSRN without GDL" not in adult.columns
    fetal = (out / "table1to3_fetal.md").read_text()
    assert "(paper)" not in fetal.split("\n\n", 1)[1]
    assert "| Mean             | PSNR" in fetal and "34.00" in fetal
    gdl = pd.read_csv(out / "table4_gdl.csv", dtype=str, keep_default_na=False)
    assert set(gdl["Dataset"]) == {"adult", "fetal", "paper: clinical fetal"}
    assert "\\begin{tabular}" in (out / "table6_runtime.tex").read_text()
    paired = pd.read_csv(out / "paired_tests.csv")
    assert set(paired["Method"]) == {"Bicubic"}  # the ablation variant is not compared


def test_write_table_csv_md_tex(tmp_path):
    table = pd.DataFrame({"method": ["bicubic", "rrlsrn"], "psnr": [29.8, 32.2]})
    caption = "PSNR (dB) on held-out subjects, x2"
    paths = write_table(table, tmp_path / "tables" / "summary", caption)
    assert [p.name for p in paths] == ["summary.csv", "summary.md", "summary.tex"]
    back = pd.read_csv(paths[0])
    np.testing.assert_allclose(back["psnr"], [29.8, 32.2])
    markdown = paths[1].read_text()
    assert markdown.splitlines()[0] == caption
    assert "| rrlsrn" in markdown and "32.20" in markdown
    latex = paths[2].read_text()
    assert "\\caption{" in latex and "\\begin{tabular}" in latex and "32.20" in latex


def test_write_table_keeps_preformatted_text(tmp_path):
    table = pd.DataFrame({"Statistic": ["Mean"], "RRLSRN": ["32.10"], "n": ["3"]})
    markdown = write_table(table, tmp_path / "t", "caption")[1].read_text()
    assert "32.10" in markdown  # not re-parsed as the number 32.1


def test_load_runtimes_needs_its_columns(tmp_path):
    path = tmp_path / "old_runtime.tsv"
    path.write_text("slice\tseconds\n0\t0.1\n")
    with pytest.raises(ValueError, match="old_runtime.tsv.*missing columns"):
        load_runtimes([path])


# ---------------------------------------------------------------- load_metrics


def test_load_metrics_concatenates_files(tmp_path):
    metrics = hand_metrics()
    files = []
    for i, (_, part) in enumerate(metrics.groupby(["method", "subject"])):
        path = tmp_path / f"m{i}.tsv"
        part.to_csv(path, sep="\t", index=False)
        files.append(path)
    loaded = load_metrics(files)
    assert len(loaded) == len(metrics) == 18
    assert loaded["psnr"].sum() == pytest.approx(metrics["psnr"].sum())


def test_load_metrics_missing_file_raises_naming_it(tmp_path):
    with pytest.raises(ValueError, match="absent.tsv"):
        load_metrics([tmp_path / "absent.tsv"])


def test_load_metrics_binary_garbage_raises_naming_it(tmp_path):
    path = tmp_path / "binary.tsv"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ValueError, match="binary.tsv"):
        load_metrics([path])


@pytest.mark.parametrize("text", ["", "hello world\nfoo\n", "method\tsubject\nbicubic\ts1\n"])
def test_load_metrics_text_that_is_no_metrics_table_raises_naming_it(tmp_path, text):
    path = tmp_path / "not_metrics.tsv"
    path.write_text(text)
    with pytest.raises(ValueError, match="not_metrics.tsv"):
        load_metrics([path])


def test_load_metrics_needs_files():
    with pytest.raises(ValueError, match="no metric files"):
        load_metrics([])


def test_load_metrics_keeps_subject_ids_as_text(tmp_path):
    path = tmp_path / "m.tsv"
    path.write_text("method\tdataset\tsubject\tslice\tpsnr\nrrlsrn\tfetal\t01\t3\t30.5\n")
    assert load_metrics([path])["subject"].tolist() == ["01"]
