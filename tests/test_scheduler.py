"""The streaming scheduler with scripted engines: windows, retries and their backoff, the
failure policy (answered errors vs. no answer), stopping without writing anything off."""

from __future__ import annotations

import io
import threading
import time
from collections import Counter
from concurrent.futures import Future
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from imagenet_think.regenerate import runner, scheduler
from imagenet_think.regenerate.engines.base import Engine, EngineBusy, EngineUnreachable, Result
from imagenet_think.regenerate.models import get_model
from imagenet_think.regenerate.sources import ImageItem


def items(tmp_path: Path, count: int) -> list[ImageItem]:
    """``count`` small JPEG files as items (ids ``n00000001_0``...)."""
    folder = tmp_path / "images"
    folder.mkdir(exist_ok=True)
    made = []
    for index in range(count):
        path = folder / f"n00000001_{index}.JPEG"
        buffer = io.BytesIO()
        Image.new("RGB", (32, 32), (index % 256, 9, 9)).save(buffer, "JPEG")
        path.write_bytes(buffer.getvalue())
        made.append(ImageItem(f"n00000001_{index}", "n00000001", "", "file", str(path), suffix=".JPEG"))
    return made


class Scripted(Engine):
    """Answers after ``delay`` seconds (``None``: never) with what ``script(request_id, attempt)``
    returns: a :class:`Result`, or an exception to raise; by default ``<think>t</think>answer``
    (``answer`` is ``answer_text``).  ``silence_means_hung``: as a server client's.

    Records every submission (``sent[id]`` times) and the most requests outstanding at once."""

    def __init__(self, name: str, script=None, delay=0.01, max_in_flight: int = 8, answers_probe: bool = False,
                 silence_means_hung: bool = False, answer_text: str = "answer", sampling=None):  # fmt: skip
        super().__init__(get_model(name), sampling)
        self.script = script or (lambda request_id, attempt: None)
        self.delay, self.max_in_flight, self.answers_probe = delay, max_in_flight, answers_probe
        self.silence_means_hung, self.answer_text = silence_means_hung, answer_text
        self.sent: dict[str, list[float]] = {}
        self.cancelled: list[str] = []
        self.outstanding = self.most = self.probes = 0
        self.lock = threading.Lock()

    def probe(self):
        self.probes += 1
        return self.answers_probe

    def submit(self, request):
        with self.lock:
            times = self.sent.setdefault(request.id, [])
            times.append(time.monotonic())
            self.outstanding += 1
            self.most = max(self.most, self.outstanding)
        outcome = self.script(request.id, len(times))
        future: Future = Future()
        if self.delay is not None:
            threading.Timer(self.delay, self._finish, [future, request.id, outcome]).start()
        return future

    def _finish(self, future: Future, request_id: str, outcome) -> None:
        with self.lock:
            self.outstanding -= 1
        if future.cancelled():
            self.cancelled.append(request_id)
            return
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            raw = f"<think>t</think>{self.answer_text}"
            future.set_result(outcome or Result(request_id, raw=raw, finish_reason="stop", num_tokens=5))


class SlowWriter(runner.ShardWriter):
    """Takes a while to accept each row, so rows still queue for the writer thread when the run stops."""

    def add(self, row):
        time.sleep(0.1)
        super().add(row)


def run(out: Path, engines: dict, todo, writer=runner.ShardWriter, **options) -> runner.RunStats:
    with writer(out, rows_per_file=options.pop("rows_per_file", 1000)) as opened:
        return scheduler.Scheduler(engines, opened, progress=False, **options).run(todo)


def written_ids(out: Path) -> list[str]:
    return [i for ids in runner.ids_by_file(out).values() for i in ids]


def test_each_image_is_written_once_with_every_pair_and_each_window_is_kept(tmp_path):
    todo = items(tmp_path, 30)
    glm, kimi = Scripted("glm", delay=0.01), Scripted("kimi", delay=0.03)
    stats = run(tmp_path / "out", {1: glm, 2: kimi}, todo, max_in_flight=4, rows_per_file=7)
    assert (stats.written, stats.failed, stats.tokens) == (30, 0, 30 * 2 * 5)
    assert sorted(written_ids(tmp_path / "out")) == sorted(i.id for i in todo)
    assert [len(f.name) for f in stats.files] == [len("train-00000-00000.parquet")] * 5  # 7+7+7+7+2 rows
    assert (glm.most, kimi.most) == (4, 4)  # each its own window, filled; the slow one held the fast one back by no more
    row = runner.read_json_lines(runner.manifest_path(tmp_path / "out", 0))[0]
    assert len(row["ids"]) == 7


def test_images_are_admitted_and_read_only_as_room_frees(tmp_path):
    todo = items(tmp_path, 20)
    engine = Scripted("glm", delay=0.02)
    pulled, ahead = [], []

    def lazily():
        for item in todo:
            pulled.append(item.id)
            ahead.append(len(pulled) - (engine_done()))
            yield item

    def engine_done():
        return sum(len(times) for times in engine.sent.values()) - engine.outstanding

    run(tmp_path / "out", {1: engine}, lazily(), max_in_flight=2, max_images_in_flight=3)
    assert len(pulled) == 20 and max(ahead) <= 3


def test_a_failing_request_backs_off_exponentially_while_the_others_go_on(tmp_path):
    todo = items(tmp_path, 12)
    flaky = todo[0].id

    def script(request_id, attempt):
        if request_id == flaky and attempt < 3:
            return Result(request_id, error="BadRequestError: Error code: 400")
        return None

    engine = Scripted("glm", script, delay=0.02, max_in_flight=2)
    stats = run(tmp_path / "out", {1: engine}, todo, retry_delay=0.3)
    first, second, third = engine.sent[flaky]
    assert second - first >= 0.3 + 0.02 and third - second >= 0.6 + 0.02  # answered, then waited 0.3, then 0.6
    assert third - second < 0.6 + 0.5
    others = sorted(times[0] for request_id, times in engine.sent.items() if request_id != flaky)
    assert others[-1] < second  # the 11 others (2 in flight at a time) all went out during the first wait
    assert (stats.written, stats.failed) == (12, 0)


def test_errors_the_teacher_answers_send_the_image_to_failures_and_cancel_its_other_pair(tmp_path):
    todo = items(tmp_path, 6)
    bad = todo[2].id
    glm = Scripted("glm", lambda i, attempt: Result(i, error="BadRequestError: image too small") if i == bad else None)
    kimi = Scripted("kimi", delay=0.5)
    stats = run(tmp_path / "out", {1: glm, 2: kimi}, todo, max_attempts=3, retry_delay=0.01, max_failure_rate=1.0)
    assert (stats.written, stats.failed) == (5, 1)
    [failure] = runner.read_json_lines(runner.failures_path(tmp_path / "out", 0))
    assert failure == {"id": bad, "source": todo[2].source, "error": "glm: BadRequestError: image too small", "attempts": 3}
    assert len(glm.sent[bad]) == 3 and bad not in written_ids(tmp_path / "out")
    assert kimi.cancelled == [bad]  # its other pair's request was dropped, not waited for


def test_an_unreachable_server_stops_the_run_writes_nothing_off_and_a_rerun_completes(tmp_path):
    todo = items(tmp_path, 40)
    down = {"since": None, "sent": 0}

    def script(request_id, attempt):
        if down["since"] is not None:
            return EngineUnreachable("http://gpu-1:8000/v1: Connection error. (ConnectionRefusedError: [Errno 111])")
        down["sent"] += 1
        if down["sent"] == 10:  # the server dies as the tenth request is sent
            down["since"] = time.monotonic()
        return None

    engine = Scripted("glm", script, delay=0.01, max_in_flight=4)
    out = tmp_path / "out"
    with pytest.raises(scheduler.RunStopped, match=r"the glm teacher is unreachable: no answer for \d+ s .*nothing written off"):
        run(out, {1: engine}, todo, SlowWriter, unreachable_after=0.5, retry_delay=0.05, max_attempts=1, rows_per_file=1000)
    stopped_after = time.monotonic() - down["since"]
    assert 0.5 <= stopped_after < 3
    assert runner.read_json_lines(runner.failures_path(out, 0)) == []  # max_attempts=1, yet nothing written off
    done = written_ids(out)
    answered = sorted(engine.sent, key=lambda i: engine.sent[i][0])[:10]  # sent before the server died
    assert sorted(done) == sorted(answered)  # every complete row written, though fewer than rows_per_file
    plan = runner.make_plan(todo, out, {1: get_model("glm")})
    stats = run(out, {1: Scripted("glm")}, plan.todo)
    assert stats.written == 40 - len(done)
    assert sorted(written_ids(out)) == sorted(i.id for i in todo)


def test_a_request_timing_out_with_no_answer_meanwhile_stops_the_run_at_once(tmp_path):
    todo = items(tmp_path, 3)
    hung = Scripted("glm", lambda i, attempt: EngineUnreachable("Request timed out.", timed_out=True), delay=0.3)
    started = time.monotonic()
    with pytest.raises(scheduler.RunStopped, match="unreachable: no answer for 0 s"):
        run(tmp_path / "out", {1: hung}, todo, unreachable_after=0.25, retry_delay=5)
    assert time.monotonic() - started < 2  # the first timeout, no retry
    assert all(len(times) == 1 for times in hung.sent.values())


def test_a_connection_dropped_while_the_server_answers_a_probe_counts_against_the_request(tmp_path):
    todo = items(tmp_path, 5)
    cursed = todo[-1].id  # the last one: nothing else is answered after it, only the probe
    reset = EngineUnreachable("Connection error. (ReadError: connection reset)")
    engine = Scripted("glm", lambda i, attempt: reset if i == cursed else None, answers_probe=True)
    stats = run(tmp_path / "out", {1: engine}, todo, max_attempts=2, retry_delay=0.01, unreachable_after=60, max_failure_rate=1.0)
    assert (stats.written, stats.failed, engine.probes) == (4, 1, 2)
    [failure] = runner.read_json_lines(runner.failures_path(tmp_path / "out", 0))
    assert failure["id"] == cursed and failure["attempts"] == 2 and "connection reset" in failure["error"]


class DyingServer(Scripted):
    """Drops every request; its server answers the first probe, then dies while that answer
    is on its way back (0.3 s): later probes get nothing."""

    def probe(self):
        self.probes += 1
        time.sleep(0.3)
        return self.probes == 1


def test_a_probe_sent_before_a_failure_says_nothing_of_it(tmp_path):
    first, second = items(tmp_path, 2)
    reset = EngineUnreachable("Connection error. (ReadError: connection reset)")
    engine = DyingServer("glm", lambda i, attempt: reset, max_in_flight=1)  # second fails while first's probe is out
    out = tmp_path / "out"
    with pytest.raises(scheduler.RunStopped, match="the glm teacher is unreachable"):
        run(out, {1: engine}, [first, second], max_attempts=1, retry_delay=0.05, unreachable_after=0.8)
    # the first reset came while the server answered (its probe): its own; the second, after it died: nobody's
    assert [f["id"] for f in runner.read_json_lines(runner.failures_path(out, 0))] == [first.id]
    assert engine.probes >= 2


def test_an_answer_to_a_request_sent_before_a_failure_says_nothing_of_it(tmp_path):
    slow, lost = items(tmp_path, 2)
    dropped = EngineUnreachable("Connection error. (RemoteProtocolError: Server disconnected)")

    class SlowFirst(Scripted):
        def submit(self, request):
            self.delay = 0.3 if request.id == slow.id else 0.01  # slow's answer is read after lost's failure
            return super().submit(request)

    engine = SlowFirst("glm", lambda i, attempt: dropped if i == lost.id else None, max_in_flight=2)
    out = tmp_path / "out"
    with pytest.raises(scheduler.RunStopped, match="the glm teacher is unreachable"):
        run(out, {1: engine}, [slow, lost], max_attempts=1, retry_delay=0.05, unreachable_after=0.5)
    assert runner.read_json_lines(runner.failures_path(out, 0)) == []  # the server never answered after lost was sent
    assert written_ids(out) == [slow.id]


def test_a_timeout_counts_against_the_request_once_the_server_answers_others_after_it(tmp_path):
    todo = items(tmp_path, 100)
    cursed = todo[0].id
    timeout = EngineUnreachable("Request timed out.", timed_out=True)
    engine = Scripted("glm", lambda i, attempt: timeout if i == cursed else None, delay=0.02, max_in_flight=2)
    stats = run(tmp_path / "out", {1: engine}, todo, max_attempts=2, retry_delay=0.05, unreachable_after=60, max_failure_rate=1.0)
    assert (stats.written, stats.failed) == (99, 1)
    assert len(engine.sent[cursed]) == 2 and engine.probes == 0  # silence says more than a probe


def test_a_dead_engine_stops_the_run(tmp_path):
    todo = items(tmp_path, 10)
    dead = Scripted("glm", lambda i, attempt: RuntimeError("CUDA error: illegal memory access") if i == todo[4].id else None)
    with pytest.raises(scheduler.RunStopped, match="the glm engine failed: RuntimeError: CUDA error: illegal memory access"):
        run(tmp_path / "out", {1: dead}, todo, max_in_flight=1)
    assert runner.read_json_lines(runner.failures_path(tmp_path / "out", 0)) == []
    order = sorted(dead.sent, key=lambda i: dead.sent[i][0])  # one at a time: the rows before the failure
    assert sorted(written_ids(tmp_path / "out")) == sorted(order[: order.index(todo[4].id)])


def test_the_run_stops_early_once_failures_pass_the_rate(tmp_path, monkeypatch):
    monkeypatch.setattr(scheduler, "EARLY_STOP_IMAGES", 20)
    todo = items(tmp_path, 60)
    refusing = Scripted("glm", lambda i, attempt: Result(i, error="NotFoundError: model not served"), max_in_flight=1)
    with pytest.raises(scheduler.RunStopped, match=r"(\d+) of \1 images failed \(100.0%, more than --max-failure-rate 10.0%\): stopped early") as stopped:
        run(tmp_path / "out", {1: refusing}, todo, max_attempts=1, max_failure_rate=0.1)
    counted = int(str(stopped.value).split()[0])
    logged = len(runner.read_json_lines(runner.failures_path(tmp_path / "out", 0)))
    assert counted in (3, 4) and counted <= logged <= 4  # more than 10% of 20, and none after the next one


def test_requests_start_a_few_per_turn_of_the_event_loop():
    """So sockets are polled between batches: the first requests are on the wire at once."""
    import asyncio

    async def main():
        loop, pacer, events = asyncio.get_running_loop(), scheduler._Pacer(4), []

        def tick(turn):  # once per turn of the loop
            events.append("turn")
            if turn < 20:
                loop.call_soon(tick, turn + 1)

        async def start(index):
            await pacer.turn()
            events.append(index)

        loop.call_soon(tick, 0)
        await asyncio.gather(*(start(i) for i in range(10)))
        return events

    events = asyncio.run(main())
    per_turn = [0]
    for event in events:
        if event == "turn":
            per_turn.append(0)
        else:
            per_turn[-1] += 1
    assert sorted(e for e in events if e != "turn") == list(range(10)) and max(per_turn) == 4


def test_failure_summary_is_given_only_past_the_rate():
    assert scheduler.failure_summary(runner.RunStats(written=95, failed=5), 0.05) is None
    assert scheduler.failure_summary(runner.RunStats(written=94, failed=6), 0.05).startswith("6 of 100 images failed (6.0%")
    assert scheduler.failure_summary(runner.RunStats(), 0.0) is None


def test_a_rerun_of_a_shard_above_0_numbers_its_files_after_its_own(tmp_path):
    from imagenet_think import schema
    from imagenet_think.writer import write_shard

    todo = items(tmp_path, 6)
    out = tmp_path / "out"
    for name, item in (("train-00000-00007.parquet", todo[0]), ("train-00001-00000.parquet", todo[1])):
        table = pa.Table.from_pylist([runner.build_row(item, item.read_bytes(), {}, [])], schema=schema.arrow_schema("default"))
        write_shard(table, out / "data" / name)
    with runner.ShardWriter(out, shard_index=1, rows_per_file=2) as writer:
        scheduler.Scheduler({}, writer, progress=False).run(todo[2:])
    names = sorted(f.name for f in runner.data_files(out))
    assert names == ["train-00000-00007.parquet", "train-00001-00000.parquet", "train-00001-00001.parquet", "train-00001-00002.parquet"]
    assert Counter(written_ids(out)) == Counter(i.id for i in todo)


def test_busy_answers_are_retried_after_retry_after_without_spending_attempts(tmp_path):
    todo = items(tmp_path, 20)
    crowded = todo[0].id
    busy = EngineBusy("http://gpu-1:8000/v1: HTTP 429: rate limited", retry_after=0.3)
    engine = Scripted("glm", lambda i, attempt: busy if i == crowded and attempt <= 3 else None, delay=0.02, max_in_flight=2)
    stats = run(tmp_path / "out", {1: engine}, todo, max_attempts=1, retry_delay=0.01, unreachable_after=60)
    assert (stats.written, stats.failed) == (20, 0)  # three busy answers, max_attempts=1: nothing spent
    times = engine.sent[crowded]
    assert len(times) == 4
    assert all(later - earlier >= 0.3 + 0.02 for earlier, later in zip(times, times[1:]))  # the server's wait, not 0.01 doubling


def test_a_retry_after_longer_than_the_longest_retry_delay_is_cut_to_it(tmp_path, monkeypatch):
    monkeypatch.setattr(scheduler, "MAX_RETRY_DELAY", 0.25)
    [item] = items(tmp_path, 1)
    busy = EngineBusy("HTTP 503: overloaded", retry_after=5)
    engine = Scripted("glm", lambda i, attempt: busy if attempt < 3 else None)
    stats = run(tmp_path / "out", {1: engine}, [item], max_attempts=1, retry_delay=0.01, unreachable_after=60)
    first, second, third = engine.sent[item.id]
    assert 0.25 <= second - first < 1.5 and 0.25 <= third - second < 1.5
    assert stats.written == 1


def test_busy_answers_do_not_stop_the_run_while_the_server_answers_others(tmp_path):
    todo = items(tmp_path, 40)
    crowded = todo[0].id

    def script(request_id, attempt):
        others = sum(len(times) for i, times in engine.sent.items() if i != crowded)
        return EngineBusy("HTTP 429: rate limited", retry_after=0.05) if request_id == crowded and others < 30 else None

    engine = Scripted("glm", script, delay=0.03, max_in_flight=2)  # 3 images at a time: its retries find the window free
    stats = run(tmp_path / "out", {1: engine}, todo, max_attempts=1, retry_delay=0.01, unreachable_after=0.3, max_images_in_flight=3)
    assert (stats.written, stats.failed) == (40, 0)
    times = engine.sent[crowded]
    assert len(times) >= 5 and times[-2] - times[0] > 0.3  # busy for longer than unreachable_after, the others answered


def test_a_server_that_answers_only_busy_stops_the_run_and_writes_nothing_off(tmp_path):
    todo = items(tmp_path, 10)
    out = tmp_path / "out"
    busy = EngineBusy("http://gpu-1:8000/v1: HTTP 503: overloaded", retry_after=0.05)
    started = time.monotonic()
    engine = Scripted("glm", lambda i, attempt: busy if time.monotonic() - started < 5 else None, max_in_flight=4)
    with pytest.raises(scheduler.RunStopped, match=r"the glm teacher is unreachable: no answer for \d+ s \(last error: glm: .*HTTP 503: overloaded\)"):
        run(out, {1: engine}, todo, max_attempts=1, retry_delay=0.01, unreachable_after=0.6)
    assert 0.6 <= time.monotonic() - started < 5
    assert runner.read_json_lines(runner.failures_path(out, 0)) == [] and written_ids(out) == []
    assert max(len(times) for times in engine.sent.values()) >= 3 and engine.probes == 0


class HangsAfter(Scripted):
    """A server client that answers the first ``answered`` requests, then none: each later one
    times out after ``timeout`` seconds (its request timeout)."""

    def __init__(self, name: str, answered: int, timeout: float, **options):
        super().__init__(name, **options)
        self.answered, self.timeout = answered, timeout
        self.script = lambda request_id, attempt: None if self._number <= answered else EngineUnreachable("Request timed out.", timed_out=True)

    def submit(self, request):
        self._number = sum(len(times) for times in self.sent.values()) + 1
        self.delay = 0.01 if self._number <= self.answered else self.timeout
        return super().submit(request)


def test_a_server_with_requests_in_flight_and_no_answer_stops_the_run_whatever_the_request_timeout(tmp_path):
    todo = items(tmp_path, 20)
    out = tmp_path / "out"
    engine = HangsAfter("glm", answered=5, timeout=10, max_in_flight=4, silence_means_hung=True)
    started = time.monotonic()
    with pytest.raises(scheduler.RunStopped, match=r"the glm teacher is unreachable: no answer for \d+ s \(4 requests in flight, none answered: the glm server hangs"):
        run(out, {1: engine}, todo, unreachable_after=0.8, retry_delay=0.01)
    assert time.monotonic() - started < 5  # not the 10 s request timeout
    answered = sorted(engine.sent, key=lambda i: engine.sent[i][0])[:5]  # (images are read in parallel: any order)
    assert sorted(written_ids(out)) == sorted(answered)
    assert runner.read_json_lines(runner.failures_path(out, 0)) == []


def test_a_local_engine_may_work_longer_than_unreachable_after_on_its_requests(tmp_path):
    todo = items(tmp_path, 3)
    batch = Scripted("glm", delay=0.6, max_in_flight=4)  # a static batch of a local engine: silence is no hang
    stats = run(tmp_path / "out", {1: batch}, todo, unreachable_after=0.2)
    assert stats.written == 3


def first_run_stopped_by_glm(tmp_path):
    """30 images; glm answers 10 requests then refuses every connection; kimi answers all at once.
    The run stops: (out, the ids written, the ids whose kimi answer was kept)."""
    todo = items(tmp_path, 30)
    out = tmp_path / "out"

    def dying(request_id, attempt):
        return EngineUnreachable("Connection error.") if sum(len(t) for t in glm.sent.values()) > 10 else None

    glm = Scripted("glm", dying, delay=0.05, max_in_flight=4)
    kimi = Scripted("kimi", delay=0.01, max_in_flight=8, answer_text="kept from the first run")
    with pytest.raises(scheduler.RunStopped, match="the glm teacher is unreachable"):
        run(out, {1: glm, 2: kimi}, todo, unreachable_after=0.3, retry_delay=0.05)
    records = runner.read_json_lines(runner.partial_path(out, 0))
    assert {r["pair"] for r in records} == {2}
    return todo, out, set(written_ids(out)), {r["id"] for r in records}


def test_the_other_teachers_answers_are_kept_when_a_run_stops_and_the_rerun_uses_them(tmp_path):
    todo, out, done, kept = first_run_stopped_by_glm(tmp_path)
    assert len(done) == 10 and kept == {i.id for i in todo} - done  # kimi had answered every image at once
    glm, kimi = Scripted("glm"), Scripted("kimi", answer_text="asked again")
    plan = runner.make_plan(todo, out, {1: get_model("glm"), 2: get_model("kimi")})
    stats = run(out, {1: glm, 2: kimi}, plan.todo)
    assert stats.written == 20 and set(glm.sent) == kept
    assert kimi.sent == {}  # not asked again for an image it had answered
    rows = {r["id"]: r for f in runner.data_files(out) for r in pq.read_table(f).to_pylist()}
    assert sorted(rows) == sorted(i.id for i in todo)
    assert {rows[i]["answer_2"] for i in kept} == {"kept from the first run"}
    assert {g["raw"] for i in kept for g in rows[i]["generation"] if g["pair"] == 2} == {"<think>t</think>kept from the first run"}
    assert runner.read_json_lines(runner.partial_path(out, 0)) == []  # consumed: pruned once written


def test_answers_kept_under_other_settings_are_not_used(tmp_path):
    todo, out, done, kept = first_run_stopped_by_glm(tmp_path)
    glm, kimi = Scripted("glm"), Scripted("kimi", sampling={"max_tokens": 64}, answer_text="asked again")
    plan = runner.make_plan(todo, out, {1: get_model("glm"), 2: get_model("kimi")})
    stats = run(out, {1: glm, 2: kimi}, plan.todo)
    assert stats.written == 20 and set(kimi.sent) == kept
    rows = [r for f in runner.data_files(out) for r in pq.read_table(f).to_pylist() if r["id"] in kept]
    assert {r["answer_2"] for r in rows} == {"asked again"}


def test_the_other_teachers_answer_of_an_image_written_off_is_kept_for_retry_failed(tmp_path):
    todo = items(tmp_path, 4)
    bad = todo[1].id
    out = tmp_path / "out"
    glm = Scripted("glm", lambda i, attempt: Result(i, error="BadRequestError: image too small") if i == bad else None, delay=0.2)
    kimi = Scripted("kimi", delay=0.01)  # answers before glm's error
    stats = run(out, {1: glm, 2: kimi}, todo, max_attempts=1, max_failure_rate=1.0)
    assert (stats.written, stats.failed) == (3, 1)
    [record] = runner.read_json_lines(runner.partial_path(out, 0))
    assert (record["id"], record["pair"], record["generation"]["raw"]) == (bad, 2, "<think>t</think>answer")
    glm, kimi = Scripted("glm"), Scripted("kimi")
    plan = runner.make_plan(todo, out, {1: get_model("glm"), 2: get_model("kimi")}, retry_failed=True)
    assert [i.id for i in plan.todo] == [bad]
    assert run(out, {1: glm, 2: kimi}, plan.todo).written == 1
    assert list(glm.sent) == [bad] and kimi.sent == {}
    assert runner.read_json_lines(runner.failures_path(out, 0)) == runner.read_json_lines(runner.partial_path(out, 0)) == []
