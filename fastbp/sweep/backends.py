"""Where a round of jobs runs: in this process, or on a Dask cluster."""

import math

from .population import _advance



class _Local:
    """Jobs run one after another in this process (each job's population uses every core)."""

    split = False

    def __init__(self, data):
        self.data = data

    def map(self, jobs, fixed, on_result):
        for j, job in enumerate(jobs):
            on_result(j, _advance(*job, *self.data, *fixed))

    def close(self):
        pass


class _Dask:
    """Jobs on a Dask cluster: the data scattered once, each job submitted with retries (a worker that
    dies has its jobs run elsewhere); a job cancelled because its scattered data died with a worker is
    submitted again with the data scattered anew."""

    split = True

    def __init__(self, data, scheduler):
        try:
            from dask.distributed import Client, LocalCluster, as_completed
            from distributed.client import FutureCancelledError
        except ImportError:
            raise ValueError('backend: "dask" needs dask.distributed: pip install "fastbp[dask]"') from None
        self._as_completed, self._cancelled = as_completed, FutureCancelledError
        self.cluster = None
        if scheduler is None:
            self.cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True)
            self.client = Client(self.cluster)
        else:
            self.client = Client(scheduler)
        self.data, self.scattered = data, None

    def map(self, jobs, fixed, on_result):
        pending = list(range(len(jobs)))
        for _ in range(4):
            if self.scattered is None:
                self.scattered = self.client.scatter(list(self.data), broadcast=True)
            futures = {self.client.submit(_advance, *jobs[j], *self.scattered, *fixed, pure=False, retries=3): j
                       for j in pending}
            pending = []
            for fut in self._as_completed(futures):
                try:
                    result = fut.result()
                except self._cancelled:
                    pending.append(futures[fut])
                    continue
                on_result(futures[fut], result)
            if not pending:
                return
            self.scattered = None
        raise RuntimeError(f"backend dask: {len(pending)} group(s) of trials cancelled 4 times over "
                           "(workers lost with their data); the finished trials are in `results`")

    def close(self):
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _split_for_workers(groups, parts):
    """Cut each group into about ``parts`` pieces so that several workers share a large group."""
    out = []
    for g in groups:
        size = max(1, math.ceil(len(g) / parts))
        out.extend(g[i:i + size] for i in range(0, len(g), size))
    return out
