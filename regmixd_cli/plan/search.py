"""Candidate search: Dirichlet(alpha * m0) candidates, scored, top-k mean.

This is the hot path of `schedule` and `online`, so it is written for speed and bounded memory:
candidates are generated straight into a reused float32 buffer as normalised gamma samples, in
chunks of `chunk_size` candidates, scored chunk by chunk, and only a running top-k (losses,
global indices, weights) survives between chunks. No Python loop touches individual rows. The
buffer is domain-major: each domain's gammas come from one scalar-shape call (numpy's fast path,
which also releases the GIL, so two threads draw different domains at once).

Reproducibility. Every active domain has its own random stream, seeded from `rng`, and candidate
i's draw for domain k is the i-th value of stream k, whatever the chunk size or thread count
(numpy's samplers draw value by value and a generator keeps its state between calls). The top k
are the k smallest by (loss, candidate index) -- ties, common with tree models whose predictions
are piecewise constant, go to the earlier candidate. So the same seed gives the same result for
ANY chunk size and number of threads.

Workers and clusters. Because the result does not depend on how the candidates are cut, a
search can score batches of candidates elsewhere (`search_mixture(..., executor=...)`,
`CandidatePool(..., executor=...)`:
`--jobs` processes or a Dask cluster, `fit.parallel`): this process draws the candidates (1-2 %
of the work) and sends each batch to a worker, which predicts it and returns its own top k (or,
for a pool, the model's prepared per-candidate work); the merge keeps the k smallest by (loss,
candidate index), exactly as one local pass does, so the result is byte-identical.

Zero prior weights. Dirichlet parameters must be positive, and a domain the prior excludes is a
domain the user does not want: domains with m0 = 0 (or so small that alpha * m0 is 0 in float32)
are held at weight 0 in every candidate and the Dirichlet is drawn over the remaining domains.

See docs/explanation/method.md.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from regmixd_cli.errors import InfeasibleError, UsageError

if TYPE_CHECKING:
    import numpy as np

    from regmixd_cli.fit.parallel import Executor

    ScoreFn = Callable[[np.ndarray], np.ndarray]
    FeasibleFn = Callable[[np.ndarray], np.ndarray]
    TransformFn = Callable[[np.ndarray], None]

DEFAULT_CANDIDATES = 100_000
DEFAULT_TOP_K = 128
DEFAULT_ALPHA = 1.0
# 2**17 rows: 100,000 candidates are one chunk; 10**7 stay within ~10 MB per buffer (K = 17).
DEFAULT_CHUNK_SIZE = 131_072
# Below this alpha a float32 gamma row can underflow to all zeros (probability ~ 10**(-38 alpha)
# per row); such searches sample in log space instead, which cannot underflow.
LOG_SPACE_ALPHA = 0.5


@dataclass(frozen=True, slots=True)
class SearchConfig:
    """Hyperparameters of the candidate search."""

    candidates: int = DEFAULT_CANDIDATES
    top_k: int = DEFAULT_TOP_K
    alpha: float = DEFAULT_ALPHA
    chunk_size: int = DEFAULT_CHUNK_SIZE
    threads: int = 0  # sampling threads; 0 = every core. Results do not depend on it.
    # Where candidate batches are scored (`--cluster`: a Dask cluster; fit.parallel); None:
    # here. Every search with this config uses it; results do not depend on it.
    executor: Executor | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.candidates < 1:
            raise UsageError(f"--candidates {self.candidates}: must be at least 1")
        if self.top_k < 1:
            raise UsageError(f"--top-k {self.top_k}: must be at least 1")
        if self.top_k > self.candidates:
            raise UsageError(
                f"--top-k {self.top_k} is larger than --candidates {self.candidates}; "
                "lower --top-k or raise --candidates"
            )
        if not 1e-3 <= self.alpha <= 1e4:  # outside, Dirichlet draws degenerate (NaN, ties)
            raise UsageError(f"--alpha {self.alpha}: must be between 0.001 and 10000")
        if self.chunk_size < 1:
            raise UsageError(f"chunk size {self.chunk_size}: must be at least 1")
        if self.threads < 0:
            raise UsageError(f"threads {self.threads}: must be 0 (automatic) or more")


@dataclass(frozen=True, slots=True)
class SearchResult:
    """The top-k mean mixture and what the search saw on the way.

    `weights` is float64 in domain order, summing to 1. `predicted_loss` is the mean predicted
    loss of the k chosen candidates (not the prediction at the mean mixture, which the caller
    asks the model for when it needs it); `best_loss` the lowest single prediction.
    """

    weights: np.ndarray
    predicted_loss: float
    best_loss: float
    n_candidates: int
    n_feasible: int
    n_used: int


def search_mixture(
    score: ScoreFn,
    prior: Sequence[float] | np.ndarray,
    config: SearchConfig,
    rng: np.random.Generator,
    feasible: FeasibleFn | None = None,
    transform: TransformFn | None = None,
    *,
    executor: Executor | None = None,
) -> SearchResult:
    """Draw `config.candidates` Dirichlet(alpha * prior) mixtures, return the mean of the k best.

    `score` maps a (c, K) float32 chunk of candidates to c predicted losses (lower is better);
    `feasible`, if given, maps the same chunk to a boolean mask of candidates that satisfy the
    constraints; the others are dropped before ranking. Non-finite scores are dropped too.
    The chunk is a column-major view (each domain's column is contiguous); copy it to keep it.
    `transform`, if given, rewrites each chunk of candidates in place before scoring (the
    constraints use it to map candidates into a small feasible region).

    With an `executor` (`fit.parallel`: `--jobs` processes or a Dask cluster) the scoring runs
    on its workers, with the same result to the bit: candidates are drawn, transformed and
    checked by `feasible` here, cut into batches (`batch_size`) and sent in waves of two
    batches per worker, so memory stays bounded at 10^7 candidates; every worker returns its
    batch's top k, merged here by (loss, candidate index). `score` must then be picklable by
    the executor: Dask (cloudpickle) takes closures, local processes need a module-level
    function, a bound method of a picklable object (a FittedModel) or a `functools.partial`.
    """
    top = _TopK(config.top_k)
    executor = executor if executor is not None else config.executor
    if executor is not None:
        return _search_batches(executor, top, score, prior, config, rng, feasible, transform)
    for start, candidates, ok in _candidate_chunks(prior, config, rng, transform):
        top.add(start, candidates, ok, score(candidates), feasible)
    return top.result(config.candidates)


def _search_batches(
    executor: Executor,
    top: _TopK,
    score: ScoreFn,
    prior: Sequence[float] | np.ndarray,
    config: SearchConfig,
    rng: np.random.Generator,
    feasible: FeasibleFn | None,
    transform: TransformFn | None,
) -> SearchResult:
    """`search_mixture` on an executor's workers (see there)."""
    import numpy as np

    local = dataclasses.replace(config, chunk_size=batch_size(config, executor.workers))
    wave: list[tuple[ScoreFn, int, int, np.ndarray, np.ndarray]] = []

    def flush() -> None:
        for loss, index, weights, n_feasible in executor.map(_score_batch, wave):
            top.merge(loss, index, weights, n_feasible)
        wave.clear()

    for start, candidates, ok in _candidate_chunks(prior, local, rng, transform):
        keep = ok.copy()
        if feasible is not None:
            keep &= np.asarray(feasible(candidates), dtype=bool).reshape(-1)
        wave.append((score, config.top_k, start, np.ascontiguousarray(candidates), keep))
        if len(wave) >= 2 * executor.workers:
            flush()
    flush()
    return top.result(config.candidates)


def batch_size(config: SearchConfig, workers: int) -> int:
    """Candidates per batch sent to a worker: about two batches per worker, at most a chunk."""
    return max(1, min(config.chunk_size, math.ceil(config.candidates / (2 * max(1, workers)))))


def _score_batch(
    task: tuple[ScoreFn, int, int, np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """On a worker: one batch's top k (losses, candidate indices, weights) and its feasible
    count. Module-level, so any executor can run it."""
    score, k, start, candidates, ok = task
    top = _TopK(k)
    top.add(start, candidates, ok, score(candidates))
    weights = candidates[:0] if top.weights is None else top.weights
    return top.loss, top.index, weights, top.n_feasible


# A pool kept in memory between the searches of one schedule stays below this many bytes
# (candidates + the model's per-candidate work); a bigger pool is drawn again for each search,
# which gives the same candidates (same seed) with flat memory.
POOL_BYTES = 256 * 2**20


class CandidatePool:
    """One candidate pool searched at every switch point of a schedule.

    The model's loss-independent work per candidate (`prepare`: curve-shift's N + 1 curve
    predictions) is done once per candidate, not once per switch point, and a search then
    only applies `score(prepared, candidates)` (curve-shift: the numpy shift along the
    curves). While the pool fits in POOL_BYTES, candidates and prepared work are kept; above,
    every search draws the pool again from the same seed and prepares it chunk by chunk, so
    memory stays flat and the results are the same either way.
    With an `executor` (`fit.parallel`), `prepare` runs on its workers, one batch of candidates
    per task (the same results: prepared work is per candidate); it must be picklable there
    (a bound method of a FittedModel is).
    """

    def __init__(
        self,
        prior: Sequence[float] | np.ndarray,
        config: SearchConfig,
        seed: np.random.SeedSequence,
        prepare: Callable[[np.ndarray], object],
        max_bytes: int = POOL_BYTES,
        *,
        executor: Executor | None = None,
    ) -> None:
        self.prior, self.config, self.seed, self.prepare = prior, config, seed, prepare
        self.max_bytes = max_bytes
        self.executor = executor if executor is not None else config.executor
        self._kept: list[tuple[int, np.ndarray, np.ndarray, object]] | None = None

    def search(self, score: Callable[[object, np.ndarray], np.ndarray]) -> SearchResult:
        """The top-k mean of the pool under `score(prepared, candidates) -> losses`."""

        top = _TopK(self.config.top_k)
        if self._kept is not None:
            for start, candidates, ok, prepared in self._kept:
                top.add(start, candidates, ok, score(prepared, candidates))
            return top.result(self.config.candidates)
        kept: list[tuple[int, np.ndarray, np.ndarray, object]] | None = []
        for start, candidates, ok, prepared in self._prepared():
            if kept is not None:
                if not kept and _bytes(candidates, prepared) * (
                    self.config.candidates / max(1, candidates.shape[0])
                ) > self.max_bytes:
                    kept = None  # too big to keep: stream it again next time
                else:
                    kept.append((start, candidates.copy(order="K"), ok.copy(), prepared))
            top.add(start, candidates, ok, score(prepared, candidates))
        self._kept = kept
        return top.result(self.config.candidates)

    def _prepared(self) -> Iterator[tuple[int, np.ndarray, np.ndarray, object]]:
        """(start, candidates, usable, prepared) per chunk of the pool, in candidate order;
        with an executor, `prepare` runs on its workers (batches of `batch_size`, in waves of
        two per worker)."""
        import numpy as np

        rng = np.random.default_rng(self.seed)
        if self.executor is None:
            for start, candidates, ok in _candidate_chunks(self.prior, self.config, rng, None):
                yield start, candidates, ok, self.prepare(candidates)
            return
        workers = self.executor.workers
        config = dataclasses.replace(self.config, chunk_size=batch_size(self.config, workers))
        wave: list[tuple[int, np.ndarray, np.ndarray]] = []
        chunks = _candidate_chunks(self.prior, config, rng, None)
        while True:
            for start, candidates, ok in chunks:
                wave.append((start, np.ascontiguousarray(candidates), ok.copy()))
                if len(wave) >= 2 * workers:
                    break
            if not wave:
                return
            prepared = self.executor.map(self.prepare, [c for _, c, _ in wave])
            for (start, candidates, ok), work in zip(wave, prepared, strict=True):
                yield start, candidates, ok, work
            wave = []


def _bytes(candidates: np.ndarray, prepared: object) -> int:
    import numpy as np

    extra = prepared.nbytes if isinstance(prepared, np.ndarray) else 0
    return int(candidates.nbytes) + int(extra)


class _TopK:
    """The running top k of a search, chunk by chunk, and its mean at the end."""

    def __init__(self, k: int) -> None:
        import numpy as np

        self.k = k
        self.loss = np.empty(0, dtype=np.float64)
        self.index = np.empty(0, dtype=np.int64)
        self.weights: np.ndarray | None = None
        self.n_feasible = 0

    def add(
        self,
        start: int,
        candidates: np.ndarray,
        ok: np.ndarray,
        scores: np.ndarray,
        feasible: FeasibleFn | None = None,
    ) -> None:
        import numpy as np

        c = candidates.shape[0]
        losses = np.asarray(scores, dtype=np.float64).reshape(-1)
        if losses.shape[0] != c:
            raise ValueError(f"score returned {losses.shape[0]} values for {c} candidates")
        keep = np.isfinite(losses) & ok
        if feasible is not None:
            keep &= np.asarray(feasible(candidates), dtype=bool).reshape(-1)
        index = np.arange(start, start + c, dtype=np.int64)
        rows: np.ndarray | None = None
        if not keep.all():
            losses, index, rows = losses[keep], index[keep], np.flatnonzero(keep)
        self.n_feasible += losses.size
        if self.weights is None:
            self.weights = np.empty((0, candidates.shape[1]), dtype=np.float32)
        self.loss, self.index, self.weights = _merge_top_k(
            self.loss, self.index, self.weights, losses, index, candidates, rows, self.k
        )

    def merge(self, loss: np.ndarray, index: np.ndarray, weights: np.ndarray, n: int) -> None:
        """Merge another top k (of candidates this one has not seen) that counted n feasible."""
        self.n_feasible += n
        if self.weights is None:
            self.weights = weights[:0]
        self.loss, self.index, self.weights = _merge_top_k(
            self.loss, self.index, self.weights, loss, index, weights, None, self.k
        )

    def result(self, n_candidates: int) -> SearchResult:
        import numpy as np

        if self.n_feasible == 0 or self.weights is None:
            raise InfeasibleError(
                f"none of the {n_candidates} candidate mixtures satisfies the constraints; "
                "relax them or raise --candidates"
            )
        # Average in float64 in candidate order, so the result does not depend on chunking.
        order = np.argsort(self.index, kind="stable")
        mean = self.weights[order].astype(np.float64).mean(axis=0)
        mean /= mean.sum()
        return SearchResult(
            weights=mean,
            predicted_loss=float(self.loss[order].mean()),
            best_loss=float(self.loss.min()),
            n_candidates=n_candidates,
            n_feasible=self.n_feasible,
            n_used=int(self.loss.size),
        )


def _candidate_chunks(
    prior: Sequence[float] | np.ndarray,
    config: SearchConfig,
    rng: np.random.Generator,
    transform: TransformFn | None,
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(start, candidates, usable) per chunk: the Dirichlet draws, in candidate order.

    `candidates` is a (c, K) view of a reused buffer; `usable` is False where a candidate's
    gammas all underflowed (sum 0: NaN weights, never to be ranked).
    """
    import numpy as np

    m0 = _check_prior(prior)
    n_domains = m0.size
    # A weight so small that alpha * m0 is 0 in float32 counts as zero: it could never win weight.
    active = np.flatnonzero((config.alpha * m0).astype(np.float32) > 0)
    shape = config.alpha * m0[active]
    log_space = config.alpha < LOG_SPACE_ALPHA
    chunk = min(config.chunk_size, config.candidates)
    # One stream per active domain (two in log space: gammas and uniforms), each consumed in
    # candidate order: candidate i's weight on domain k is the i-th draw of stream k, whatever
    # the chunk size or the number of threads.
    streams = [np.random.default_rng(s) for s in rng.integers(0, 2**63, size=2 * active.size)]
    # Domain-major buffer: row k holds domain k's draws for the chunk; candidates are its
    # transpose. Rows of excluded domains stay zero. Log space draws into a float64 buffer first.
    columns = np.zeros((n_domains, chunk), dtype=np.float32)
    logs = np.empty((active.size, chunk), dtype=np.float64) if log_space else None
    rows_out = [logs[i] if logs is not None else columns[d] for i, d in enumerate(active)]
    threads = _threads(config, active.size)
    pool = ThreadPoolExecutor(threads) if threads > 1 else None
    jobs = [range(w, active.size, threads) for w in range(threads)]

    def fill(c: int) -> None:
        if pool is None:
            _draw(streams, shape, log_space, rows_out, c, jobs[0])
        else:
            waiting = [
                pool.submit(_draw, streams, shape, log_space, rows_out, c, job) for job in jobs
            ]
            for future in waiting:
                future.result()
        if logs is not None:
            # Softmax per candidate: scale by its largest log-draw, so no row is all zeros.
            block = logs[:, :c]
            block -= block.max(axis=0)
            columns[active, :c] = np.exp(block)

    try:
        for start in range(0, config.candidates, chunk):
            c = min(chunk, config.candidates - start)
            fill(c)
            block = columns[:, :c]
            totals = block.sum(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                block /= totals
            candidates = block.T
            if transform is not None:
                transform(candidates)
            yield start, candidates, (totals > 0) & np.isfinite(totals)
    finally:
        if pool is not None:
            pool.shutdown()


def _threads(config: SearchConfig, n_active: int) -> int:
    """Sampling threads: the configured number, else every core; never more than domains."""
    wanted = config.threads if config.threads > 0 else (os.cpu_count() or 1)
    return max(1, min(wanted, n_active))


def _draw(
    streams: list[np.random.Generator],
    shape: np.ndarray,
    log_space: bool,
    rows_out: list[np.ndarray],
    c: int,
    job: range,
) -> None:
    """Draw the first `c` values of each active domain `i` in `job` into `rows_out[i]`.

    Gamma(a) in float32 directly; in log space log Gamma(a) = log Gamma(a + 1) + log(U) / a in
    float64 (the caller turns these into a softmax). Scalar-shape gamma calls release the GIL,
    so threads drawing different domains run in parallel.
    """
    import numpy as np

    for i in job:
        a = float(shape[i])
        gammas, uniforms = streams[2 * i], streams[2 * i + 1]
        out = rows_out[i][:c]
        if not log_space:
            gammas.standard_gamma(a, size=c, dtype=np.float32, out=out)
            continue
        gammas.standard_gamma(a + 1.0, size=c, out=out)
        np.log(out, out=out)
        with np.errstate(divide="ignore"):  # random() == 0.0 (p = 2**-53) gives -inf: fine
            out += np.log(uniforms.random(size=c)) / a


def _check_prior(prior: Sequence[float] | np.ndarray) -> np.ndarray:
    """The prior as a float64 vector, checked: finite, non-negative, with positive mass."""
    import numpy as np

    m0 = np.asarray(prior, dtype=np.float64).reshape(-1)
    if m0.size == 0 or not np.all(np.isfinite(m0)) or np.any(m0 < 0) or not m0.sum() > 0:
        raise UsageError("the prior mixture must be finite, non-negative and not all zero")
    normalised: np.ndarray = m0 / m0.sum()
    return normalised


def _merge_top_k(
    best_loss: np.ndarray,
    best_index: np.ndarray,
    best_weights: np.ndarray,
    losses: np.ndarray,
    index: np.ndarray,
    candidates: np.ndarray,
    rows: np.ndarray | None,
    k: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The k smallest of the running best and a new chunk, by (loss, candidate index).

    `rows` maps the kept chunk entries back to rows of `candidates` (None: all rows, in order).
    Only the k winners' weights are copied out of the chunk buffer.
    """
    import numpy as np

    all_loss = np.concatenate([best_loss, losses])
    n_best = best_loss.size
    if all_loss.size > k:
        kth = np.partition(all_loss, k - 1)[k - 1]
        below = np.flatnonzero(all_loss < kth)
        ties = np.flatnonzero(all_loss == kth)
        if ties.size > k - below.size:
            all_index = np.concatenate([best_index, index])
            ties = ties[np.argsort(all_index[ties], kind="stable")[: k - below.size]]
        chosen = np.concatenate([below, ties])
    else:
        chosen = np.arange(all_loss.size)
    from_best = chosen[chosen < n_best]
    from_chunk = chosen[chosen >= n_best] - n_best
    chunk_rows = from_chunk if rows is None else rows[from_chunk]
    weights = np.concatenate([best_weights[from_best], candidates[chunk_rows]])
    new_index = np.concatenate([best_index[from_best], index[from_chunk]])
    new_loss = np.concatenate([best_loss[from_best], losses[from_chunk]])
    return new_loss, new_index, weights
