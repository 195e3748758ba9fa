"""Fill the generated blocks of README.md and docs/*.md from the pipeline's generated files.

    python tools/render_docs.py                   # rewrite every block in place (from the working tree)
    python tools/render_docs.py --check           # exit 1, naming each block that differs from its rendering
    python tools/render_docs.py --check --also-rev HEAD   # ... accepting a rendering from HEAD's files too

A block is the text between

    <!-- generated: NAME -->
    <!-- /generated -->

and NAME is a key of `BLOCKS`. Every number from a run that the docs quote lives in such a block
(or only in a generated file the docs link): each renderer reads the generated files only,
the JSON files by key path and the markdown and log files by table cell or line, so no number
is typed by hand. A renderer takes a `Files`, which reads the working tree, a git revision, or
(in tests) a dict. Blocks hold no links: a block may sit in README.md or in docs/, and a
relative link would mean a different file in each.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
METRICS = "metrics/metrics.json"
EFFICIENCY = "metrics/efficiency.json"
REPORT = "metrics/report.md"
KERNEL_CHECK = "metrics/kernel_check.md"
GPU_LOG = "metrics/gpu_check.log"
CPU_LOG = "metrics/cpu_check.log"
BENCHMARK_LOG = "metrics/benchmark.log"
FUZZ = "metrics/fuzz.json"
PIPELINE_TIME = "metrics/pipeline_time.json"

BLOCK = re.compile(r"(<!-- generated: ([\w-]+) -->\n)(.*?)(<!-- /generated -->)", re.S)

# Renamed metric keys, newest name first: the renderers use whichever name the files hold.
NAMES = {"acc_over_k": ("acc_over_k", "auc"), "bacc_over_k": ("bacc_over_k", "bacc_auc")}


class RenderError(Exception):
    """A generated file lacks what a block needs (a key, a table, a line)."""


class Files:
    """The generated files, read through `read(path) -> text`; paths are relative to the project root."""

    def __init__(self, read: Callable[[str], str], where: str) -> None:
        self._read = read
        self.where = where

    @classmethod
    def working_tree(cls, root: Path = ROOT) -> Files:
        return cls(lambda path: (root / path).read_text(), "the working tree")

    @classmethod
    def at_revision(cls, rev: str, root: Path = ROOT) -> Files:
        def read(path: str) -> str:
            shown = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=root, capture_output=True, text=True)
            if shown.returncode != 0:
                raise FileNotFoundError(f"{path} at {rev}")
            return shown.stdout

        return cls(read, rev)

    @classmethod
    def from_mapping(cls, files: Mapping[str, str | dict]) -> Files:
        """Files given by content: a dict stands for a JSON file, a string for any file."""

        def read(path: str) -> str:
            if path not in files:
                raise FileNotFoundError(path)
            content = files[path]
            return content if isinstance(content, str) else json.dumps(content)

        return cls(read, "the given files")

    def text(self, path: str) -> str:
        try:
            return self._read(path)
        except FileNotFoundError:
            raise RenderError(f"{path} not found in {self.where}") from None

    def json(self, path: str) -> dict:
        return json.loads(self.text(path))


# --- reading the files ---------------------------------------------------------------------


def at(data: dict, path: str, source: str) -> Any:
    """The value at a dotted key path, or a RenderError naming the path and the file."""
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise RenderError(f"{source}: no key {path}")
        value = value[part]
    return value


def key_in(entry: dict, name: str, suffix: str = "") -> str:
    """The name `name + suffix` has in `entry`: the newest of its names that is there."""
    names = [f"{n}{suffix}" for n in NAMES.get(name, (name,))]
    for key in names:
        if key in entry:
            return key
    raise RenderError(f"{METRICS}: none of {', '.join(names)} in {sorted(entry)}")


def section(markdown: str, heading: str, source: str) -> list[str]:
    """The lines under a `## heading` up to the next heading, blank lines left out."""
    lines = markdown.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == f"## {heading}":
            body = []
            for rest in lines[i + 1 :]:
                if rest.startswith("#"):
                    break
                if rest.strip():
                    body.append(rest)
            return body
    raise RenderError(f"{source}: no section '## {heading}'")


def tables(markdown: str) -> dict[str, list[dict[str, str]]]:
    """Each `## heading`'s first table, as rows keyed by the header's cells."""
    found: dict[str, list[dict[str, str]]] = {}
    heading, header = None, None
    for line in markdown.splitlines():
        if line.startswith("## "):
            heading, header = line[3:].strip(), None
        elif line.startswith("|") and heading is not None:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if header is None:
                header = cells
            elif not all(set(c) <= {"-", ":"} for c in cells):
                found.setdefault(heading, []).append(dict(zip(header, cells, strict=True)))
    return found


# --- formatting -----------------------------------------------------------------------------


def num(value: float, digits: int = 1) -> str:
    return f"{value:.{digits}f}"


def interval(entry: dict, signed: bool = False) -> str:
    """`mean [low, high]`, the mean signed for a difference; the mean alone with one seed."""
    mean = f"{entry['mean']:+.1f}" if signed else num(entry["mean"])
    if "ci_low" not in entry:
        return mean
    return f"{mean} [{num(entry['ci_low'])}, {num(entry['ci_high'])}]"


def verdict(entry: dict) -> str:
    """What a paired difference from random supports: the file's own `verdict` when it holds one,
    else read off the interval (above 0, below 0, or containing it)."""
    if "verdict" in entry:
        return str(entry["verdict"])
    if "ci_low" not in entry:
        return "no claim (one seed)"
    if entry["ci_low"] > 0:
        return "better"
    if entry["ci_high"] < 0:
        return "worse"
    return "not distinguishable"


def verdict_words(metrics: dict) -> str:
    """How the verdicts were reached: the study's own (a `verdict` key) or read off the interval."""
    criteria = at(metrics, "criteria", METRICS).values()
    if any(isinstance(v, dict) and "verdict" in v for entry in criteria for v in entry.values()):
        return "the verdict is the study's own (metrics/report.md says how it is decided)"
    return "the verdict says whether its interval is above 0, below 0 or contains 0"


def paired(entry: dict, n_seeds: int) -> str:
    return f"{interval(entry, signed=True)}, {verdict(entry)} ({entry['wins']}/{n_seeds})"


def seeds_line(metrics: dict) -> str:
    n = at(metrics, "n_seeds", METRICS)
    level = f"{at(metrics, 'confidence', METRICS) * 100:g} %"
    return f"Mean over **{n} seeds**; brackets are {level} Student t intervals across seeds, in percent (points)."


def unpruned(metrics: dict) -> str:
    def score(key: str) -> str:
        return interval(at(metrics, key, METRICS))

    return (
        f"accuracy {score('baseline_accuracy')}, balanced accuracy {score('baseline_balanced_accuracy')}, "
        f"ROC AUC {score('baseline_roc_auc')}; always answering the majority class scores "
        f"{num(at(metrics, 'majority_floor', METRICS))} (accuracy), chance is "
        f"{num(at(metrics, 'balanced_floor', METRICS))} (balanced accuracy)"
    )


def compared(metrics: dict) -> dict[str, dict]:
    """The criteria that are paired with random (every one but random itself)."""
    criteria = at(metrics, "criteria", METRICS)
    return {name: entry for name, entry in criteria.items() if any(k.endswith("_vs_random") for k in entry)}


def vs_random_table(metrics: dict, scores: Iterable[tuple[str, str]]) -> list[str]:
    """One row per criterion, one column per (score name, words): the paired difference from random."""
    n = at(metrics, "n_seeds", METRICS)
    rows = compared(metrics)
    if not rows:
        raise RenderError(f"{METRICS}: no criterion is paired with random")
    first = next(iter(rows.values()))
    columns = [(key_in(first, name, "_vs_random"), words) for name, words in scores]
    lines = [
        "| criterion | " + " | ".join(f"{words} minus random (`{key}`)" for key, words in columns) + " |",
        "| --- |" + " --- |" * len(columns),
    ]
    for name, entry in rows.items():
        cells = [paired(at(entry, key, f"{METRICS} criteria.{name}"), n) for key, _ in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


# --- the blocks -----------------------------------------------------------------------------


def headline(files: Files) -> str:
    """README: the unpruned model, then each criterion against random on the two headline scores."""
    metrics = files.json(METRICS)
    lines = [
        seeds_line(metrics) + " Each difference is paired within a seed (the criterion minus the mean of "
        f"that seed's random orders); {verdict_words(metrics)}, and (w/n) counts the seeds where the "
        "criterion is above random.",
        "",
        f"- **The unpruned model:** {unpruned(metrics)}.",
        "",
        *vs_random_table(
            metrics, [("bacc_over_k", "mean balanced accuracy over K"), ("roc_auc_over_k", "mean ROC AUC over K")]
        ),
    ]
    return "\n".join(lines)


def network(files: Files) -> str:
    """docs/network.md: each conv layer's sensitivity sentence (from the report), and per FLOPs budget the
    best configuration against the unpruned model fine-tuned alike (from metrics.json)."""
    metrics = files.json(METRICS)
    report = files.text(REPORT)
    layers = [
        line for line in section(report, "Which layer can lose what (sensitivity)", REPORT) if line.startswith("- ")
    ]
    budget = at(metrics, "budget", METRICS)
    n = at(metrics, "n_seeds", METRICS)
    lines = [
        seeds_line(metrics),
        "",
        "**Each conv layer pruned alone** (mean ROC AUC over the shares of its channels removed, minus random's "
        "in the same seed):",
        "",
        *layers,
        "",
        "**Every conv layer at once, to a FLOPs budget, then fine-tuned** (the unpruned model fine-tuned by the "
        f"same recipe: recalibrated balanced accuracy {interval(at(budget, 'unpruned.finetuned_recal_bacc', METRICS))}"
        "); "
        "at each budget, the strategy and criterion with the best mean (random aside), and random under the "
        "same strategy:",
        "",
        "| FLOPs budget | strategy | criterion | FLOPs kept | params kept | fine-tuned recal. bacc minus unpruned "
        "| random, same strategy | criterion minus random |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    best: dict[str, tuple[float, str, str, dict]] = {}
    for strategy, criteria in budget.items():
        if strategy == "unpruned":
            continue
        for criterion, entries in criteria.items():
            if criterion == "random":
                continue
            for key, entry in entries.items():
                gain = entry["finetuned_recal_bacc_vs_unpruned"]["mean"]
                if key not in best or gain > best[key][0]:
                    best[key] = (gain, strategy, criterion, entry)
    for key in sorted(best, key=lambda k: -float(k.removeprefix("flops_"))):
        _, strategy, criterion, entry = best[key]
        random = budget[strategy].get("random", {}).get(key)
        versus = entry.get("finetuned_recal_bacc_vs_random")
        lines.append(
            f"| {float(key.removeprefix('flops_')) / 100:g} | {strategy} | {criterion} | "
            f"{entry['flops_kept']['mean']:.3f} | {entry['params_kept']['mean']:.3f} | "
            f"{interval(entry['finetuned_recal_bacc_vs_unpruned'], signed=True)} | "
            + (interval(random["finetuned_recal_bacc_vs_unpruned"], signed=True) if random else "—")
            + " | "
            + (f"{interval(versus, signed=True)}, {verdict(versus)}" if versus else "—")
            + " |"
        )
    closing = [
        line for line in section(report, "The whole network to a FLOPs budget", REPORT) if "smallest budget" in line
    ]
    lines += [
        "",
        *closing[-1:],
        f"All {n} seeds' rows, every strategy and criterion: `metrics/report.md`.",
    ]
    return "\n".join(lines)


def efficiency_facts(files: Files) -> tuple[dict, str]:
    eff = files.json(EFFICIENCY)
    chosen = [key[len("criterion_") :] for key, value in eff.items() if key.startswith("criterion_") and value == 1]
    if len(chosen) != 1:
        raise RenderError(f"{EFFICIENCY}: expected one criterion_<name> key set to 1, found {chosen}")
    return eff, chosen[0]


def shipped_words(eff: dict, criterion: str) -> str:
    """What was shipped: the whole network at a FLOPs budget (its channels per layer), or one layer at K."""
    if "budget" not in eff:
        return f"`{criterion}` at K = {at(eff, 'k', EFFICIENCY)} of {at(eff, 'channels', EFFICIENCY)} channels"
    strategy = next((k.removeprefix("strategy_") for k in eff if k.startswith("strategy_")), None)
    if strategy is None:
        raise RenderError(f"{EFFICIENCY}: no strategy_<name> key")
    kept = ", ".join(f"{k.removeprefix('channels_')} {eff[k]}" for k in eff if k.startswith("channels_"))
    return (
        f"the whole network at **{at(eff, 'budget', EFFICIENCY):g} of the FLOPs**, allocated by `{strategy}` and "
        f"ranked by `{criterion}` (channels kept: {kept}), fine-tuned by the budget study's recipe"
    )


def loss_words(eff: dict) -> str:
    """The study's mean loss for the shipped configuration, and against what."""
    loss = num(at(eff, "score_loss_points", EFFICIENCY), 2)
    if "budget" in eff:
        return (
            f"the study's mean fine-tuned recalibrated balanced accuracy for it is "
            f"{num(at(eff, 'study_finetuned_recal_bacc', EFFICIENCY), 2)} against "
            f"{num(at(eff, 'study_finetuned_recal_bacc_unpruned', EFFICIENCY), 2)} for the unpruned model fine-tuned "
            f"alike (`score_loss_points` {loss})"
        )
    return (
        "the study's mean recalibrated balanced accuracy at K is "
        f"{num(at(eff, 'study_recal_bacc_at_k', EFFICIENCY), 2)} against "
        f"{num(at(eff, 'study_recal_bacc_unpruned', EFFICIENCY), 2)} unpruned (`score_loss_points` {loss})"
    )


def export(files: Files) -> str:
    """README: what the exported model is and what it buys."""
    eff, criterion = efficiency_facts(files)

    def ratio(key: str) -> str:
        return num(at(eff, f"ratio.{key}", EFFICIENCY), 2)

    return (
        f"The exported model is seed {at(eff, 'seed', EFFICIENCY)}'s, {shipped_words(eff, criterion)}; "
        f"{loss_words(eff)}. It has "
        f"{ratio('params')}× fewer parameters, {ratio('flops')}× fewer FLOPs per sample, "
        f"a {ratio('program_bytes')}× smaller `.pt2` file, and runs {ratio('speedup_batch256')}× faster at batch 256 "
        f"(95 % bootstrap interval {ratio('speedup_batch256_low')}–{ratio('speedup_batch256_high')}× over "
        f"{at(eff, 'ratio.speedup_rounds', EFFICIENCY)} paired rounds; {ratio('speedup_batch1')}× at batch 1; "
        f"{ratio('speedup_batch256_onnxruntime')}× under ONNX Runtime) "
        f"than the unpruned model in the same format (BatchNorm folded "
        f"into the convs, channels-last: the format shipped, which alone makes the unpruned model "
        f"{format_gain(eff)}× faster than as trained) on the CPU that ran the `export` stage "
        f"({at(eff, 'threads', EFFICIENCY)} threads; latencies are the one output that changes from run to run)."
    )


def format_gain(eff: dict) -> str:
    """What the shipped format alone buys the unpruned model at batch 256."""
    eager = at(eff, "unpruned.latency_ms_batch256_eager", EFFICIENCY)
    return num(eager / at(eff, "unpruned.latency_ms_batch256", EFFICIENCY), 2)


def parts(eff: dict) -> str:
    """Each part's batch-256 latency, unpruned → exported: every conv layer, then the head."""
    prefix = "latency_ms_batch256_"
    names = [key.removeprefix(prefix) for key in at(eff, "unpruned", EFFICIENCY) if key.startswith(prefix)]
    names = [name for name in names if name != "eager"]
    if not names:
        raise RenderError(f"{EFFICIENCY}: no per-part latencies ({prefix}<part>)")

    def ms(side: str, name: str) -> str:
        return num(at(eff, f"{side}.{prefix}{name}", EFFICIENCY), 2)

    return ", ".join(f"{name} {ms('unpruned', name)} → {ms('exported', name)}" for name in names)


def deploy(files: Files) -> str:
    """docs/deploy.md: the exported model against the unpruned one, in full."""
    eff, criterion = efficiency_facts(files)
    metrics = files.json(METRICS)
    n = at(metrics, "n_seeds", METRICS)

    def side(which: str, key: str, digits: int | None = None) -> str:
        value = at(eff, f"{which}.{key}", EFFICIENCY)
        return f"{value:,}" if digits is None else num(value, digits)

    def ratio(key: str) -> str:
        return num(at(eff, f"ratio.{key}", EFFICIENCY), 2)

    rows = [
        ("parameters", "params", None, "params"),
        ("FLOPs per sample (`FlopCounterMode`)", "flops_per_sample", None, "flops"),
        ("`.pt2` file (bytes)", "program_bytes", None, "program_bytes"),
        ("latency, batch 1 (ms)", "latency_ms_batch1", 3, "speedup_batch1"),
        ("latency, batch 256 (ms)", "latency_ms_batch256", 2, "speedup_batch256"),
        ("latency, batch 256, as trained (ms)", "latency_ms_batch256_eager", 2, "speedup_batch256_eager"),
        ("latency, batch 256, ONNX Runtime (ms)", "latency_ms_batch256_onnxruntime", 2, "speedup_batch256_onnxruntime"),
    ]
    lines = [
        f"Chosen: {shipped_words(eff, criterion)}, where, over {n} seeds, {loss_words(eff)}. The model shipped is seed "
        f"{at(eff, 'seed', EFFICIENCY)}'s; on that seed's test split it scores "
        f"{side('exported', 'test_bacc', 2)} % balanced accuracy (ROC AUC {side('exported', 'test_roc_auc', 2)}), "
        f"the unpruned model with the same re-fitted decision {side('unpruned', 'test_bacc', 2)} "
        f"(ROC AUC {side('unpruned', 'test_roc_auc', 2)}): one seed, no interval.",
        "",
        "| | unpruned | exported | ratio |",
        "| --- | --- | --- | --- |",
    ]
    for words, key, digits, ratio_key in rows:
        lines.append(
            f"| {words} | {side('unpruned', key, digits)} | {side('exported', key, digits)} | {ratio(ratio_key)}× |"
        )
    lines += [
        "",
        f"Latencies: both models timed in turn in one process, {at(eff, 'threads', EFFICIENCY)} threads, in "
        f"the shipped format (BatchNorm folded into the convs, channels-last) except the row as trained; the "
        f"format alone makes the unpruned model {format_gain(eff)}× faster at batch 256. The batch-256 speed-up "
        f"(95 % bootstrap interval of the median over {at(eff, 'ratio.speedup_rounds', EFFICIENCY)} paired rounds: "
        f"{ratio('speedup_batch256_low')}–{ratio('speedup_batch256_high')}×) "
        f"is {ratio('speedup_batch256_vs_flops')} of the FLOPs ratio. Per part at batch 256 "
        f"(ms, unpruned → exported): {parts(eff)}.",
        "",
        f"ONNX Runtime (`data/export/model.onnx`, opset {at(eff, 'onnx_opset', EFFICIENCY)}, CPU execution provider, "
        f"every graph optimisation, the same threads; each model exported with BatchNorm folded): the speed-up is "
        f"{ratio('speedup_batch256_onnxruntime')}× "
        f"({ratio('speedup_batch256_onnxruntime_low')}–{ratio('speedup_batch256_onnxruntime_high')}×), and its "
        f"logits are within {at(eff, 'onnxruntime_max_abs_logit_diff', EFFICIENCY):.0e} of torch's.",
    ]
    return "\n".join(lines)


LATENCY_TABLE = "metrics/cost/latency/table.csv"


def latency(files: Files) -> str:
    """docs/deploy.md: the latency table (what each group's counts save) and how well it predicts the first
    seed's budget models, beside FLOPs as a predictor (efficiency.json's `latency_prediction`)."""
    eff = files.json(EFFICIENCY)
    prediction = at(eff, "latency_prediction", EFFICIENCY)
    rows = [line.split(",") for line in files.text(LATENCY_TABLE).strip().splitlines()]
    header, body = rows[0], rows[1:]
    if header[:4] != ["group", "channels", "kept", "latency_ms"] or "saved_ms" not in header:
        raise RenderError(f"{LATENCY_TABLE}: not a latency table (header {','.join(header)})")
    saved = header.index("saved_ms")
    groups: dict[str, list[tuple[int, float, int]]] = {}
    for row in body:
        groups.setdefault(row[0], []).append((int(row[2]), float(row[saved]), int(row[1])))
    # As the latency model reads it: the median of the unpruned model's timings beside each group's.
    unpruned = statistics.median(float(row[3]) for row in body if row[1] == row[2])
    most = ", ".join(
        f"{name} {counts[0][2]} → {counts[0][0]}: {num(counts[0][1], 1)} ms" for name, counts in groups.items()
    )
    target = next(key.removeprefix("target_") for key in eff if key.startswith("target_"))

    def pct(key: str) -> str:
        return num(at(prediction, key, EFFICIENCY), 1)

    return "\n".join(
        [
            f"The table: {len(body)} rows over {len(groups)} channel groups; the unpruned model {num(unpruned, 2)} ms "
            f"at batch 256; each group at its fewest channels alone saves {most}.",
            "",
            f"Against the first seed's {at(prediction, 'configurations', EFFICIENCY)} distinct budget models "
            f"(`budget.target: {target}`), each measured as a share of the unpruned model's latency over "
            f"{at(prediction, 'rounds', EFFICIENCY)} paired rounds: the table's prediction is off by "
            f"{pct('table_mean_abs_error_pct')} % on average (largest {pct('table_max_abs_error_pct')} %); the FLOPs "
            f"share, read as a latency prediction, by {pct('flops_mean_abs_error_pct')} % (largest "
            f"{pct('flops_max_abs_error_pct')} %). One machine, one run: the models one by one are in "
            "`metrics/latency.md`.",
        ]
    )


def study_unpruned(files: Files) -> str:
    """docs/study.md: the unpruned model, with and without the re-fitted decision."""
    metrics = files.json(METRICS)
    return "\n".join(
        [
            seeds_line(metrics),
            "",
            f"- {unpruned(metrics)};",
            f"- with only the decision re-fitted: accuracy {interval(at(metrics, 'baseline_recal_acc', METRICS))}, "
            f"balanced accuracy {interval(at(metrics, 'baseline_recal_bacc', METRICS))}.",
        ]
    )


def study_means(files: Files) -> str:
    """docs/study.md: every criterion's mean score over K, random included."""
    metrics = files.json(METRICS)
    criteria = at(metrics, "criteria", METRICS)
    first = next(iter(criteria.values()))
    columns = [
        (key_in(first, "bacc_over_k"), "balanced accuracy"),
        (key_in(first, "acc_over_k"), "accuracy"),
        (key_in(first, "roc_auc_over_k"), "ROC AUC"),
        (key_in(first, "recal_bacc_over_k"), "recalibrated balanced accuracy"),
    ]
    lines = [
        seeds_line(metrics),
        "",
        "| criterion | " + " | ".join(f"{words} (`{key}`)" for key, words in columns) + " |",
        "| --- |" + " --- |" * len(columns),
    ]
    for name, entry in criteria.items():
        cells = [interval(at(entry, key, f"{METRICS} criteria.{name}")) for key, _ in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def study_vs_random(files: Files) -> str:
    """docs/study.md: every criterion against random, on all four scores."""
    metrics = files.json(METRICS)
    return "\n".join(
        [
            seeds_line(metrics) + " (w/n) counts the seeds where the criterion is above random.",
            "",
            "At the model's own decision:",
            "",
            *vs_random_table(metrics, [("bacc_over_k", "balanced accuracy"), ("acc_over_k", "accuracy")]),
            "",
            "Threshold-free and recalibrated:",
            "",
            *vs_random_table(
                metrics, [("roc_auc_over_k", "ROC AUC"), ("recal_bacc_over_k", "recalibrated balanced accuracy")]
            ),
        ]
    )


def study_first(files: Files) -> str:
    """docs/study.md: which criterion ranks first on each score, as the report says."""
    metrics = files.json(METRICS)
    lines = section(files.text(REPORT), "Which criterion ranks first", REPORT)
    return "\n".join([seeds_line(metrics), "", *lines])


def study_finetune(files: Files) -> str:
    """docs/study.md: balanced accuracy as pruned, re-fitted and fine-tuned."""
    metrics = files.json(METRICS)
    n = at(metrics, "n_seeds", METRICS)
    lines = [
        seeds_line(metrics),
        "",
        "| K | criterion | as pruned | decision re-fitted | fine-tuned | fine-tuned minus random |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    rows = []
    for name, entry in at(metrics, "criteria", METRICS).items():
        for point, facts in entry.items():
            if point.startswith("finetune_") and isinstance(facts, dict):
                where = f"{METRICS} criteria.{name}.{point}"
                versus = facts.get("finetuned_bacc_vs_random")
                rows.append(
                    (
                        at(facts, "k", where),
                        name,
                        interval(at(facts, "plain_bacc", where)),
                        interval(at(facts, "recal_bacc", where)),
                        interval(at(facts, "finetuned_bacc", where)),
                        paired(versus, n) if versus else "—",
                    )
                )
    if not rows:
        raise RenderError(f"{METRICS}: no finetune_<point> entries (finetune.ks is [])")
    lines += [f"| {k} | {name} | " + " | ".join(cells) + " |" for k, name, *cells in sorted(rows, key=lambda r: r[0])]
    return "\n".join(lines)


def kernel_check(files: Files) -> str:
    """docs/reliability.md: which conclusions held when the study was rerun with other kernels."""
    text = files.text(KERNEL_CHECK)
    unpruned_lines = [line for line in text.splitlines() if line.startswith("- unpruned")]
    if not unpruned_lines:
        raise RenderError(f"{KERNEL_CHECK}: no '- unpruned' line")
    found = tables(text)
    if not found:
        raise RenderError(f"{KERNEL_CHECK}: no tables")
    columns = list(next(iter(found.values()))[0])
    other = next((c for c in columns if c.startswith("with ")), "with other kernels")
    base = columns[1] if len(columns) > 1 else "committed run"  # "committed run", or "own kernels" (--seeds)
    lines = [
        f"A conclusion is the paired difference from random, mean [95 % t interval] in points, and its verdict; "
        f"each change below reads {base} → rerun {other}.",
        "",
        unpruned_lines[0],
    ]
    for heading, rows in found.items():
        try:
            held = [r["criterion"] for r in rows if r["conclusion"] == "holds"]
            other = next(c for c in rows[0] if c.startswith("with "))
            moved = [f"`{r['criterion']}` ({r[base]} → {r[other]})" for r in rows if r["conclusion"] != "holds"]
        except (KeyError, StopIteration):
            raise RenderError(f"{KERNEL_CHECK}: table '{heading}' lacks its columns") from None
        line = f"- **{heading}**: {len(held)} of {len(rows)} conclusions hold"
        lines.append(line + (f"; not: {', '.join(moved)}." if moved else "."))
    return "\n".join(lines)


REPLICATE = re.compile(r"^(.+?) seed (\d+): ([\d.]+) s, stage work (-?[\d.]+) s beyond start-up \((.*)\)$")
FLOOR = re.compile(r"^start-up floor: ([\d.]+) s per stage .*, ([\d.]+) s for prepare_data")


Parts = dict[str, dict[str, list[float]]]  # label → {"whole" | "work" | stage: seconds, one per seed}


def _seconds(value: float) -> str:
    return f"{num(value)} s"


def _spread(values: list[float]) -> str:
    low, high = num(min(values)), num(max(values))
    return f"{low} s" if low == high else f"{low} – {high} s"


def _verdict(value: float, goal: float) -> str:
    return "met" if value <= goal else "NOT MET"


def _gpu_goals(parts: Parts) -> list[str]:
    """Issue 18's GPU goals: a pairs replicate's stage work beyond start-up, and the five-seed CIFAR-10
    study (at the measured rate per seed when fewer seeds were run)."""
    lines = []
    if "pairs" in parts:
        worst = max(parts["pairs"]["work"])
        lines.append(
            f"- Goal, a pairs replicate's stage work ≤ 15 s beyond start-up: {_seconds(worst)} at most, "
            f"{_verdict(worst, 15)}."
        )
    cifar = parts.get("cifar10 single-layer")
    if cifar:
        n = len(cifar["whole"])
        five = 5 * sum(cifar["whole"]) / n
        measured = "measured" if n == 5 else f"five times the mean per seed of {n} measured"
        lines.append(
            f"- Goal, the five-seed CIFAR-10 study ≤ 180 s: {_seconds(five)} ({measured}), {_verdict(five, 180)}."
        )
    return lines


def _cpu_goals(parts: Parts) -> list[str]:
    """Issue 18's CPU goal: CIFAR-10's sweep_prune, whole process, every score."""
    cifar = parts.get("cifar10 single-layer", {}).get("sweep_prune")
    if not cifar:
        return []
    return [f"- Goal, CIFAR-10 sweep_prune ≤ 30 s per seed: {_spread(cifar)}, {_verdict(max(cifar), 30)}."]


def replicate_log(files: Files, path: str, goals: Callable[[Parts], list[str]]) -> str:
    """A `tools/gpu_check.py` log: the device, the start-up floor, each part's replicate times (whole and
    beyond start-up, per stage), the rerun comparison and the goals that the log answers."""
    log = files.text(path).splitlines()
    device = [line.removeprefix("device: ") for line in log if line.startswith("device: ")]
    floor = [match for match in map(FLOOR.match, log) if match]
    rerun = [line for line in log if line.startswith("rerun of ")]
    parts: Parts = {}
    for match in filter(None, map(REPLICATE.match, log)):
        label, _, whole, work, detail = match.groups()
        if label.endswith(" rerun"):
            continue
        times = parts.setdefault(label, {})
        times.setdefault("whole", []).append(float(whole))
        times.setdefault("work", []).append(float(work))
        for part in detail.split(", "):
            stage, seconds = part.split(" ")
            times.setdefault(stage, []).append(float(seconds))
    if not device or not floor or not rerun or not parts:
        raise RenderError(
            f"{path}: needs a 'device:' line, a 'start-up floor:' line, 'LABEL seed N: …' lines and a 'rerun of' line"
        )
    lines = [
        f"{device[0]}; a fresh interpreter costs {_seconds(float(floor[0].group(1)))} per stage before any work "
        f"({_seconds(float(floor[0].group(2)))} for prepare_data, which imports no torch)."
    ]
    for label, times in parts.items():
        seeds = len(times["whole"])
        stages = ", ".join(f"{stage} {_spread(v)}" for stage, v in times.items() if stage not in ("whole", "work"))
        lines.append(
            f"- **{label}**, {seeds} seed{'s' * (seeds > 1)}: {_spread(times['whole'])} per seed, of which "
            f"{_spread(times['work'])} beyond start-up ({stages})."
        )
    synthetic = [line for line in log if line.startswith("cifar10: synthetic")]
    if synthetic:
        lines.append(f"- CIFAR-10 images: {synthetic[0].removeprefix('cifar10: ')}.")
    lines.append(f"- {rerun[0][0].upper()}{rerun[0][1:]}.")
    return "\n".join(lines + goals(parts))


def gpu_check(files: Files) -> str:
    """docs/performance.md: the last `tools/gpu_check.py` run on a GPU."""
    return replicate_log(files, GPU_LOG, _gpu_goals)


def cpu_check(files: Files) -> str:
    """docs/performance.md: `tools/gpu_check.py --device cpu`, the same runs on this CPU."""
    return replicate_log(files, CPU_LOG, _cpu_goals)


GOAL_LINE = re.compile(r"^(\S+)\s+(\d+\.\d+)\s+([≥≤] \S+) (met|NOT MET)$")


def benchmarks(files: Files) -> str:
    """docs/performance.md: the last saved `benchmarks/run.py` report: its machine and every ratio."""
    log = files.text(BENCHMARK_LOG).splitlines()
    rows = [match.groups() for match in map(GOAL_LINE.match, log) if match]
    if not log or "device:" not in log[0] or not rows:
        raise RenderError(f"{BENCHMARK_LOG}: needs a device line first and the table of ratios with their goals")
    when, _, machine = log[0].partition("  device: ")
    load = next((line for line in log if line.startswith("load average")), "load average not recorded")
    lines = [
        f"`benchmarks/run.py --save {BENCHMARK_LOG}`, {when}, on {machine} ({load}):",
        "",
        "| ratio | value | goal | |",
    ]
    lines.append("| --- | --- | --- | --- |")
    lines += [f"| `{name}` | {value} | {goal} | {verdict} |" for name, value, goal, verdict in rows]
    return "\n".join(lines)


def fuzz(files: Files) -> str:
    """docs/reliability.md: the fuzzer's last tally (tools/fuzz.py), overall and per target."""
    tally = files.json(FUZZ)

    def count(key: str) -> int:
        return int(at(tally, key, FUZZ))

    lines = [
        f"The last run (`tools/fuzz.py --cases {count('budget')}`): **{count('cases')} cases** in "
        f"{count('seconds')} s, {count('params_cases')} edits of params.yaml and {count('file_cases')} damaged "
        f"files. {count('refused')} were refused in one line with every output unchanged, "
        f"{count('same_bytes')} ran and wrote the undamaged run's bytes, {count('valid_params_runs')} ran under a "
        f"valid change to a param the stage declares, and {count('plausible_numbers')} only changed the value of "
        f"a number that no other file holds (counted, not failed). Failures: {count('tracebacks')} tracebacks, "
        f"{count('messy_refusals')} messy refusals, {count('partial_outputs')} partial outputs, "
        f"{count('silent_differences')} silent differences.",
        "",
        "| damaged input → stage | cases | refused | same bytes | other |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, row in at(tally, "targets", FUZZ).items():
        refused, same = row.get("refused", 0), row.get("same_bytes", 0)
        other = ", ".join(f"{key.replace('_', ' ')} {n}" for key, n in row.items() if key not in
                          ("cases", "refused", "same_bytes"))  # fmt: skip
        lines.append(f"| `{name}` | {row['cases']} | {refused} | {same} | {other or '—'} |")
    return "\n".join(lines)


def _minutes(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 60} min {whole % 60} s"


def pipeline_time(files: Files) -> str:
    """docs/performance.md: the README's first command on a fresh clone, then its test command and `dvc repro
    --force` in that clone, stage by stage (tools/time_pipeline.py)."""
    data = files.json(PIPELINE_TIME)
    first = at(data, "first_command", PIPELINE_TIME)
    runs = {"first_command": first}
    if "repro_force" in data:
        runs["repro_force"] = at(data, "repro_force", PIPELINE_TIME)
    command = at(first, "command", PIPELINE_TIME)
    total, before = at(first, "seconds", PIPELINE_TIME), at(first, "before_stages", PIPELINE_TIME)
    lines = [
        f"`tools/time_pipeline.py`, {at(data, 'date', PIPELINE_TIME)}, revision {at(data, 'revision', PIPELINE_TIME)}, "
        f"on {at(data, 'cpu', PIPELINE_TIME)} ({at(data, 'cores', PIPELINE_TIME)} cores; load average before: "
        f"{at(data, 'load_before', PIPELINE_TIME)}): the README's first command (`{command}`) on a fresh clone took "
        f"**{_minutes(total)}**, of which {_minutes(before)} before the first stage (the install) and "
        f"{_minutes(total - before)} of stages."
    ]
    if "tests" in data:
        tests = at(data, "tests", PIPELINE_TIME)
        lines[0] += (
            f" Then the README's test command (`{at(tests, 'command', PIPELINE_TIME)}`), in that clone, took "
            f"**{_minutes(at(tests, 'seconds', PIPELINE_TIME))}**: {at(tests, 'pytest', PIPELINE_TIME)}."
        )
    if "repro_force" in runs:
        lines[0] += f" `dvc repro --force` in that clone took **{_minutes(runs['repro_force']['seconds'])}**."
    kinds: dict[str, dict[str, list[float]]] = {}
    # The --force run first when there is one: it runs every stage, so the rows follow dvc.yaml's order.
    for name, run in sorted(runs.items(), key=lambda item: item[0] != "repro_force"):
        for stage, seconds in at(run, "stages", PIPELINE_TIME).items():
            kinds.setdefault(stage.split("@")[0], {}).setdefault(name, []).append(seconds)
    columns = [("first_command", "first command"), ("repro_force", "`dvc repro --force`")]
    columns = [(key, title) for key, title in columns if key in runs]
    lines += [
        "",
        "Seconds per stage, summed over its instances (one per seed), from DVC's start of the stage to the next "
        "(its interpreter start-up and DVC's hashing included); a stage the first command found up to date is "
        "not listed in its column:",
        "",
        "| stage | " + " | ".join(title for _, title in columns) + " |",
        "| --- |" + " --- |" * len(columns),
    ]
    for kind, by_run in kinds.items():
        cells = []
        for key, _ in columns:
            values = by_run.get(key)
            cells.append(f"{num(sum(values))} ({len(values)})" if values else "—")
        lines.append(f"| `{kind}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


BLOCKS: dict[str, Callable[[Files], str]] = {
    "headline": headline,
    "export": export,
    "network": network,
    "deploy": deploy,
    "latency": latency,
    "study-unpruned": study_unpruned,
    "study-means": study_means,
    "study-vs-random": study_vs_random,
    "study-first": study_first,
    "study-finetune": study_finetune,
    "kernel-check": kernel_check,
    "gpu-check": gpu_check,
    "cpu-check": cpu_check,
    "benchmarks": benchmarks,
    "fuzz": fuzz,
    "pipeline-time": pipeline_time,
}


# --- the documents --------------------------------------------------------------------------


def documents(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def blocks_in(text: str) -> list[tuple[str, str]]:
    """(name, content) of each generated block, the content without its closing newline."""
    return [(m.group(2), m.group(3).removesuffix("\n")) for m in BLOCK.finditer(text)]


def render(name: str, files: Files) -> str:
    if name not in BLOCKS:
        raise RenderError(f"unknown generated block {name!r}; known: {', '.join(BLOCKS)}")
    return BLOCKS[name](files)


def rendered(text: str, files: Files) -> str:
    """`text` with every block replaced by its rendering."""

    def fill(match: re.Match) -> str:
        return f"{match.group(1)}{render(match.group(2), files)}\n{match.group(4)}"

    return BLOCK.sub(fill, text)


def stale_blocks(root: Path = ROOT, sources: list[Files] | None = None) -> list[str]:
    """`path: block` for each block that equals the rendering from none of `sources`."""
    sources = sources or [Files.working_tree(root)]
    stale = []
    for path in documents(root):
        for name, content in blocks_in(path.read_text()):
            renderings = []
            for files in sources:
                try:
                    renderings.append(render(name, files))
                except RenderError as err:
                    renderings.append(f"({err})")
            if content not in renderings:
                where = " or ".join(files.where for files in sources)
                errors = [r for r in renderings if r.startswith("(")]
                why = " ".join(errors) if errors else f"(differs from its rendering from {where})"
                stale.append(
                    f"{path.relative_to(root)}: block '{name}' is stale {why}; run python tools/render_docs.py"
                )
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a block is stale")
    parser.add_argument("--also-rev", metavar="REV", help="with --check: also accept a rendering from REV's files")
    args = parser.parse_args(argv)
    if args.check:
        sources = [Files.working_tree()] + ([Files.at_revision(args.also_rev)] if args.also_rev else [])
        stale = stale_blocks(ROOT, sources)
        for line in stale:
            print(line, file=sys.stderr)
        return 1 if stale else 0
    files = Files.working_tree()
    try:
        for path in documents():
            text = path.read_text()
            new = rendered(text, files)
            if new != text:
                path.write_text(new)
                print(f"rendered {path.relative_to(ROOT)}")
    except RenderError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
