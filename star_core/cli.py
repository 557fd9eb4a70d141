"""The ``star`` command line.

star run [--config F] [--task T] [--model M] [--iterations N] [--out DIR] [--set k=v ...]
star run --resume DIR
star eval [--task T] [--model M] [--adapter DIR] [--direct] [--out DIR] [--set k=v ...]
star export DIR [--out FOLDER] [--annotations]
star report DIR [-o report.html]
star runs [ROOT ...] [--json]
star summary DIR [--json]
star config [--yaml]   (every config field with its doc and default; --yaml: a starter file)
star --version          (also: python -m star_core ...)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from . import config as config_mod
from .cli_errors import _disk_full as _disk_full
from .cli_errors import error_line
from .config import ConfigError
from .configfile import printable
from .store import ADAPTERS_DIR, CONFIG_NAME
from .tasks import TASKS

log = logging.getLogger("star")


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML or JSON config file")
    p.add_argument("--task", help=" | ".join(TASKS))
    p.add_argument("--model", help="hub id, local folder, .gguf file, or bundled:smollm2-135m")
    p.add_argument("--train-file", dest="train_file", help="training questions (JSONL or datasets folder/id)")
    p.add_argument("--eval-file", dest="eval_file", help="evaluation questions (JSONL or datasets folder/id)")
    p.add_argument("--out", help="run folder (default: runs/<task>-<timestamp>)")
    p.add_argument(
        "--sampler",
        help="where rationales are decoded: local (default) | ray (Ray workers; "
        "see ray_address, ray_workers in `star config`)",
    )
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config field (repeatable); see `star config`",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")


_RAW = argparse.RawDescriptionHelpFormatter
HELP = {  # subcommand: (help line, description, examples)
    "run": (
        "start (or resume) a STaR run",
        "Start a STaR run: few-shot rationales, filter, fine-tune a LoRA adapter, repeat (Zelikman et al. 2022).\n"
        "Every sample, decision, loss and accuracy goes to RUN_DIR/store.sqlite; a stopped or crashed run\n"
        "resumes where it stopped.",
        "star run --task arithmetic --iterations 2 --set n_train=200 --out runs/arith\n"
        "  star run --config star.yaml            (a starter file: star config --yaml > star.yaml)\n"
        "  star run --resume runs/arith",
    ),
    "eval": (
        "evaluate a model (and optionally an adapter) on a task's eval split",
        "Evaluate a model, or an adapter on its base model, on a task's eval split (a run of 0 iterations).\n"
        "With --adapter and no --model, the base model is the one the adapter was trained on (its run's\n"
        "config.yaml, else adapter_config.json); a different --model is used with a warning.",
        "star eval --task gsm8k --model bundled:smollm2-135m --direct\n"
        "  star eval --task arithmetic --adapter runs/arith/adapters/iter_2",
    ),
    "export": (
        "write the kept training examples of each iteration as JSONL",
        "Write the kept training examples of each iteration (prompt, completion, gold, reason) as\n"
        "RUN_DIR/export/iter_<i>.jsonl, e.g. to fine-tune with another trainer. With --annotations,\n"
        "write the people's annotations (RUN_DIR/annotations.sqlite) as JSONL instead.",
        "star export runs/arith\n  star export runs/arith --out /tmp/arith-examples\n"
        "  star export runs/arith --annotations --out arith-annotations.jsonl",
    ),
    "report": (
        "write a self-contained HTML report of a run",
        "Write one HTML file that opens without a server or a network: the accuracy curves with their\n"
        "95 % intervals, the filter funnel of each iteration, and a filterable list of the samples.",
        "star report runs/arith -o arith.html\n  star report runs/arith -o arith.html --max-samples 20000",
    ),
    "runs": (
        "list runs with their status",
        "List the run folders under each ROOT (default ./runs): status, task, iterations done, stage;\n"
        "an unreadable store is listed as corrupt or empty with the reason.",
        "star runs\n  star runs runs sample_data/runs --json",
    ),
    "summary": (
        "status, decisions and accuracies of a run",
        "Status, decisions and accuracies (with n, 95 % intervals and paired changes) of one run.\n"
        "Checks the store first (PRAGMA quick_check): a damaged store is an error (exit 2).",
        "star summary runs/arith\n  star summary runs/arith --json",
    ),
    "config": (
        "list every config field with its default and doc",
        "List every config field with its default, doc and range; --yaml prints a starter config file\n"
        "(every field at its default, docs as comments) that star run --config accepts.",
        "star config\n  star config --yaml > star.yaml && star run --config star.yaml",
    ),
}


def _sub(sub, name: str) -> argparse.ArgumentParser:
    helpline, desc, examples = HELP[name]
    return sub.add_parser(name, help=helpline, description=desc, epilog=f"example:\n  {examples}", formatter_class=_RAW)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    ap = argparse.ArgumentParser(
        prog="star",
        description="STaR: self-taught reasoner workbench",
        epilog="example:\n  star run --task arithmetic --iterations 2\n"
        "  star <command> --help   (each command's options and examples)",
        formatter_class=_RAW,
    )
    ap.add_argument("--version", action="version", version=f"star {__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True)

    r = _sub(sub, "run")
    _add_run_flags(r)
    r.add_argument("--iterations", type=int, help="STaR iterations")
    r.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped or crashed run")

    e = _sub(sub, "eval")
    _add_run_flags(e)
    e.add_argument("--adapter", help="peft adapter folder to evaluate on top of its base model (or --model)")
    e.add_argument(
        "--direct",
        action="store_true",
        help="also evaluate without rationales (direct-answer exemplars; sets direct_baseline=true)",
    )

    x = _sub(sub, "export")
    x.add_argument("run_dir")
    x.add_argument(
        "--out",
        help="folder for iter_<i>.jsonl (default: RUN_DIR/export); with --annotations, "
        "the JSONL file (default: RUN_DIR/export/annotations.jsonl)",
    )
    x.add_argument(
        "--annotations",
        action="store_true",
        help="export the annotations (label, tags, note, the audit's verdict) instead",
    )

    rp = _sub(sub, "report")
    rp.add_argument("run_dir")
    rp.add_argument("-o", "--out", default="report.html", help="the HTML file to write (default: report.html)")
    rp.add_argument(
        "--max-samples",
        type=int,
        default=5000,
        dest="max_samples",
        help="at most this many samples in the list (the newest iterations first; default 5000)",
    )

    ls = _sub(sub, "runs")
    ls.add_argument("roots", nargs="*", default=["runs"])
    ls.add_argument("--json", action="store_true", help="print JSON (one object per run)")

    s = _sub(sub, "summary")
    s.add_argument("run_dir")
    s.add_argument("--json", action="store_true", help="print JSON")

    c = _sub(sub, "config")
    c.add_argument("--yaml", action="store_true", help="print a starter YAML config file instead")
    return ap


def _default_out(task: str) -> Path:
    return Path("runs") / f"{task}-{time.strftime('%Y%m%d-%H%M%S')}"


def cmd_run(a: argparse.Namespace) -> int:
    from . import loop

    if a.resume:
        if a.config or a.task or a.model or a.iterations is not None or a.sets or a.out or a.sampler:
            raise ConfigError("--resume takes no other settings: the run's saved config is used")
        loop.resume(a.resume, progress=not a.quiet)
        return _finished(Path(a.resume))
    cfg = config_mod.build(
        a.config,
        {
            "task": a.task,
            "model": a.model,
            "iterations": a.iterations,
            "train_file": a.train_file,
            "eval_file": a.eval_file,
            "sampler": a.sampler,
        },
        a.sets,
    )
    out = Path(a.out) if a.out else _default_out(cfg.task)
    log.info("run folder: %s", out)
    loop.start(cfg, out, progress=not a.quiet)
    return _finished(out)


def _finished(run: Path) -> int:
    _show(f"run finished: {run}")
    cmd_summary(argparse.Namespace(run_dir=str(run), json=False))
    print(f"inspect it: streamlit run app.py  (runs under ./runs are listed), or star summary {run} --json")
    return 0


def adapter_base(adapter: Path) -> tuple[str | None, str]:
    """The base model an adapter was trained on, and where that was read: the ``model`` of the run whose
    ``adapters/`` folder holds it (its config.yaml), else adapter_config.json's base_model_name_or_path."""
    run_cfg = adapter.resolve().parent.parent / CONFIG_NAME
    if adapter.resolve().parent.name == ADAPTERS_DIR and run_cfg.is_file():
        try:
            model = config_mod.load_file(run_cfg).get("model")
        except ConfigError:
            model = None
        if model:
            return str(model), str(run_cfg)
    try:
        model = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError, AttributeError):
        model = None
    return (str(model), str(adapter / "adapter_config.json")) if model else (None, "")


def cmd_eval(a: argparse.Namespace) -> int:
    from . import loop

    sets = list(a.sets)
    model = a.model
    if a.adapter:
        if not (Path(a.adapter) / "adapter_config.json").is_file():
            raise ConfigError(f"--adapter {a.adapter}: not a peft adapter folder (no adapter_config.json)")
        sets.append(f"eval_adapter={Path(a.adapter).resolve()}")
        base, source = adapter_base(Path(a.adapter))
        if base and model is None:
            model = base
            log.info("--adapter %s: base model %s (from %s)", a.adapter, base, source)
    if a.direct:
        sets.append("direct_baseline=true")
    cfg = config_mod.build(
        a.config,
        {
            "task": a.task,
            "model": model,
            "iterations": 0,
            "train_file": a.train_file,
            "eval_file": a.eval_file,
            "sampler": a.sampler,
        },
        sets,
    )
    if a.adapter and base and cfg.model != base:
        log.warning("--adapter %s was trained on %s (%s), but is evaluated on %s", a.adapter, base, source, cfg.model)
    out = Path(a.out) if a.out else Path("runs") / f"eval-{cfg.task}-{time.strftime('%Y%m%d-%H%M%S')}"
    loop.start(cfg, out, progress=not a.quiet)
    from .queries import summary

    s = summary(out)
    print(
        json.dumps(
            {
                "run_dir": str(out),
                "accuracy": s["iterations"][0]["accuracy"],
                "measures": s["iterations"][0]["measures"],
                "direct_baseline": s["direct_baseline"],
            },
            indent=2,
        )
    )
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from .queries.training_set import train_example_iterations, train_example_records
    from .runfolder import safe_path
    from .store import DB_NAME, check, connect

    run = Path(a.run_dir)
    check(run / DB_NAME, deep=True)
    if a.annotations:
        from .annotations import Annotations

        path = Path(a.out) if a.out else safe_path(run, "export/annotations.jsonl")
        path.parent.mkdir(parents=True, exist_ok=True)
        n = Annotations(run).export_jsonl(path)
        print(f"{path}: {n} annotations")
        return 0
    out = Path(a.out) if a.out else safe_path(run, "export")  # never written through a link out of the run
    out.mkdir(parents=True, exist_ok=True)
    con = connect(run / DB_NAME, readonly=True)
    iters = train_example_iterations(con)
    for i in iters:
        path = out / f"iter_{i}.jsonl"
        n = 0
        with path.open("w", encoding="utf-8") as f:
            for record in train_example_records(con, i):
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
                n += 1
        print(f"{path}: {n} examples")
    con.close()
    if not iters:
        print("no kept training examples yet")
    return 0


def cmd_report(a: argparse.Namespace) -> int:
    from .report import write_report
    from .store import DB_NAME, check

    if Path(a.out).is_dir():
        raise ConfigError(f"-o {a.out}: is a folder; name the HTML file to write (e.g. {Path(a.out) / 'report.html'})")
    check(Path(a.run_dir) / DB_NAME, deep=True)
    info = write_report(Path(a.run_dir), Path(a.out), max_samples=a.max_samples)
    print(f"{a.out}: {info['samples']} of {info['total']} samples, {info['bytes'] / 1e6:.1f} MB")
    return 0


def _show(line: str) -> None:
    """Print a line that holds stored strings (a run's name, model, error): control codes shown escaped."""
    print(printable(line))


def cmd_runs(a: argparse.Namespace) -> int:
    from .queries import list_runs
    from .store import DB_NAME, StoreError, check

    runs = list_runs([Path(r) for r in a.roots])
    for r in runs:
        if r.get("problem"):  # an unreadable store (status corrupt | empty): say exactly what is wrong
            try:
                check(Path(r["path"]) / DB_NAME)
            except StoreError as e:
                r["problem"] = str(e).split(": ", 1)[-1]
    if a.json:
        print(json.dumps(runs, indent=2, default=str))
        return 0
    if not runs:
        _show("no runs under " + ", ".join(a.roots))
        return 0
    _show(f"{'status':9} {'task':14} {'iterations':>10}  {'stage':12}  path")
    for r in runs:
        if r.get("problem"):
            _show(f"{r['status']:9} {'-':14} {'-':>10}  {'-':12}  {r.get('path')}  ({r['problem']})")
            continue
        # iteration 0 is the baseline
        done = f"{max(0, (r.get('iterations_done') or 0) - 1)}/{r.get('iterations_planned', '?')}"
        stage = f"{r.get('current_iteration', '')}:{r.get('current_stage') or ''}"
        _show(f"{r.get('status', '?'):9} {r.get('task') or '?':14} {done:>10}  {stage:12}  {r.get('path')}")
    return 0


def _print_measures(measures: dict, changes: dict) -> None:
    """One line per task, split and group: accuracy, right-and-faithful accuracy and the share of outputs that
    show a rationale, each with n and its 95 % interval, then the paired change against the evaluation before."""
    from .queries import MEASURES
    from .stats import describe, describe_change

    for task, splits in measures.items():
        for split, groups in splits.items():
            for g, m in groups.items():
                parts = [
                    describe(m[k]["k"], m[k]["n"]) if k == "accuracy" else f"{words} {describe(m[k]['k'], m[k]['n'])}"
                    for k, words in MEASURES.items()
                    if k in m
                ]
                ch = changes.get(task, {}).get(split, {}).get(g)
                if ch:
                    since = f"iter {ch['since']}" if ch["since_phase"] == "eval" else "the warm start"
                    parts.append(f"vs {since}: {describe_change(ch['lost'], ch['gained'])}")
                _show(f"      {task} {split} {g}: " + "; ".join(parts))


def cmd_summary(a: argparse.Namespace) -> int:
    from .queries import WARM_NOTE, star_effect_dicts, summary
    from .store import DB_NAME, check

    check(Path(a.run_dir) / DB_NAME, deep=True)  # damage anywhere in the file: rc 2, not a partial summary
    s = summary(Path(a.run_dir))
    s["star_effect"] = star_effect_dicts(Path(a.run_dir))
    if a.json:
        print(json.dumps(s, indent=2, default=str))
        return 0
    _show(f"{s.get('name')}  [{s.get('status')}]  task={s.get('task')}  model={s.get('model')}")
    for it in s.get("iterations", []):
        dec = ", ".join(
            f"{ph}: " + " ".join(f"{k}={v}" for k, v in d.items()) for ph, d in it.get("decisions", {}).items()
        )
        _show(f"  iter {it['iteration']} ({it['stage']})  {dec}")
        if it.get("curriculum"):
            from .curriculum import describe

            _show(f"    curriculum: {describe(it['curriculum'])}")
        _print_measures(it.get("measures") or {}, it.get("change") or {})
        if it["iteration"] == 0 and s.get("direct_baseline"):
            _show("    direct answer (few-shot, no rationale), for reference:")
            _print_measures(s["direct_baseline"], {})
        if it["iteration"] == 0 and s.get("warm_start"):
            w = s["warm_start"]
            loss = f", final loss {w['final_loss']:.3f}" if w.get("final_loss") is not None else ""
            _show(f"    warm start ({WARM_NOTE}): {w['examples']} examples, {w['train_steps']} steps{loss}; after it:")
            _print_measures(w.get("measures") or {}, w.get("change") or {})
    effects = s.get("star_effect") or []
    if effects:
        _show("  did STaR change each group (the model it started from vs the last iteration, paired):")
        for e in effects:
            _show(f"    {e['sentence']}")
    if s.get("error"):
        _show(f"  error: {s['error']}")
    return 0


def starter_yaml() -> str:
    """Every config field at its default, its doc and range as comments: a file ``star run --config`` reads."""
    import yaml

    cfg = config_mod.StarConfig().to_dict()
    out = ["# star run --config THIS_FILE  (every field at its default; `star config` lists them)", ""]
    for name, doc in config_mod.field_docs().items():
        rng = config_mod.range_text(name)
        out += [f"# {ln.strip()}" for ln in doc.splitlines()] + ([f"# range: {rng}"] if rng else [])
        out += [yaml.safe_dump({name: cfg[name]}, default_flow_style=False, sort_keys=False, width=10_000).strip(), ""]
    return "\n".join(out)


def cmd_config(a: argparse.Namespace) -> int:
    if a.yaml:
        print(starter_yaml())
        return 0
    cfg = config_mod.StarConfig().to_dict()
    for name, doc in config_mod.field_docs().items():
        rng = config_mod.range_text(name)
        print(f"{name} = {cfg[name]!r}\n    {doc}" + (f"\n    range: {rng}" if rng else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    for noisy in ("transformers", "peft", "bitsandbytes", "datasets", "httpx"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    a = build_parser().parse_args(argv)
    try:
        return {
            "run": cmd_run,
            "eval": cmd_eval,
            "export": cmd_export,
            "report": cmd_report,
            "runs": cmd_runs,
            "summary": cmd_summary,
            "config": cmd_config,
        }[a.cmd](a)
    except Exception as e:
        known = error_line(e, a)
        if known is None:
            raise
        print(known[1], file=sys.stderr)
        return known[0]
    except KeyboardInterrupt:
        print("star: interrupted; resume with `star run --resume RUN_DIR`", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
