"""The benchmark's report: the tables printed at the end, and the width plot (``--plot``)."""

import os
import statistics

from .machine import BUSY_WARN, load, log

DASH = "–"
STARTUP_TARGET_WARM = 1.5
STARTUP_TARGET_COLD = 20.0
MEMORY_CONFIG = "mnist"
PEER_INSTALL = {"torch": "pip install torch==2.13.0", "torch-compile": "pip install torch==2.13.0",
                "jax": "pip install jax jaxlib", "sklearn": "pip install scikit-learn"}
COLUMN = {"fastbp": "fastbp", "torch": "torch", "torch-compile": "torch.compile", "jax": "jax", "sklearn": "sklearn"}


def _median(xs):
    return statistics.median(xs) if xs else None


LABELS = {"fastbp": "fastbp float32", "torch": "PyTorch eager", "torch-compile": "torch.compile",
          "jax": "JAX jit (lax.scan)",
          "sklearn": "scikit-learn MLPClassifier", "matmul": "matrix products alone (BLAS)"}
STYLES = {"fastbp": {"color": "C3", "marker": "o", "lw": 2.2}, "torch": {"color": "C0", "marker": "s"},
          "torch-compile": {"color": "C4", "marker": "D"},
          "jax": {"color": "C2", "marker": "^"}, "sklearn": {"color": "C1", "marker": "v"},
          "matmul": {"color": "0.45", "marker": ".", "ls": "--"}}


def plot(path, sweep, machine):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullLocator

    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=120)
    widths = sweep["widths"]
    for fw, s in sweep["series"].items():
        pts = [(w, v) for w, v in zip(widths, s["samples_per_second"]) if v]
        if pts:
            ax.plot(*zip(*pts), label=LABELS.get(fw, fw), **STYLES.get(fw, {}))
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(FixedLocator(widths))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([str(w) for w in widths])
    ax.set_xlabel("hidden width H (network 784-H-H-10)")
    ax.set_ylabel("training samples / s (one SGD epoch)")
    cpu = machine.get("cpu", "?")
    ax.set_title(f"Cost against size: batch {sweep['batch']}, float32, plain SGD\n"
                 f"{machine.get('cores')} cores, {cpu}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    log(f"wrote {path}")


# ----------------------------------------------------------------------------- the report


def _fmt(v):
    return DASH if v is None else f"{v:,.0f}"


def _ratio(a, b):
    return DASH if a is None or b is None or b == 0 else f"{a / b:.2f}×"


def _mib(b):
    return f"{b / 2**20:,.1f} MiB"



def _load_note(r):
    ld = load(r)
    return f"  [other processes used {100 * ld:.0f}% of the CPU]" if ld > BUSY_WARN else ""


def _section_ran(r, title):
    """Whether an extra section has results to print; prints the blank line, or its error."""
    if not r:
        return False
    print()
    if "error" in r:
        print(f"{title}: error: {r['error']}")
        return False
    return True


def _print_training(t):
    if not _section_ran(t, "training extras"):
        return
    print(f"training extras, fastbp float32, {'-'.join(map(str, t['layers']))}, batch {t['batch']}, "
          f"{t['samples']:,} samples; wall time per epoch as the user sees it (shuffle, compiled epoch, "
          f"validation on {t['validation_samples']:,} rows, progress, callbacks), median of "
          f"{len(t['variants']['sgd']['epoch_seconds'])} interleaved rounds{_load_note(t)}:")
    print("| fit | seconds/epoch | samples/s | vs plain SGD |")
    print("|---|---:|---:|---:|")
    for k, v in t["variants"].items():
        print(f"| {k} | {v['median_seconds']:.3f} | {_fmt(v['samples_per_second'])} | "
              f"{100 * v['vs_sgd']:+.1f}% |")


def _print_sweep(w):
    if not _section_ran(w, "sweep"):
        return
    sw, ft = _median(w["sweep_seconds"]), _median(w["fit_seconds"])
    print(f"sweep: {w['trials']} trials (lr x momentum x seed) on digits, 64-32-10, batch 32, {w['epochs']} "
          f"epochs, validation on the last 20%; wall seconds, median of {len(w['sweep_seconds'])}"
          f"{_load_note(w)}:")
    print("| how | seconds | fastbp.sweep is faster by |")
    print("|---|---:|---:|")
    print(f"| fastbp.sweep (population training, local backend) | {sw:.2f} | – |")
    print(f"| Network.fit, one trial after another | {ft:.2f} | {ft / sw:.2f}× |")
    if "sklearn_seconds" in w:
        sk = w["sklearn_seconds"]
        print(f"| scikit-learn {w['sklearn_version']} GridSearchCV(MLPClassifier(solver='sgd'), n_jobs=2), once "
              f"| {sk:.2f} | {sk / sw:.2f}× |")
    b = w.get("best") or {}
    if b:
        print(f"best trial: {b.get('config')}  val_accuracy {b.get('val_accuracy')}")


# ----------------------------------------------------------------------------- the workers


def _header(report):
    m = report["machine"]
    print(f"machine: {m.get('cpu', '?')}, {m.get('cores')} logical cores"
          + (f" ({', '.join(m['simd'])})" if m.get("simd") else ""))
    vers = "  ".join(f"{k} {v}" for k, v in sorted(report["versions"].items()))
    print(f"python {m['python']}  {vers}  (fastbp sources {report['fastbp_source']})")
    print("BLAS libraries loaded, per worker (threadpoolctl):")
    for who, libs in report["blas"].items():
        print(f"  {who}: {'; '.join(libs) if libs else 'none (its own kernels)'}")
    s = report["settings"]
    print(f"workload: one epoch of plain SGD (lr {s['lr']}), ReLU hidden, softmax + cross-entropy, random "
          f"N(0,1) data; median of {s['repeats']} epoch(s) after a warm-up, in a process of its own"
          f"{' (--quick: one per framework and environment)' if s.get('quick') else ''}, the best of "
          f"{s.get('rounds', 1)} such round(s) of every worker; samples/s (higher is better)")
    for p in s["peers_missing"]:
        print(f"{p}: not installed, skipped ({PEER_INSTALL[p]})")
    rows = report["results"] + report.get("engines", []) + report.get("extras", []) + report.get("predict", [])
    busy = [r[k] for r in rows for k in ("busy_before", "foreign_load") if r.get(k) is not None]
    if busy:
        worst = max(busy)
        print(f"other load: up to {100 * worst:.0f}% of the CPU busy before and during the workers"
              + (" -- WARNING: another process was running; these numbers are not trustworthy"
                 if worst > BUSY_WARN else " (an idle machine)"))


def _cell(r, key="samples_per_second"):
    r = r or {}
    return _fmt(r.get(key)) + ("*" if load(r) > BUSY_WARN else "")


def _sps(r):
    return (r or {}).get("samples_per_second")


def print_report(report, configs, results, peers, args):
    """The whole report; ``results`` maps (section, name, framework, dtype) to the best round of a worker."""
    _header(report)
    print()
    main = list(peers)
    cols = ["config", "layers", "batch", "samples", "fastbp f32", "fastbp f64", *[COLUMN[p] for p in main],
            "matmul alone", *[f"f32/{COLUMN[p]}" for p in main if p != "sklearn"], "f32/matmul", "f32/f64"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "|".join(["---"] * 4 + ["---:"] * (len(cols) - 4)) + "|")
    starred = False
    for name, (sizes, batch, samples) in configs.items():
        def r(fw, dtype="float32", name=name):
            return results.get(("main", name, fw, dtype))

        f32 = _sps(r("fastbp"))
        row = [name, "-".join(map(str, sizes)), str(batch), f"{samples:,}", _cell(r("fastbp")),
               _cell(r("fastbp", "float64")), *[_cell(r(p)) for p in main], _cell(r("matmul")),
               *[_ratio(f32, _sps(r(p))) for p in main if p != "sklearn"], _ratio(f32, _sps(r("matmul"))),
               _ratio(f32, _sps(r("fastbp", "float64")))]
        print("| " + " | ".join(row) + " |")
        starred = starred or any(c.endswith("*") for c in row)
    if starred:
        print(f"* measured while other processes used more than {100 * BUSY_WARN:.0f}% of the CPU (after retries)")
    _print_errors(report)
    _print_engines(report, configs, results)
    _print_extras(report, results, peers)
    _print_predict(report, results)
    _print_warmup(configs, results)
    _print_startup(report, args)
    _print_memory(configs, results)
    _print_width(report, args)
    _print_training(report.get("training"))
    _print_sweep(report.get("sweep"))
    print(f"\n(benchmark took {report['seconds']:.0f} s)")


def _print_errors(report):
    for section in ("results", "engines", "extras", "predict"):
        for r in report.get(section, []):
            if "error" in r:
                what = "skipped, torch.compile failed" if r["framework"] == "torch-compile" else "error"
                print(f"{what}: {r.get('config')} {r['framework']} {r.get('dtype', '')}: {r['error']}")


def _print_engines(report, configs, results):
    engines = report["settings"].get("engines") or []
    if not engines:
        return
    print()
    print("engines forced (FASTBP_ENGINE), fastbp float32, samples/s; 'auto' is fastbp's own choice (the main "
          "table); the engine each run took, as fastbp.engine.policy.engine_for reports it, below:")
    print("| config | auto | " + " | ".join(engines) + " | best forced / auto |")
    print("|---|---:|" + "---:|" * len(engines) + "---:|")
    took = []
    for name in configs:
        auto = results.get(("main", name, "fastbp", "float32"))
        forced = [results.get(("engine", name, "fastbp", e)) for e in engines]
        best = max([_sps(f) for f in forced if _sps(f)] or [None], key=lambda v: v or 0)
        print(f"| {name} | {_cell(auto)} | " + " | ".join(_cell(f) for f in forced)
              + f" | {_ratio(best, _sps(auto))} |")
        took.append(f"{name}: auto {(auto or {}).get('engine') or '?'}; "
                    + ", ".join(f"{e} {(f or {}).get('engine') or '?'}" for e, f in zip(engines, forced)))
    for t in took:
        print(f"  {t}")


def _print_extras(report, results, peers):
    rows = report["settings"].get("extras") or []
    if not rows:
        return
    fws = ["fastbp", *[p for p in peers if p != "sklearn"], *(["sklearn"] if "sklearn" in peers else [])]
    cfg = report["settings"]["extras_config"]
    print()
    layers = "-".join(map(str, report["settings"]["extras_layers"]))
    print(f"fit options on {cfg} ({layers}), float32, samples/s; plain SGD from the main table:")
    cols = ["fit", *[COLUMN[f] for f in fws], *[f"fastbp/{COLUMN[p]}" for p in fws[1:]]]
    print("| " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * (len(cols) - 1))
    for row in ["plain SGD", *rows]:
        def r(fw, row=row):
            return results.get(("main", cfg, fw, "float32")) if row == "plain SGD" else results.get(
                ("extra", row, fw, "float32"))

        f = _sps(r("fastbp"))
        print(f"| {row} | " + " | ".join(_cell(r(fw)) for fw in fws) + " | "
              + " | ".join(_ratio(f, _sps(r(p))) for p in fws[1:]) + " |")


def _print_predict(report, results):
    fws = report["settings"].get("predict") or []
    if not fws:
        return
    p = report["settings"]["predict_job"]
    print()
    print(f"predict (class labels) with the {'-'.join(map(str, p['layers']))} network, float32 input: "
          f"{p['samples']:,} rows (median of the calls) and one row (median of many calls); PyTorch under "
          f"inference_mode, JAX jitted, fastbp Network.predict, scikit-learn MLPClassifier.predict:")
    print(f"| framework | {p['samples']:,} rows, ms | rows/s | one row, µs | fastbp faster by ({p['samples']:,}) "
          "| fastbp faster by (one row) |")
    print("|---|---:|---:|---:|---:|---:|")
    fb = results.get(("predict", "mnist", "fastbp", "float32")) or {}
    for fw in fws:
        r = results.get(("predict", "mnist", fw, "float32")) or {}
        ms = r.get("median_seconds")
        one = r.get("one_row_seconds")
        print(f"| {COLUMN[fw]} | {DASH if ms is None else f'{1e3 * ms:.2f}'} | {_cell(r)} | "
              f"{DASH if one is None else f'{1e6 * one:.1f}'} | {_ratio(ms, fb.get('median_seconds'))} | "
              f"{_ratio(one, fb.get('one_row_seconds'))} |")


def _print_warmup(configs, results):
    print()
    print("warm-up, seconds (fastbp: kernels compiled or loaded from Numba's cache on two batches, then one "
          "untimed epoch; peers: the first epoch, JAX's and torch.compile's including their compile):")
    print("| config | fastbp f32 compile | fastbp f32 1st epoch | fastbp f64 compile | torch 1st | torch.compile 1st "
          "| jax 1st | sklearn 1st | spread f32 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in configs:
        def g(fw, key, dtype="float32", name=name):
            v = (results.get(("main", name, fw, dtype)) or {}).get(key)
            return DASH if v is None else f"{v:.2f}"
        sp = (results.get(("main", name, "fastbp", "float32")) or {}).get("spread")
        print(f"| {name} | {g('fastbp', 'compile_seconds')} | {g('fastbp', 'warmup_seconds')} | "
              f"{g('fastbp', 'compile_seconds', 'float64')} | {g('torch', 'warmup_seconds')} | "
              f"{g('torch-compile', 'warmup_seconds')} | {g('jax', 'warmup_seconds')} | "
              f"{g('sklearn', 'warmup_seconds')} | {DASH if sp is None else f'{100 * sp:.0f}%'} |")


def _print_startup(report, args):
    st = report.get("startup")
    print()
    if st is None:
        print("start-up: skipped" + (" (--quick)" if args.quick else " (--no-startup)"))
    elif "error" in st:
        print(f"start-up: error: {st['error']}")
    else:
        w, c = st["warm"], st["cold"]
        print(f"start-up, warm Numba cache (fresh process: import fastbp + Network + one epoch of tiny, median of "
              f"{len(st['warm_runs'])}): {w['wall']:.2f} s wall "
              f"[{'ok' if w['wall'] <= STARTUP_TARGET_WARM else 'OVER'} target {STARTUP_TARGET_WARM} s]; "
              f"in-script {w['script']:.2f} s = import {w['import']:.2f} + build {w['build']:.3f} "
              f"+ epoch {w['fit']:.2f}")
        print(f"first-ever compile (empty NUMBA_CACHE_DIR): {c['wall']:.1f} s wall "
              f"[{'ok' if c['wall'] <= STARTUP_TARGET_COLD else 'OVER'} target {STARTUP_TARGET_COLD:.0f} s]; "
              f"import {c['import']:.2f} + build {c['build']:.3f} + epoch with compile {c['fit']:.1f}")


def _print_memory(configs, results):
    mem = [(n, results.get(("main", n, "fastbp", "float32"))) for n in configs]
    mem = [(n, r) for n, r in mem if r and "memory" in r]
    if not mem:
        return
    print()
    print("memory, fastbp float32 worker (peak RSS = getrusage ru_maxrss; bound = baseline + data + "
          "4 x params + work buffers):")
    print("| config | peak RSS | bound | baseline (import+compile) | data (X, one-hot Y, perm) | 4 x params "
          "| work (batch x widths) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for n, r in mem:
        mm = r["memory"]
        star = " (the target)" if n == MEMORY_CONFIG else ""
        print(f"| {n}{star} | {_mib(mm['peak_rss'])} | {_mib(mm['bound'])} | {_mib(mm['baseline_rss'])} | "
              f"{_mib(mm['data_bytes'])} | {_mib(mm['params_bytes_x4'])} | {_mib(mm['work_bytes'])} |")


def _print_width(report, args):
    ws = report.get("width_sweep")
    if not ws:
        return
    print()
    print(f"width sweep, 784-H-H-10, batch {ws['batch']}, float32, samples/s (plot: {args.plot}):")
    fws = list(ws["series"])
    print("| H | samples | " + " | ".join(fws) + " |")
    print("|---:|---:|" + "---:|" * len(fws))
    for i, h in enumerate(ws["widths"]):
        print(f"| {h} | {ws['samples'][i]:,} | "
              + " | ".join(_fmt(ws["series"][f]["samples_per_second"][i]) for f in fws) + " |")
