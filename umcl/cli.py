"""`umcl <stage>`: one thin command per pipeline stage. Heavy imports happen inside commands,
so `umcl --help` answers at once."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

from umcl.errors import InputError, MissingInputError, UMCLError
from umcl.log_privacy import quiet_stage_libraries

STAGES = (
    "demo → (key-fingerprint) → validate → unify → preprocess → train → evaluate → gate → package"
    " → (adapt)"
)


DEFAULT_PARAMS = Path("params.yaml")
LOCATOR_HELP = "image key → file table written by validate (as sensitive as the raw data)"


def _settings(args: argparse.Namespace):
    from umcl.config import load_settings

    return load_settings(args.params)


def cmd_demo(args: argparse.Namespace) -> None:
    from umcl.data.demo import generate_demo

    settings = _settings(args)
    out = args.out or settings.demo.folder
    if out is None:
        raise InputError("demo.out is [] (the demo is off): name a folder with --out")
    manifest = generate_demo(settings.demo, out, settings.seed, settings.preprocess.workers)
    print(
        f"demo: wrote {len(manifest['records'])} image studies and the report exports under {out} "
        f"({len(manifest['faults'])} planted faults listed in manifest.json)"
    )


def cmd_preset(args: argparse.Namespace) -> None:
    from umcl.config import dotted, load_settings, read_params
    from umcl.dvcops import exp_run

    if args.params != DEFAULT_PARAMS:
        raise InputError("a preset is laid over params.yaml, the file DVC experiments edit")
    load_settings(args.params, overlay=args.preset)  # refused here, with the key, if invalid
    overrides, replaced = dotted(read_params(args.preset))
    name = args.name or args.preset.stem
    exp_run(Path("."), name, overrides, args.target, replaced)
    print(
        f"preset: experiment {name} ran to {args.target} with {len(overrides)} params from "
        f"{args.preset}; `dvc exp show`, then `dvc exp apply {name}` to keep it"
    )


def cmd_validate(args: argparse.Namespace) -> None:
    from umcl.data.validate import validate_sources

    report = validate_sources(
        _settings(args), args.out, args.quarantine, args.metrics, args.locator
    )
    for name, r in report.items():
        print(
            f"validate: {name}: {r['rows_in']} in = {r['rows_valid']} valid + {r['rows_quarantined']} quarantined {r['reasons']}; passed over {r['skipped']}"
        )


def cmd_key_fingerprint(args: argparse.Namespace) -> None:
    from umcl.data.pseudonyms import fingerprint, resolve_key

    settings = _settings(args)
    key = resolve_key([s.path for s in settings.data.sources], settings.demo.folder)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(fingerprint(key) + "\n")


def cmd_unify(args: argparse.Namespace) -> None:
    from umcl.data.unify import unify

    summary = unify(_settings(args), args.validated, args.out, args.metrics)
    print(
        f"unify: {summary['rows']} triplets, {summary['patients']} patients, splits {summary['by_split']}, kinds {summary['by_kind']}"
    )


def cmd_preprocess(args: argparse.Namespace) -> None:
    from umcl.data.dicom import DecodeLimits
    from umcl.data.preprocess import build_cache

    settings = _settings(args)
    meta = build_cache(
        args.triplets,
        args.out,
        settings.preprocess.image_size,
        args.locator,
        settings.preprocess.workers,
        DecodeLimits.from_settings(settings.decode),
    )
    print(
        f"preprocess: {meta['count']} images cached at {meta['size']}×{meta['size']} in {args.out}"
    )


def cmd_train(args: argparse.Namespace) -> None:
    from umcl.model.pretrained import require_weights
    from umcl.training.launch import launcher_command

    settings = _settings(args)
    launcher = launcher_command(settings.train, args.argv)
    if launcher is not None:  # one worker per device (and node), each running this command
        if settings.model is not None:  # before any worker starts: one message, not N
            require_weights(settings.model)
        import signal
        import subprocess

        from umcl.training.runtime import signalled_when_parent_dies

        # A SIGTERM to this process alone (a cancelled flow) reaches torchrun, which stops its
        # workers; a SIGKILL of the group reaches all of them (umcl/training/runtime.py).
        stop_with_us = partial(signalled_when_parent_dies, signal.SIGTERM)
        done = subprocess.run(launcher, check=False, preexec_fn=stop_with_us)
        if done.returncode != 0:
            raise UMCLError(
                f"the training processes failed (torchrun exit status {done.returncode}); "
                "their messages are above"
            )
        return
    from umcl.train import train

    summary = train(settings, args.triplets, args.cache, args.out, args.checkpoints, args.live)
    if os.environ.get("RANK", "0") != "0":
        return  # rank 0 reports for the whole run
    where = f"{summary['world_size']}× {summary['device']}, {summary['precision']}"
    if summary["resumed_from"] == summary["steps"]:
        print(
            f"train: already trained ({summary['steps']} steps, checkpoint of the same params and data); model in {args.out}"
        )
    else:
        print(
            f"train: steps {summary['resumed_from']} → {summary['steps']} on {where}; "
            f"loss {summary['first_loss']:.3f} → {summary['final_loss']:.3f}; model in {args.out}"
        )
    best = summary.get("best_val")
    if best is not None and best["zero_shot_auroc"] is not None:
        print(
            f"train: exported step {summary['exported_step']} (train.select); validation zero-shot "
            f"AUROC {best['zero_shot_auroc']:.3f} at the best step {best['step']}"
        )


def cmd_evaluate(args: argparse.Namespace) -> None:
    from umcl.evaluate import run_evaluation
    from umcl.model_card import write_model_card
    from umcl.monitor.reference import reference_writer

    settings = _settings(args)
    for path in (args.model, args.triplets, args.cache):
        if not path.exists():
            raise MissingInputError(f"{path}: not there; run the stages before evaluate")
    metrics = run_evaluation(
        args.model, args.triplets, args.cache, settings.evaluate, settings.labels.uncertainty,
        settings.seed, args.metrics, args.plots, reliability_dir=args.reliability,
        headline_path=args.headline,
        scored=reference_writer(args.reference, settings.monitor, settings.seed) if args.reference else None,
    )  # fmt: skip
    if args.card:
        write_model_card(args.model, args.card, metrics)
    shown = [
        f"zero-shot {kind} macro AUROC {r['macro_auroc']:.3f}"
        for kind, r in metrics["zero_shot"].items()
        if r["macro_auroc"] is not None
    ]
    if "retrieval" in metrics:
        shown.append(f"image→text R@5 {metrics['retrieval']['image_to_text']['recall@5']:.3f}")
    if metrics.get("linear_probe", {}).get("macro_auroc") is not None:
        shown.append(f"linear probe macro AUROC {metrics['linear_probe']['macro_auroc']:.3f}")
    print(f"evaluate: {'; '.join(shown)} → {args.metrics}")


def cmd_gate(args: argparse.Namespace) -> None:
    from umcl.gate import run_gate

    report = run_gate(
        _settings(args), args.metrics, args.triplets, args.cache, args.locator, args.out,
        args.verdict,
    )  # fmt: skip
    against = (
        f"champion {report['champion']['tag']}"
        if report["champion"]
        else "thresholds only (no champion yet)"
    )
    checks = ", ".join(
        f"{c['name']} {c['value']:.3f} ≥ {c['threshold']:.3f}" for c in report["checks"]
    )
    print(f"gate: passed against {against}: {checks or 'every check switched off'} → {args.out}")


def cmd_package(args: argparse.Namespace) -> None:
    from umcl.package import package

    report = package(
        args.model,
        args.metrics,
        args.gate,
        args.out,
        None if args.no_bento else args.bentofile,
        reference=args.reference,
    )
    stored = "stored" if report["stored"] else "already in the store"
    before = f" (was {report['previous_champion']})" if report["previous_champion"] else ""
    bento = f"; bento {report['bento']}" if report["bento"] else ""
    print(f"package: {report['model']} {stored}, now the champion{before}{bento}")


def cmd_drift(args: argparse.Namespace) -> None:
    from datetime import UTC, datetime

    from umcl.monitor.report import drift_report, moment, write_report
    from umcl.monitor.served import store_folder

    monitor = _settings(args).monitor
    now = datetime.now(UTC)
    until = moment(args.until, now) if args.until else now
    store = args.store or store_folder(monitor, Path(args.params).resolve().parent)
    report = drift_report(store, monitor, moment(args.since, until), until, args.model)
    write_report(report, args.out, args.plots)
    why = f": {'; '.join(report['reasons'])}" if report.get("reasons") else ""
    why += f" ({report['note']})" if report.get("note") else ""
    print(
        f"drift: {report['verdict']} for {report['model']} over {report['images']} images{why} → {args.out}"
    )


def cmd_models(args: argparse.Namespace) -> None:
    from umcl import registry
    from umcl.gate import gated_metrics

    if args.action == "list":
        rows = registry.entries()
        if not rows:
            print(f"no UMCL models in the store ({registry.store_path()})")
            return
        print(f"{'tag':<28} {'created (UTC)':<19} {'zero-shot AUROC':>15} {'R@5':>6}  champion")
        for e in rows:
            scores = e.metadata.get("gate") or gated_metrics(e.metadata.get("metrics", {}))
            shown = [
                f"{scores.get(k):.3f}" if scores.get(k) is not None else "-"
                for k in ("zero_shot_macro_auroc", "recall_at_5")
            ]
            mark = (
                "*"
                if e.champion
                else ("rolled back" if e.labels.get(registry.ROLLED_BACK) == "true" else "")
            )
            print(f"{e.tag:<28} {e.created:%Y-%m-%d %H:%M:%S} {shown[0]:>15} {shown[1]:>6}  {mark}")
    elif args.action == "promote":
        if not args.tag:
            raise InputError("umcl models promote needs a TAG (see `umcl models list`)")
        entry = registry.promote(args.tag)
        print(
            f"models: {entry.tag} is the champion; `bentoml build --arg model={entry.tag}` makes its bento"
        )
    elif args.action == "champion":
        champion = registry.champion()
        if champion is None:
            raise MissingInputError(f"no champion in the model store ({registry.store_path()})")
        keys = ("data_version", "params_sha256", "git", "gate")
        print(json.dumps({"tag": champion.tag, **{k: champion.metadata.get(k) for k in keys}}))
    else:
        restored, demoted = registry.rollback()
        print(f"models: rolled back {demoted.tag}; {restored.tag} is the champion again")


def cmd_adapt(args: argparse.Namespace) -> None:
    settings = _settings(args)
    labels = args.labels or settings.adapt.labels
    if args.fingerprint:  # the DVC stage's trigger: the sample's content, or "none"
        from umcl.site_sample import sample_fingerprint

        args.fingerprint.parent.mkdir(parents=True, exist_ok=True)
        args.fingerprint.write_text(sample_fingerprint(labels, settings.adapt.max_images) + "\n")
        return
    if labels is None:
        message = "adapt.labels is null: no site sample, nothing adapted"
        if args.report:
            args.report.parent.mkdir(parents=True, exist_ok=True)
            args.report.write_text(json.dumps({"adapted": False, "reason": message}) + "\n")
        print(f"adapt: {message}")
        return
    if args.out is None:
        raise InputError("umcl adapt needs --out DIR for the adapted model")
    from umcl.adapt import adapt_model

    report = adapt_model(str(args.model), labels, args.out, settings, args.prompt_tuning)
    refitted = [n for n, f in report["findings"].items() if f["refitted"]]
    kept = {n: f["reason"] for n, f in report["findings"].items() if not f["refitted"]}
    sample = report["sample"]
    tuned = report["prompt_tuning"].get("steps")
    print(
        f"adapt: {sample['rows_in']} rows = {sample['kept']} images used + {sample['refused']} "
        f"refused; refitted {refitted or 'no finding'}"
        + (f"; prompts tuned {tuned} steps" if tuned else "")
        + f" → {args.out}"
    )
    for name, reason in kept.items():
        if name in sample["findings"]:
            print(f"adapt: {name} not refitted: {reason}")
    if args.deploy:
        report["deployed"] = deploy_adapted(args, settings)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps({"adapted": True, **report}, indent=2) + "\n")


def deploy_adapted(args: argparse.Namespace, settings) -> dict:
    """The adapted model through evaluate → gate → package, as any candidate goes."""
    from umcl.evaluate import run_evaluation
    from umcl.gate import run_gate
    from umcl.package import package

    metrics, gate = args.deploy / "eval.json", args.deploy / "gate.json"
    run_evaluation(
        args.out, args.triplets, args.cache, settings.evaluate, settings.labels.uncertainty,
        settings.seed, metrics,
    )  # fmt: skip
    run_gate(settings, metrics, args.triplets, args.cache, args.locator, gate)
    # The drift reference is the site sample's, written into the model directory by adapt.
    packaged = package(args.out, metrics, gate, args.deploy / "package.json",
                       None if args.no_bento else args.bentofile)  # fmt: skip
    print(f"adapt: {packaged['model']} passed the gate and is the champion "
          f"(was {packaged['previous_champion']})")  # fmt: skip
    return {"model": packaged["model"], "previous_champion": packaged["previous_champion"],
            "bento": packaged["bento"]}  # fmt: skip


def cmd_classify(args: argparse.Namespace) -> None:
    from umcl.batch_classify import BatchSettings, classify_source
    from umcl.config import normalise_view
    from umcl.data.dicom import DecodeLimits

    settings = _settings(args)
    batch = BatchSettings(
        batch_size=args.batch_size, workers=args.workers, overwrite=args.overwrite,
        views=tuple(normalise_view(v) for v in args.views),
        limits=DecodeLimits.from_settings(settings.decode),
    )  # fmt: skip
    counts = classify_source(args.source, args.out, args.model, args.findings, args.not_in, batch)
    print(json.dumps({"out": str(args.out), **counts}))


def cmd_export(args: argparse.Namespace) -> None:
    from umcl.onnx_export import export_onnx

    report = export_onnx(args.model, args.onnx)
    checked = report["checked"]
    print(
        f"export: {report['model']} → {args.onnx} (ONNX opset {report['opset']}; checked in ONNX "
        f"Runtime {checked['onnxruntime']}: embeddings within {checked['max_abs_difference']:.1e}"
        f" of PyTorch)"
    )


def cmd_label(args: argparse.Namespace) -> None:
    import polars as pl

    from umcl.data.labeler import label_reports
    from umcl.data.reports import join_sections
    from umcl.labels import LabelSpace

    if not args.input.is_file():
        raise MissingInputError(f"{args.input}: no such file")
    table = pl.read_csv(args.input, infer_schema=False)
    missing = [c for c in [args.id_column, *args.text_columns] if c not in table.columns]
    if missing:
        raise InputError(f"{args.input}: no column(s) {missing}; columns are {table.columns}")
    texts = [
        join_sections(*(row[c] for c in args.text_columns)) for row in table.iter_rows(named=True)
    ]
    # The label space of --params (its `labels.custom` findings too); outside a project, with no
    # params.yaml, the 14 CheXpert observations.
    no_project = args.params == DEFAULT_PARAMS and not args.params.exists()
    space = LabelSpace() if no_project else LabelSpace.from_settings(_settings(args).labels)
    labels = label_reports(texts, space.names, space.phrases)
    out = pl.DataFrame({args.id_column: table[args.id_column]}).with_columns(
        pl.Series(name, [r[name] for r in labels], dtype=pl.Int8) for name in space.names
    )
    out.write_csv(args.out)
    print(f"label: {out.height} reports labelled → {args.out}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="umcl", description=f"UMCL pipeline stages: {STAGES}.")
    parser.add_argument(
        "--params",
        type=Path,
        default=DEFAULT_PARAMS,
        help="settings file (default: params.yaml)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="STAGE")

    def stage(name: str, func: Callable, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        return p

    p = stage(
        "demo",
        cmd_demo,
        "write synthetic demo studies (DICOM, reports, label tables) under data/raw/demo",
    )
    p.add_argument("--out", type=Path, help="override demo.out")
    p = stage(
        "preset",
        cmd_preset,
        "run the pipeline with a preset's params laid over params.yaml, as a DVC experiment",
    )
    p.add_argument("preset", type=Path, help="a params overlay, e.g. configs/gpu.yaml")
    p.add_argument("--name", help="the experiment's name (default: the preset's file name)")
    p.add_argument("--target", default="evaluate", help="the last stage to run (default evaluate)")
    p = stage(
        "validate",
        cmd_validate,
        "read every source, validate with Great Expectations, quarantine bad rows",
    )
    p.add_argument("--out", type=Path, default=Path("data/validated"))
    p.add_argument("--quarantine", type=Path, default=Path("data/quarantine"))
    p.add_argument("--metrics", type=Path, default=Path("metrics/validation.json"))
    p.add_argument("--locator", type=Path, default=Path("data/locator"), help=LOCATOR_HELP)
    p = stage(
        "key-fingerprint",
        cmd_key_fingerprint,
        "write a one-way fingerprint of the pseudonym key (UMCL_PSEUDONYM_KEY), so DVC reruns ingestion when it changes",
    )
    p.add_argument("--out", type=Path, default=Path("data/pseudonym_key.fingerprint"))
    p = stage(
        "unify", cmd_unify, "validated sources → the triplet table (labels, patient-level split)"
    )
    p.add_argument("--validated", type=Path, default=Path("data/validated"))
    p.add_argument("--out", type=Path, default=Path("data/unified/triplets.parquet"))
    p.add_argument("--metrics", type=Path, default=Path("metrics/unify.json"))
    p = stage(
        "preprocess", cmd_preprocess, "decode every image once into the memory-mapped uint8 cache"
    )
    p.add_argument("--triplets", type=Path, default=Path("data/unified/triplets.parquet"))
    p.add_argument("--locator", type=Path, default=Path("data/locator"), help=LOCATOR_HELP)
    p.add_argument("--out", type=Path, default=Path("data/cache"))
    p = stage(
        "train", cmd_train, "pretrain UMCL on the train split; resumes from the last checkpoint"
    )
    p.add_argument("--triplets", type=Path, default=Path("data/unified/triplets.parquet"))
    p.add_argument("--cache", type=Path, default=Path("data/cache"))
    p.add_argument("--out", type=Path, default=Path("models/candidate"))
    p.add_argument("--checkpoints", type=Path, default=Path("models/checkpoints"))
    p.add_argument(
        "--live", type=Path, default=Path("metrics/train"), help="dvclive metrics and plots"
    )
    p = stage(
        "evaluate", cmd_evaluate, "score a packaged model on the test split of a triplet table"
    )
    p.add_argument("--model", type=Path, default=Path("models/candidate"))
    p.add_argument("--triplets", type=Path, default=Path("data/unified/triplets.parquet"))
    p.add_argument(
        "--cache",
        type=Path,
        default=Path("data/cache"),
        help="image cache holding the table's images",
    )
    p.add_argument("--metrics", type=Path, default=Path("metrics/eval.json"))
    p.add_argument("--headline", type=Path, help="the figures experiments compare (JSON)")
    p.add_argument("--plots", type=Path, help="folder for ROC curves (one CSV per prompt kind)")
    p.add_argument(
        "--reliability",
        type=Path,
        help="folder for reliability diagrams (before/after calibration)",
    )
    p.add_argument("--card", type=Path, help="write a model card (markdown) here")
    p.add_argument(
        "--reference", type=Path, help="the monitor's drift reference (umcl/monitor/reference.py)"
    )
    p = stage(
        "gate", cmd_gate, "may the candidate replace the champion? thresholds + no regression"
    )
    p.add_argument(
        "--metrics",
        type=Path,
        default=Path("metrics/eval.json"),
        help="the candidate's `umcl evaluate` metrics",
    )
    p.add_argument("--triplets", type=Path, default=Path("data/unified/triplets.parquet"))
    p.add_argument("--cache", type=Path, default=Path("data/cache"))
    p.add_argument("--locator", type=Path, default=Path("data/locator"), help=LOCATOR_HELP)
    p.add_argument("--out", type=Path, default=Path("metrics/gate.json"))
    p.add_argument("--verdict", type=Path, help="the verdict as a number: {passed: 1 | 0} (JSON)")
    p = stage(
        "package",
        cmd_package,
        "store a candidate that passed the gate, promote it, build the bento",
    )
    p.add_argument("--model", type=Path, default=Path("models/candidate"))
    p.add_argument("--metrics", type=Path, default=Path("metrics/eval.json"))
    p.add_argument("--gate", type=Path, default=Path("metrics/gate.json"))
    p.add_argument("--out", type=Path, default=Path("metrics/package.json"))
    p.add_argument("--bentofile", type=Path, default=Path("bentofile.yaml"))
    p.add_argument("--no-bento", action="store_true", help="store and promote only")
    p.add_argument(
        "--reference", type=Path, help="the drift reference `umcl evaluate` wrote, stored with it"
    )
    p = stage(
        "models",
        cmd_models,
        "the model store: list models, show the champion (JSON), promote one, roll back",
    )
    p.add_argument("action", choices=["list", "champion", "promote", "rollback"])
    p.add_argument("tag", nargs="?", help="umcl:<version> (promote)")
    p = stage(
        "drift",
        cmd_drift,
        "judge a window of the service's records against the served model's reference",
    )
    p.add_argument(
        "--since", default="24h", help="window start: 24h, 7d, … before now, or ISO time"
    )
    p.add_argument("--until", help="window end (default: now)")
    p.add_argument("--model", help="umcl:<version> (default: the champion)")
    p.add_argument(
        "--store", type=Path, help="the records (default: UMCL_MONITOR_DIR, else monitor.store)"
    )
    p.add_argument("--out", type=Path, default=Path("metrics/drift.json"))
    p.add_argument("--plots", type=Path, default=Path("plots/drift"), help="positive-rate plot")
    p = stage(
        "adapt",
        cmd_adapt,
        "fit a model's thresholds (and optionally its prompts) to a site's labelled sample",
    )
    p.add_argument("--model", default="models/candidate", help="a model directory or umcl:<tag>")
    p.add_argument("--labels", type=Path, help="the site's sample CSV (default: adapt.labels)")
    p.add_argument("--out", type=Path, help="the adapted model's directory (replaced)")
    p.add_argument("--report", type=Path, help="what was refitted, refused and measured (JSON)")
    p.add_argument(
        "--prompt-tuning", action=argparse.BooleanOptionalAction, default=None,
        help="also tune the prompt contexts (default: adapt.prompt_tuning)",
    )  # fmt: skip
    p.add_argument("--fingerprint", type=Path, help="only write the sample's content hash here")
    p.add_argument(
        "--deploy", type=Path, metavar="DIR",
        help="then evaluate, gate and package the adapted model, writing their reports to DIR",
    )  # fmt: skip
    p.add_argument("--triplets", type=Path, default=Path("data/unified/triplets.parquet"))
    p.add_argument("--cache", type=Path, default=Path("data/cache"))
    p.add_argument("--locator", type=Path, default=Path("data/locator"), help=LOCATOR_HELP)
    p.add_argument("--bentofile", type=Path, default=Path("bentofile.yaml"))
    p.add_argument("--no-bento", action="store_true", help="store and promote only")
    p = stage(
        "classify",
        cmd_classify,
        "score every image of a folder, PACS export or CSV of paths: one row per file, resumable",
    )
    p.add_argument("source", type=Path, help="a folder, or a CSV with a `path` column")
    p.add_argument("--out", type=Path, required=True, help="predictions .parquet or .csv")
    p.add_argument("--model", default="umcl:champion", help="a model directory or umcl:<tag>")
    p.add_argument("--findings", nargs="+", help="finding names (default: the model's labels)")
    p.add_argument("--views", nargs="+", default=["PA", "AP", "UNKNOWN"],
                   help="views scored (a source's `views`; default: frontal and unstated)")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=64, help="files per forward pass and part")
    p.add_argument("--workers", type=int, default=1, help="decode processes (1: in this one)")
    p.add_argument("--not-in", type=Path, metavar="DIR",
                   help="leave out files in the predictions already in DIR")  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="score again into an existing --out")
    p = stage(
        "export",
        cmd_export,
        "write the model for ONNX Runtime or Triton: image encoder graph + findings' prompt matrix",
    )
    p.add_argument("--onnx", type=Path, required=True, metavar="DIR", help="a new directory")
    p.add_argument("--model", default="umcl:champion", help="a model directory or umcl:<tag>")
    p = stage("label", cmd_label, "label free-text reports: one column per label (1, 0, -1, blank)")
    p.add_argument("input", type=Path, help="CSV with an id column and report text columns")
    p.add_argument("--id-column", required=True)
    p.add_argument("--text-columns", nargs="+", required=True)
    p.add_argument("--out", type=Path, required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv  # what a launcher hands on to the processes it starts
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # Library warnings (pydicom's quote header values) reach the stage log only as "withheld".
    quiet_stage_libraries()
    try:
        args.func(args)
    except UMCLError as exc:  # one the user can fix: one line; anything else keeps its traceback
        message = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        print(f"umcl {args.command}: error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
