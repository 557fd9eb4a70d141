"""The ``star`` command line.

  star run [--config F] [--task T] [--model M] [--iterations N] [--out DIR] [--set k=v ...]
  star run --resume DIR
  star eval [--task T] [--model M] [--adapter DIR] [--direct] [--out DIR] [--set k=v ...]
  star export DIR [--out FOLDER]
  star runs [ROOT ...]
  star summary DIR [--json]
  star config            (every config field with its doc and default)
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import sqlite3
import sys
import time
from pathlib import Path

from . import config as config_mod
from .config import ConfigError, ModelError

log = logging.getLogger("star")


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML or JSON config file")
    p.add_argument("--task", help="arithmetic | commonsenseqa | gsm8k")
    p.add_argument("--model", help="hub id, local folder, .gguf file, or bundled:smollm2-135m")
    p.add_argument("--train-file", dest="train_file", help="training questions (JSONL or datasets folder/id)")
    p.add_argument("--eval-file", dest="eval_file", help="evaluation questions (JSONL or datasets folder/id)")
    p.add_argument("--out", help="run folder (default: runs/<task>-<timestamp>)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config field (repeatable); see `star config`")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="star", description="STaR: self-taught reasoner workbench")
    sub = ap.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="start (or resume) a STaR run")
    _add_run_flags(r)
    r.add_argument("--iterations", type=int, help="STaR iterations")
    r.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped or crashed run")

    e = sub.add_parser("eval", help="evaluate a model (and optionally an adapter) on a task's eval split")
    _add_run_flags(e)
    e.add_argument("--adapter", help="peft adapter folder to evaluate on top of the model")
    e.add_argument("--direct", action="store_true",
                   help="also evaluate without rationales (direct-answer exemplars; sets direct_baseline=true)")

    x = sub.add_parser("export", help="write the kept training examples of each iteration as JSONL")
    x.add_argument("run_dir")
    x.add_argument("--out", help="folder for iter_<i>.jsonl (default: RUN_DIR/export)")

    ls = sub.add_parser("runs", help="list runs with their status")
    ls.add_argument("roots", nargs="*", default=["runs"])
    ls.add_argument("--json", action="store_true", help="print JSON (one object per run)")

    s = sub.add_parser("summary", help="status, decisions and accuracies of a run")
    s.add_argument("run_dir")
    s.add_argument("--json", action="store_true", help="print JSON")

    sub.add_parser("config", help="list every config field with its default and doc")
    return ap


def _default_out(task: str) -> Path:
    return Path("runs") / f"{task}-{time.strftime('%Y%m%d-%H%M%S')}"


def cmd_run(a: argparse.Namespace) -> int:
    from . import loop

    if a.resume:
        if a.config or a.task or a.model or a.iterations is not None or a.sets or a.out:
            raise ConfigError("--resume takes no other settings: the run's saved config is used")
        loop.resume(a.resume, progress=not a.quiet)
        return _finished(Path(a.resume))
    cfg = config_mod.build(a.config, {"task": a.task, "model": a.model, "iterations": a.iterations,
                                      "train_file": a.train_file, "eval_file": a.eval_file}, a.sets)
    out = Path(a.out) if a.out else _default_out(cfg.task)
    log.info("run folder: %s", out)
    loop.start(cfg, out, progress=not a.quiet)
    return _finished(out)


def _finished(run: Path) -> int:
    print(f"run finished: {run}")
    cmd_summary(argparse.Namespace(run_dir=str(run), json=False))
    print(f"inspect it: streamlit run app.py  (runs under ./runs are listed), or star summary {run} --json")
    return 0


def cmd_eval(a: argparse.Namespace) -> int:
    from . import loop

    sets = list(a.sets)
    if a.adapter:
        if not (Path(a.adapter) / "adapter_config.json").is_file():
            raise ConfigError(f"--adapter {a.adapter}: not a peft adapter folder (no adapter_config.json)")
        sets.append(f"eval_adapter={Path(a.adapter).resolve()}")
    if a.direct:
        sets.append("direct_baseline=true")
    cfg = config_mod.build(a.config, {"task": a.task, "model": a.model, "iterations": 0,
                                      "train_file": a.train_file, "eval_file": a.eval_file}, sets)
    out = Path(a.out) if a.out else Path("runs") / f"eval-{cfg.task}-{time.strftime('%Y%m%d-%H%M%S')}"
    loop.start(cfg, out, progress=not a.quiet)
    from .queries import summary

    s = summary(out)
    print(json.dumps({"run_dir": str(out), "accuracy": s["iterations"][0]["accuracy"],
                      "measures": s["iterations"][0]["measures"], "direct_baseline": s["direct_baseline"]}, indent=2))
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from .store import DB_NAME, check, connect

    run = Path(a.run_dir)
    check(run / DB_NAME, deep=True)
    out = Path(a.out) if a.out else run / "export"
    out.mkdir(parents=True, exist_ok=True)
    con = connect(run / DB_NAME, readonly=True)
    iters = [r[0] for r in con.execute("SELECT DISTINCT iteration FROM train_examples ORDER BY iteration")]
    for i in iters:
        path = out / f"iter_{i}.jsonl"
        n = 0
        with path.open("w", encoding="utf-8") as f:
            for r in con.execute("SELECT te.*, s.decision, s.reason, s.gold FROM train_examples te "
                                 "JOIN samples s ON s.id = te.sample_id WHERE te.iteration=? ORDER BY te.id", (i,)):
                f.write(json.dumps({"iteration": i, "task": r["task"], "question_id": r["question_id"],
                                    "source": r["source"], "prompt": r["prompt"], "completion": r["completion"],
                                    "gold": r["gold"], "reason": r["reason"]}, ensure_ascii=False) + "\n")
                n += 1
        print(f"{path}: {n} examples")
    con.close()
    if not iters:
        print("no kept training examples yet")
    return 0


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
        print("no runs under " + ", ".join(a.roots))
        return 0
    print(f"{'status':9} {'task':14} {'iterations':>10}  {'stage':12}  path")
    for r in runs:
        if r.get("problem"):
            print(f"{r['status']:9} {'-':14} {'-':>10}  {'-':12}  {r.get('path')}  ({r['problem']})")
            continue
        done = f"{max(0, (r.get('iterations_done') or 0) - 1)}/{r.get('iterations_planned', '?')}"  # iteration 0 is the baseline
        stage = f"{r.get('current_iteration', '')}:{r.get('current_stage') or ''}"
        print(f"{r.get('status', '?'):9} {r.get('task') or '?':14} {done:>10}  {stage:12}  {r.get('path')}")
    return 0


def _print_measures(measures: dict, changes: dict) -> None:
    """One line per task, split and group: accuracy, right-and-faithful accuracy and the share of outputs that
    show a rationale, each with n and its 95 % interval, then the paired change against the evaluation before."""
    from .queries import MEASURES
    from .stats import describe, describe_change

    for task, splits in measures.items():
        for split, groups in splits.items():
            for g, m in groups.items():
                parts = [describe(m[k]["k"], m[k]["n"]) if k == "accuracy" else f"{words} {describe(m[k]['k'], m[k]['n'])}"
                         for k, words in MEASURES.items() if k in m]
                ch = changes.get(task, {}).get(split, {}).get(g)
                if ch:
                    since = f"iter {ch['since']}" if ch["since_phase"] == "eval" else "the warm start"
                    parts.append(f"vs {since}: {describe_change(ch['lost'], ch['gained'])}")
                print(f"      {task} {split} {g}: " + "; ".join(parts))


def cmd_summary(a: argparse.Namespace) -> int:
    from .queries import WARM_NOTE, summary
    from .store import DB_NAME, check

    check(Path(a.run_dir) / DB_NAME, deep=True)  # damage anywhere in the file: rc 2, not a partial summary
    s = summary(Path(a.run_dir))
    if a.json:
        print(json.dumps(s, indent=2, default=str))
        return 0
    print(f"{s.get('name')}  [{s.get('status')}]  task={s.get('task')}  model={s.get('model')}")
    for it in s.get("iterations", []):
        dec = ", ".join(f"{ph}: " + " ".join(f"{k}={v}" for k, v in d.items())
                        for ph, d in it.get("decisions", {}).items())
        print(f"  iter {it['iteration']} ({it['stage']})  {dec}")
        _print_measures(it.get("measures") or {}, it.get("change") or {})
        if it["iteration"] == 0 and s.get("direct_baseline"):
            print("    direct answer (few-shot, no rationale), for reference:")
            _print_measures(s["direct_baseline"], {})
        if it["iteration"] == 0 and s.get("warm_start"):
            w = s["warm_start"]
            loss = f", final loss {w['final_loss']:.3f}" if w.get("final_loss") is not None else ""
            print(f"    warm start ({WARM_NOTE}): {w['examples']} examples, {w['train_steps']} steps{loss}; after it:")
            _print_measures(w.get("measures") or {}, w.get("change") or {})
    if s.get("error"):
        print(f"  error: {s['error']}")
    return 0


def cmd_config(a: argparse.Namespace) -> int:  # noqa: ARG001
    cfg = config_mod.StarConfig().to_dict()
    for name, doc in config_mod.field_docs().items():
        rng = config_mod.range_text(name)
        print(f"{name} = {cfg[name]!r}\n    {doc}" + (f"\n    range: {rng}" if rng else ""))
    return 0


def _disk_full(e: BaseException) -> str | None:
    """What ran out of space, when ``e`` (or an exception it was raised from or during) is a full disk:
    an OSError ENOSPC (an adapter or file write) or SQLite's "database or disk is full"."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            return f"{e.strerror or 'no space left on device'}" + (f": {e.filename}" if e.filename else "")
        if isinstance(e, sqlite3.OperationalError) and "disk is full" in str(e):
            return f"the run store: {e}"
        e = e.__cause__ or e.__context__
    return None


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    for noisy in ("transformers", "peft", "bitsandbytes", "datasets", "httpx"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    a = build_parser().parse_args(argv)
    from .store import StoreError
    from .tasks import DataError

    try:
        return {"run": cmd_run, "eval": cmd_eval, "export": cmd_export, "runs": cmd_runs,
                "summary": cmd_summary, "config": cmd_config}[a.cmd](a)
    except (ConfigError, DataError, ModelError, StoreError) as e:
        print(f"star: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001
        from .loop import RunError, Stopped

        full = _disk_full(e)
        if full:
            run = getattr(a, "resume", None) or getattr(a, "out", None)
            again = f"star run --resume {run}" if a.cmd == "run" and run else "the command again"
            print(f"star: error: disk full ({full}); the run store keeps every committed batch: free some space, "
                  f"then run {again}", file=sys.stderr)
            return 2
        if isinstance(e, RunError):
            print(f"star: error: {e}", file=sys.stderr)
            return 2
        if isinstance(e, sqlite3.DatabaseError):
            print(f"star: error: the run store cannot be read or written ({e})", file=sys.stderr)
            return 2
        if isinstance(e, Stopped):
            print("star: stopped; resume with `star run --resume RUN_DIR`", file=sys.stderr)
            return 143
        raise
    except KeyboardInterrupt:
        print("star: interrupted; resume with `star run --resume RUN_DIR`", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
