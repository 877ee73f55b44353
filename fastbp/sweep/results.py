"""A sweep's result, and its JSON-lines results file (appended, fsynced; read back for resuming)."""

import csv
import json
import math
import os
import warnings

from .spaces import _canonical



class SweepResult:
    """The trials of a sweep: ``trials`` (one record each), ``best``, ``best_network()``,
    ``network(record)``, ``leaderboard``, ``to_csv``.

    A record holds the trial's ``config`` (every setting, swept or not), its settings split
    for reuse (``network``: ``Network.from_config``'s; ``fit``: ``Network.fit``'s keyword
    arguments), its ``final`` metrics and per-epoch ``history``, its ``seconds`` and a
    ``params_digest``; ``folds`` with ``cv``, ``pruned_at_epoch`` for a pruned trial.
    """

    def __init__(self, trials, metric, mode, networks=None, retrain=None):
        self.trials = trials
        self.metric = metric
        self.mode = mode
        self._networks = {} if networks is None else networks
        self._retrain = retrain
        self._refits = {}

    def _score(self, t):
        v = t["final"].get(self.metric, math.nan)
        if v is None or not math.isfinite(v):
            return -math.inf
        return v if self.mode == "max" else -v

    @property
    def best(self):
        """The record of the best trial by ``metric``."""
        return max(self.trials, key=self._score)

    def network(self, record):
        """The trained Network of a trial (one of ``trials``).

        The network trained in the run when this result holds it, otherwise one retrained
        from the trial's settings and seed, bitwise the same. A pruned trial's network is
        the one at the epoch it stopped; a diverged one's at its last finite epoch. A
        cross-validated trial is refit on all the training rows with its settings
        (as scikit-learn's ``GridSearchCV(refit=True)``), for as many epochs as it ran.
        """
        if not isinstance(record, dict) or "config" not in record:
            raise TypeError(f"record: expected a trial record (an item of result.trials), got {record!r}")
        key = _canonical(record["config"])
        if record.get("folds") is None and key in self._networks:
            return self._networks[key][0]
        if key not in self._refits:
            if self._retrain is None:
                raise ValueError("record: this SweepResult was made without its data, so it cannot retrain the "
                                 "trial; use Network.from_config(record['network']).fit(X, y, **record['fit'])")
            self._refits[key] = self._retrain(record)
        return self._refits[key]

    def best_network(self):
        """The trained Network of the best trial (see ``network``)."""
        return self.network(self.best)

    def leaderboard(self, top=10):
        return sorted(self.trials, key=self._score, reverse=True)[:top]

    def to_csv(self, path):
        """One row per trial: its swept settings and final metrics."""
        keys = sorted({k for t in self.trials for k in t["config"]})
        metrics = sorted({k for t in self.trials for k in t["final"]})
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(keys + [f"final_{m}" for m in metrics] + ["seconds"])
            for t in self.trials:
                w.writerow([json.dumps(t["config"].get(k)) if isinstance(t["config"].get(k), (list, dict))
                            else t["config"].get(k) for k in keys] + [t["final"].get(m) for m in metrics]
                           + [t["seconds"]])

    def __len__(self):
        return len(self.trials)

    def __repr__(self):
        b = self.best
        return f"SweepResult({len(self)} trials, best {self.metric}={b['final'].get(self.metric)} with {b['config']})"


def _append(path, records):
    with open(path, "a+b") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":  # a line cut short by a crash: end it, and it is skipped on reading
                f.write(b"\n")
    with open(path, "a") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _read_results(path):
    """The finished trials of a results file by their settings. A line that is not a whole record (cut short
    by a crash, edited, not text) is named in a warning, and its trial runs again."""
    done = {}
    if path is None or not os.path.exists(path):
        return done
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw.decode())
                if not (isinstance(rec, dict) and isinstance(rec.get("config"), dict)
                        and isinstance(rec.get("final"), dict)):
                    raise ValueError("expected a trial record with 'config' and 'final'")
                done[_canonical(rec["config"])] = rec
            except (ValueError, TypeError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
                warnings.warn(f"results: {os.fspath(path)!r} line {number} is not a trial record ({e}); "
                              "that trial runs again", stacklevel=3)
    return done
