"""Stream images through the teacher engines and write each row as soon as all its pairs are in.

:class:`Scheduler` runs one asyncio loop over the items of a plan:

* an image is read when it is admitted (bounded: ``max_images_in_flight``, by default the
  engines' windows together plus the largest again), in a pool of :data:`READER_THREADS`
  threads, never on the event loop, where an image in a format servers may not take (a TIFF)
  is also converted to PNG, once for every teacher
  (:func:`~imagenet_think.regenerate.engines.base.request_image`: a slow decode stalls no
  request); its requests for every pair go out at once;
* each engine has its own window of requests in flight (``max_in_flight``, by default the
  engine's :attr:`~imagenet_think.regenerate.engines.base.Engine.max_in_flight`: 256 for a
  server), so a slow teacher never holds the other back and a server's scheduler always has
  work; new images are admitted as requests finish;
* a row is complete when all its pairs are; complete rows go to the
  :class:`~imagenet_think.regenerate.runner.ShardWriter` (in a thread of its own, so writing
  a file never pauses the stream);
* a request the teacher answered with an error is retried, ``retry_delay`` seconds later,
  doubling up to :data:`MAX_RETRY_DELAY`, without holding a slot of the window, so a
  failing request never stalls the others; after ``max_attempts`` the image goes to the
  failures file.

A server that answers "busy, come back later"
(:class:`~imagenet_think.regenerate.engines.base.EngineBusy`: HTTP 429, 503) has not looked at
the request: it is sent again after the server's ``Retry-After`` (at least ``retry_delay``, at
most :data:`MAX_RETRY_DELAY`; without one, the doubling delay), spending none of its attempts.

A request that got no answer (:class:`~imagenet_think.regenerate.engines.base.EngineUnreachable`)
is another matter.  When the server answers a probe
(:meth:`~imagenet_think.regenerate.engines.base.Engine.probe`) sent after a refused or
dropped connection, the request itself is the problem and the failure counts as an attempt;
a timeout counts once the server answers other requests sent after it (an answer that was
already on its way says nothing of the server since).  Otherwise the request is
retried without counting, and when the server has answered nothing (busy answers included)
while failing for ``unreachable_after`` seconds (or a request timed out with no answer from
the server since it was sent) the run stops with :class:`RunStopped`: complete rows are
written, nothing is written off, and rerunning the same command resumes.  A server whose
silence means it hangs (:attr:`~imagenet_think.regenerate.engines.base.Engine.silence_means_hung`)
stops the run the same way when it has had requests in flight and answered none for
``unreachable_after`` seconds, whatever its request timeout.  An engine that raises anything
else is dead: the run stops the same way.  The run also stops once more images have
failed than ``max_failure_rate`` allows of at least :data:`EARLY_STOP_IMAGES` images (a
misconfiguration should not write off the corpus); :func:`failure_summary` is the same check
at the end of a run.

When an image's row cannot be completed (the run stops, or its other pair failed for good),
the answers its teachers did give are kept
(:meth:`~imagenet_think.regenerate.runner.ShardWriter.keep_answers`, written when the run ends)
and a later run uses them instead of asking those teachers again, as long as the teacher's
settings (:func:`~imagenet_think.regenerate.runner.answer_settings`) are the same.

>>> failure_summary(RunStats(written=90, failed=10), 0.05)
'10 of 100 images failed (10.0%, more than --max-failure-rate 5.0%)'
>>> failure_summary(RunStats(written=99, failed=1), 0.05) is None
True
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sized
from typing import TYPE_CHECKING, Any, Optional

from imagenet_think.regenerate.engines.base import (
    DEFAULT_RETRY_DELAY,
    DEFAULT_UNREACHABLE_AFTER,
    MAX_RETRY_DELAY,
    EngineBusy,
    EngineUnreachable,
    Request,
    Result,
    event_loop,
    request_image,
)
from imagenet_think.regenerate.runner import (
    RunStats,
    ShardWriter,
    answer_record,
    answer_settings,
    build_row,
    failures_path,
    kept_answer,
    pair_columns,
)
from imagenet_think.regenerate.sources import ImageItem

if TYPE_CHECKING:
    from imagenet_think.regenerate.engines.base import Engine

logger = logging.getLogger(__name__)

DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_MAX_FAILURE_RATE = 0.05
EARLY_STOP_IMAGES = 1000
"""The run stops early when more than ``max_failure_rate`` of ``max(images done, this)`` failed."""
STREAK_GAP = 2 * MAX_RETRY_DELAY
READER_THREADS = 4
STARTS_PER_TURN = 16
"""Requests started per turn of the event loop (see :class:`_Pacer`)."""


class RunStopped(RuntimeError):
    """The run ended early (a server unreachable, an engine dead, too many failures).

    Complete rows are written and nothing was written off for the reason given: rerun the same
    command (with ``--retry-failed`` for images that failed) once the cause is fixed.  The
    command line exits with ``exit_status``.
    """

    exit_status = 1


class _Failed(Exception):
    """A request (or an image read) that failed for good."""

    def __init__(self, error: str, attempts: int):
        super().__init__(error)
        self.error, self.attempts = error, attempts


class _Health:
    """When an engine last answered (and when the latest request it answered was sent), since
    when it has failed without answering, its last probe, how many "busy" answers it gave."""

    def __init__(self, unreachable_after: float):
        self.unreachable_after = unreachable_after
        self.last_answer = time.monotonic()
        self.answered_sent = float("-inf")
        self.failing_since: Optional[float] = None
        self.last_failure = 0.0
        self.probe: Optional[asyncio.Future] = None
        self.probed_at = 0.0
        self.busy_answers = 0

    def answered(self, sent: float) -> None:
        """An answer to a request (or probe) sent at ``sent``."""
        self.last_answer = time.monotonic()
        self.answered_sent = max(self.answered_sent, sent)
        self.failing_since = None

    def no_answer(self, now: float, silent_since: float) -> bool:
        """Record a failure without an answer, the server silent since ``silent_since``;
        ``True`` once it has failed and answered nothing for ``unreachable_after`` seconds.

        Failures further apart than :data:`STREAK_GAP` (a retry comes sooner) start a new streak.
        """
        if self.failing_since is None or now - self.last_failure > STREAK_GAP:
            self.failing_since = silent_since
        else:
            self.failing_since = min(self.failing_since, silent_since)
        self.last_failure = now
        return now - self.failing_since >= self.unreachable_after


class _Pacer:
    """Lets at most ``per_turn`` requests start per turn of the event loop.

    asyncio runs every ready callback before it polls its sockets again, and building an HTTP
    request costs milliseconds: 512 requests released at once (the windows filling at start)
    would send nothing for a second or more.  Paced, the first ones are on the wire in
    milliseconds while the others are built.
    """

    def __init__(self, per_turn: int):
        self.per_turn, self.started = per_turn, 0

    async def turn(self) -> None:
        while self.started >= self.per_turn:
            await asyncio.sleep(0)
        if not self.started:
            asyncio.get_running_loop().call_soon(self._next_turn)  # runs after the next socket poll
        self.started += 1

    def _next_turn(self) -> None:
        self.started = 0


def failure_summary(stats: RunStats, max_failure_rate: float) -> Optional[str]:
    """A one-line summary when more than ``max_failure_rate`` of the images done failed, else ``None``."""
    done = stats.written + stats.failed
    if not done or stats.failed <= max_failure_rate * done:
        return None
    return f"{stats.failed} of {done} images failed ({stats.failed / done:.1%}, more than --max-failure-rate {max_failure_rate:.1%})"


def check_settings(
    *,
    max_in_flight: Optional[int] = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    retry_delay: float = DEFAULT_RETRY_DELAY,
    unreachable_after: float = DEFAULT_UNREACHABLE_AFTER,
    max_failure_rate: float = DEFAULT_MAX_FAILURE_RATE,
) -> None:
    """Raise a ``ValueError`` naming the first of :class:`Scheduler`'s settings out of range, so
    a command can refuse it before any work.

    >>> check_settings(max_attempts=0)
    Traceback (most recent call last):
    ...
    ValueError: `max_attempts` must be at least 1, got 0
    """
    problems = [
        (max_in_flight is not None and max_in_flight < 1, f"`max_in_flight` must be at least 1, got {max_in_flight}"),
        (max_attempts < 1, f"`max_attempts` must be at least 1, got {max_attempts}"),
        (not retry_delay >= 0, f"`retry_delay` must be >= 0, got {retry_delay}"),
        (not unreachable_after > 0, f"`unreachable_after` must be > 0, got {unreachable_after}"),
        (not 0 <= max_failure_rate <= 1, f"`max_failure_rate` must be in [0, 1], got {max_failure_rate}"),
    ]
    for wrong, message in problems:
        if wrong:
            raise ValueError(message)


def _read_image(item: ImageItem) -> tuple[bytes, bytes]:
    """The image's bytes and what its requests carry (:func:`request_image`), in one trip to the reader pool."""
    data = item.read_bytes()
    return data, request_image(data)


class Scheduler:
    """Streams items through ``engines`` (pair number -> open engine) into ``writer``.

    Pairs without an engine are written as ``missing``.  See the module docstring for the
    options; ``max_in_flight`` overrides every engine's own window.  :meth:`run` may be called
    several times with the same writer (counts accumulate in ``writer.stats``).
    """

    def __init__(
        self,
        engines: Mapping[int, "Engine"],
        writer: ShardWriter,
        *,
        max_in_flight: Optional[int] = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        retry_delay: float = DEFAULT_RETRY_DELAY,
        unreachable_after: float = DEFAULT_UNREACHABLE_AFTER,
        max_failure_rate: float = DEFAULT_MAX_FAILURE_RATE,
        max_images_in_flight: Optional[int] = None,
        progress: bool = True,
    ):
        from imagenet_think import schema

        unknown = sorted(set(engines) - set(schema.TEACHERS))
        if unknown:
            raise ValueError(f"engines for unknown pairs {unknown}; pairs are {sorted(schema.TEACHERS)}")
        check_settings(
            max_in_flight=max_in_flight, max_attempts=max_attempts, retry_delay=retry_delay,
            unreachable_after=unreachable_after, max_failure_rate=max_failure_rate,
        )
        self.engines = dict(sorted(engines.items()))
        self.writer = writer
        self.windows = {pair: max_in_flight or engine.max_in_flight for pair, engine in self.engines.items()}
        windows = self.windows.values()
        self.max_images_in_flight = max_images_in_flight or max(64, sum(windows) + max(windows, default=0))
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay
        self.unreachable_after = unreachable_after
        self.max_failure_rate = max_failure_rate
        self.progress = progress

    @property
    def stats(self) -> RunStats:
        return self.writer.stats

    def run(self, items: Iterable[ImageItem]) -> RunStats:
        """Generate and write the rows of ``items`` (items already done are the caller's to
        drop); raises :class:`RunStopped` when the run had to end early."""
        from tqdm.auto import tqdm

        total = len(items) if isinstance(items, Sized) else None
        desc = f"shard {self.writer.shard_index}"
        finished = threading.Event()
        with tqdm(total=total, unit="img", desc=desc, disable=not self.progress, dynamic_ncols=True) as bar:
            running = asyncio.run_coroutine_threadsafe(self._run(items, bar, finished), event_loop())
            try:
                stopped = running.result()
            except BaseException:  # Ctrl-C: stop the stream, let it write its complete rows
                running.cancel()
                finished.wait()
                raise
        if stopped:
            raise RunStopped(stopped)
        return self.stats

    async def _run(self, items: Iterable[ImageItem], bar: Any, finished: threading.Event) -> Optional[str]:
        """Stream ``items``; the reason the run stopped early, or ``None``.  Runs on
        :func:`~imagenet_think.regenerate.engines.base.event_loop`; sets ``finished`` at the end."""
        try:
            return await self._stream(items, bar)
        finally:
            finished.set()

    async def _stream(self, items: Iterable[ImageItem], bar: Any) -> Optional[str]:
        self._loop = asyncio.get_running_loop()
        self._windows = {pair: asyncio.Semaphore(size) for pair, size in self.windows.items()}
        self._health = {pair: _Health(self.unreachable_after) for pair in self.engines}
        self._pacer = _Pacer(STARTS_PER_TURN)
        self._in_flight = dict.fromkeys(self.engines, 0)
        self._in_flight_since = dict.fromkeys(self.engines, 0.0)  # since when requests have been in flight
        self._went_in_flight = {pair: asyncio.Event() for pair in self.engines}
        self._settings = {pair: answer_settings(e.spec, e.revision, e.sampling) for pair, e in self.engines.items()}
        self._kept: list[dict] = []  # answers of rows left incomplete, for the next run
        self._tasks: set[asyncio.Task] = set()
        self._stopped: Optional[str] = None
        self._complete = 0
        self._bar, self._started, self._shown = bar, time.monotonic(), 0.0
        tokens_before = self.stats.tokens
        room = asyncio.Semaphore(self.max_images_in_flight)
        watchers = [self._loop.create_task(self._watch(pair)) for pair, engine in self.engines.items() if engine.silence_means_hung]
        with concurrent.futures.ThreadPoolExecutor(1, "writer") as self._write_pool, concurrent.futures.ThreadPoolExecutor(
            READER_THREADS, "reader"
        ) as self._read_pool:
            try:
                pending = iter(items)
                while True:
                    await room.acquire()  # before taking the next item: items are read only once admitted
                    item = next(pending, None)
                    if item is None or self._stopped:
                        break
                    task = self._loop.create_task(self._image(item))
                    self._tasks.add(task)
                    task.add_done_callback(lambda done: (self._tasks.discard(done), room.release()))
                while self._tasks and not self._stopped:
                    await asyncio.wait(set(self._tasks))
            finally:
                for task in (*self._tasks, *watchers):
                    task.cancel()
                await asyncio.gather(*self._tasks, *watchers, return_exceptions=True)
                if self._kept:
                    await self._in_writer(self.writer.keep_answers, self._kept)
                await self._in_writer(self.writer.flush)
        logger.info("%d tokens generated in %.1f s", self.stats.tokens - tokens_before, time.monotonic() - self._started)
        return self._stopped

    def _stop(self, reason: str) -> None:
        """End the run: every image task is cancelled; complete rows are still written."""
        if self._stopped is None:
            self._stopped = reason
            logger.error("stopping: %s", reason)
            for task in self._tasks:
                task.cancel()

    async def _in_writer(self, function: Any, *args: Any) -> None:
        """Run ``function`` in the writer thread; shielded, so a stopping run still writes it."""
        await asyncio.shield(self._loop.run_in_executor(self._write_pool, function, *args))

    async def _image(self, item: ImageItem) -> None:
        try:
            image, sent = await self._read(item)
            answers = await self._answers(item.id, sent)
            pairs = {pair: pair_columns(pair, self.engines[pair].spec, result) for pair, (result, _) in answers.items()}
            generation = [entry for _, entry in answers.values()]
            self._complete += 1
            await self._in_writer(self.writer.add, build_row(item, image, pairs, generation))
        except _Failed as failed:
            await self._in_writer(self.writer.fail, item, failed.error, failed.attempts)
            self._check_failure_rate()
        except Exception as error:  # noqa: BLE001 (writing failed, or a bug: stop, lose nothing)
            logger.debug("%s failed", item.id, exc_info=True)
            self._stop(f"{item.source}: {type(error).__name__}: {error}")
        finally:
            self._bar.update(1)
            self._show_progress()

    async def _answers(self, row_id: str, image: bytes) -> dict[int, tuple[Result, dict]]:
        """Every pair's result for the image and its ``generation`` entry, by pair: answers kept
        by an earlier run under the same settings, else the teacher's.  When the row cannot be
        completed (a pair failed for good, the run stops), the teachers' answers are kept."""
        kept = {}
        for pair in self.engines:
            record = self.writer.kept_answers.get((row_id, pair))
            if record is not None and record["settings"] == self._settings[pair]:
                kept[pair] = kept_answer(record)
        requests = {
            pair: self._loop.create_task(self._request(pair, Request(row_id, image))) for pair in self.engines if pair not in kept
        }
        failures: list[BaseException] = []
        try:
            if requests:
                await asyncio.wait(requests.values(), return_when=asyncio.FIRST_EXCEPTION)
            failures = [t.exception() for t in requests.values() if t.done() and not t.cancelled() and t.exception()]
        finally:
            for task in requests.values():
                task.cancel()
            answered = {
                pair: task.result() for pair, task in requests.items() if task.done() and not task.cancelled() and not task.exception()
            }
            fresh = {pair: (result, self.engines[pair].generation_entry(pair, result)) for pair, result in answered.items()}
            if len(kept) + len(fresh) < len(self.engines):  # the row stays incomplete: keep what came
                self._kept.extend(answer_record(row_id, pair, self._settings[pair], *answer) for pair, answer in fresh.items())
        if failures:
            raise failures[0]
        return {pair: kept.get(pair) or fresh[pair] for pair in self.engines}

    async def _read(self, item: ImageItem) -> tuple[bytes, bytes]:
        """The image's bytes (for its row) and what its requests carry, both made in the reader pool."""
        for attempt in range(1, self.max_attempts + 1):
            try:
                return await self._loop.run_in_executor(self._read_pool, _read_image, item)
            except (OSError, ValueError) as error:
                reason = f"cannot read image: {type(error).__name__}: {error}"
        raise _Failed(reason, attempt)

    async def _request(self, pair: int, request: Request) -> Result:
        """The successful result of ``request`` on ``pair``'s engine, retried as the policy says."""
        engine, health = self.engines[pair], self._health[pair]
        attempts, delay = 0, self.retry_delay
        unanswered_at: Optional[float] = None  # a failure without answer, not yet counted
        while True:
            async with self._windows[pair]:
                await self._pacer.turn()
                sent = time.monotonic()
                if not self._in_flight[pair]:
                    self._in_flight_since[pair] = sent
                    self._went_in_flight[pair].set()
                self._in_flight[pair] += 1
                busy: Optional[EngineBusy] = None
                try:
                    result: Optional[Result] = await engine.agenerate(request)
                except EngineBusy as error:
                    result, busy, reason = None, error, f"{engine.spec.name}: {error}"
                except EngineUnreachable as error:
                    result, reason, timed_out = None, f"{engine.spec.name}: {error}", error.timed_out
                except Exception as error:  # noqa: BLE001 (the engine is dead: stop, write nothing off)
                    self._stop(f"the {engine.spec.name} engine failed: {type(error).__name__}: {error}")
                    raise asyncio.CancelledError from error
                finally:
                    self._in_flight[pair] -= 1
            wait = delay
            if result is not None:
                health.answered(sent)
                if result.error is None:
                    self.stats.tokens += result.num_tokens or 0
                    return result
                attempts += 1
                reason = f"{engine.spec.name}: {result.error}"
                logger.info("request %s failed (attempt %d of %d): %s", request.id, attempts, self.max_attempts, reason)
            elif busy is not None:  # come back later: no attempt spent; the run stops if nothing else is answered
                now = time.monotonic()
                if not health.busy_answers:
                    logger.warning("the %s server is busy (%s): requests it refuses so are sent again, without spending "
                                   "attempts; the run stops if it answers nothing for %g s", engine.spec.name, reason,
                                   self.unreachable_after)  # fmt: skip
                health.busy_answers += 1
                if health.no_answer(now, now):
                    self._stop(self._unreachable(pair, f"last error: {reason}"))
                    raise asyncio.CancelledError
                if busy.retry_after is not None:
                    wait = min(max(busy.retry_after, self.retry_delay), MAX_RETRY_DELAY)
                logger.debug("request %s: server busy, again in %.1f s: %s", request.id, wait, reason)
            else:
                now = time.monotonic()
                if not timed_out and await self._probe(pair, now):  # the server answers: the request is the problem
                    health.answered(health.probed_at)
                    attempts += 1
                else:
                    if health.failing_since is None:
                        logger.warning("no answer from the %s server (%s): retrying; the run stops after %g s without any",
                                       engine.spec.name, reason, self.unreachable_after)  # fmt: skip
                    if health.no_answer(now, max(sent, health.last_answer) if timed_out else now):
                        self._stop(self._unreachable(pair, f"last error: {reason}"))
                        raise asyncio.CancelledError
                    attempts += self._counts(unanswered_at, health)
                    unanswered_at = now
                logger.debug("request %s got no answer (%d attempts counted): %s", request.id, attempts, reason)
            if attempts >= self.max_attempts:
                raise _Failed(reason, attempts)
            await asyncio.sleep(wait)
            delay = min(2 * delay, MAX_RETRY_DELAY)
            if self._counts(unanswered_at, health):
                attempts, unanswered_at = attempts + 1, None
                if attempts >= self.max_attempts:
                    raise _Failed(reason, attempts)

    async def _probe(self, pair: int, since: float) -> bool:
        """Whether ``pair``'s server answers a probe sent after ``since`` (one probe at a time,
        shared by the requests that wait for it).  A probe sent before ``since`` says nothing of
        a failure at ``since`` (the server may have died in between): wait for it to end, then
        send another."""
        health = self._health[pair]
        while health.probe is None or health.probed_at < since:
            if health.probe is not None and not health.probe.done():
                await asyncio.wait([health.probe])
                continue
            health.probed_at = time.monotonic()
            health.probe = self._loop.run_in_executor(self._read_pool, self.engines[pair].probe)
        return await asyncio.shield(health.probe)

    @staticmethod
    def _counts(unanswered_at: Optional[float], health: _Health) -> int:
        """1 when a failure without answer is followed by answers to others sent after it (it was
        this request's own), else 0: an answer sent before the failure, even if it is read after,
        says nothing of the server since."""
        return int(unanswered_at is not None and health.answered_sent > unanswered_at)

    async def _watch(self, pair: int) -> None:
        """Stop the run when ``pair``'s server has had requests in flight and answered none for
        ``unreachable_after`` seconds: it hangs (whatever the request timeout)."""
        health, went_in_flight = self._health[pair], self._went_in_flight[pair]
        while True:
            if not self._in_flight[pair]:
                went_in_flight.clear()
                await went_in_flight.wait()
                continue
            silent_since = max(health.last_answer, self._in_flight_since[pair])
            left = silent_since + self.unreachable_after - time.monotonic()
            if left <= 0:
                name, in_flight = self.engines[pair].spec.name, self._in_flight[pair]
                why = (f"{in_flight} requests in flight, none answered: the {name} server hangs, or takes longer than "
                       "--unreachable-after to answer anything")  # fmt: skip
                self._stop(self._unreachable(pair, why, silent_since))
                return
            await asyncio.sleep(left)

    def _unreachable(self, pair: int, why: str, silent_since: Optional[float] = None) -> str:
        silent = time.monotonic() - (self._health[pair].last_answer if silent_since is None else silent_since)
        return (
            f"the {self.engines[pair].spec.name} teacher is unreachable: no answer for {silent:.0f} s "
            f"({why}); the {self._complete} rows completed by this run are written, nothing "
            "written off: rerun the same command when the server is back"
        )

    def _check_failure_rate(self) -> None:
        stats = self.stats
        if stats.failed > self.max_failure_rate * max(stats.written + stats.failed, EARLY_STOP_IMAGES):
            summary = failure_summary(stats, self.max_failure_rate) or f"{stats.failed} images failed"
            failures = failures_path(self.writer.out_dir, self.writer.shard_index)
            self._stop(f"{summary}: stopped early; see {failures}, fix the cause, then rerun with --retry-failed")

    def _show_progress(self) -> None:
        now = time.monotonic()
        if now - self._shown < 0.5:
            return
        self._shown = now
        in_flight = " ".join(f"{self.engines[pair].spec.name}={count}" for pair, count in self._in_flight.items())
        rate = self.stats.tokens / max(now - self._started, 1e-9)
        busy = " ".join(f"{self.engines[p].spec.name}={h.busy_answers}" for p, h in self._health.items() if h.busy_answers)
        postfix = f"in flight {in_flight} | {rate:,.0f} tok/s | failed {self.stats.failed}" + (f" | busy {busy}" if busy else "")
        self._bar.set_postfix_str(postfix, refresh=False)
