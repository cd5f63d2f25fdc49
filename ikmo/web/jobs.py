"""A request queue in front of a bounded set of workers, with each job's progress kept for streaming.

    pool = WorkerPool([ctx_a, ctx_b], max_queue=32)           # one worker thread per resource
    job = pool.submit("0001-ab12cd", work)                     # 503 ApiError when the queue is full
    # work(resource, job) -> (status, reply) runs on a worker with its own resource; it may
    # job.emit({...}) progress events along the way.
    job.wait(timeout_s)                                        # True once finished; job.result = (status, reply)
    events, done = job.events_after(n)                         # what happened since event n (for server-sent events)
    pool.stats()                                               # {"workers", "busy", "queued", "max_queue", ...}

Nothing here knows what a job does: `ikmo serve` runs the agent graph in it, another app may run
anything that needs one of a few heavy resources (a loaded model) at a time.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import Any, Generic, TypeVar

from .errors import ApiError

log = logging.getLogger(__name__)

R = TypeVar("R")
Reply = tuple[int, dict[str, Any]]
KEEP_FINISHED = 512  # finished jobs remembered for GET /…/jobs/ID (their files stay on disk regardless)


class Job:
    """One queued request: its state ("queued" → "running" → "done"), its progress events (dicts, in
    order) and, once done, `result` = (HTTP status, JSON reply). Thread-safe."""

    def __init__(self, job_id: str, kind: str = "job") -> None:
        self.id, self.kind = job_id, kind
        self.state = "queued"
        self.created = time.time()
        self.started: float | None = None
        self.finished: float | None = None
        self.events: list[dict[str, Any]] = []
        self.result: Reply | None = None
        self._cond = threading.Condition()

    def emit(self, event: dict[str, Any]) -> None:
        """Add a progress event (JSON-safe dict) and wake whoever streams this job."""
        with self._cond:
            self.events.append({"t": round(time.time() - self.created, 3), **event})
            self._cond.notify_all()

    def _start(self) -> None:
        with self._cond:
            self.state, self.started = "running", time.time()
            self.events.append({"t": round(time.time() - self.created, 3), "stage": "started"})
            self._cond.notify_all()

    def finish(self, status: int, reply: dict[str, Any]) -> None:
        with self._cond:
            self.result, self.state, self.finished = (int(status), reply), "done", time.time()
            self._cond.notify_all()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the job is done (True) or `timeout_s` passes (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: self.state == "done", timeout=timeout_s)

    def events_after(self, n: int, timeout_s: float = 0.0) -> tuple[list[dict[str, Any]], bool]:
        """The events after the first `n` (waiting up to `timeout_s` for one) and whether the job is done."""
        with self._cond:
            if len(self.events) <= n and self.state != "done" and timeout_s > 0:
                self._cond.wait_for(lambda: len(self.events) > n or self.state == "done", timeout=timeout_s)
            return list(self.events[n:]), self.state == "done"

    def summary(self) -> dict[str, Any]:
        """JSON-safe state: id, kind, state, times, the last event, and the reply once done."""
        with self._cond:
            out: dict[str, Any] = {"id": self.id, "kind": self.kind, "state": self.state,
                                   "events": len(self.events), "last": self.events[-1] if self.events else None}
            if self.result is not None:
                out["status"], out["reply"] = self.result
            return out


class WorkerPool(Generic[R]):
    """`len(resources)` worker threads, each holding one resource, taking jobs from one queue of at
    most `max_queue` waiting jobs (beyond that `submit` answers 503)."""

    def __init__(self, resources: Sequence[R], max_queue: int = 32, name: str = "worker") -> None:
        if not resources:
            raise ValueError("a worker pool needs at least one resource")
        self.max_queue = max_queue
        self._queue: queue.Queue[tuple[Job, Callable[[R, Job], Reply]] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._busy = 0
        self.submitted = self.done = self.failed = 0
        self._threads = [threading.Thread(target=self._loop, args=(r,), name=f"{name}-{i}", daemon=True)
                         for i, r in enumerate(resources)]
        for t in self._threads:
            t.start()

    @property
    def workers(self) -> int:
        return len(self._threads)

    def submit(self, job_id: str, work: Callable[[R, Job], Reply], kind: str = "job",
               on_refused: Callable[[], None] | None = None) -> Job:
        """Queue `work` as job `job_id`; ApiError 503 (after `on_refused()`) when the queue is full."""
        with self._lock:
            waiting = self._queue.qsize()
            if waiting >= self.max_queue:
                if on_refused is not None:
                    on_refused()
                raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE,
                               f"the server is busy: {waiting} requests are waiting for {self.workers} worker(s) "
                               "(the queue is full); try again in a while")
            job = Job(job_id, kind)
            self._jobs[job_id] = job
            while len(self._jobs) > KEEP_FINISHED and next(iter(self._jobs.values())).state == "done":
                self._jobs.popitem(last=False)
            self.submitted += 1
            self._queue.put((job, work))
        job.emit({"stage": "queued", "position": waiting + 1})
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def stats(self) -> dict[str, int]:
        """The queue as a health check shows it."""
        with self._lock:
            return {"workers": self.workers, "busy": self._busy, "queued": self._queue.qsize(),
                    "max_queue": self.max_queue, "submitted": self.submitted, "done": self.done,
                    "failed": self.failed}

    def close(self) -> None:
        """Stop the workers after the jobs already queued."""
        for _ in self._threads:
            self._queue.put(None)

    def _loop(self, resource: R) -> None:
        while (item := self._queue.get()) is not None:
            job, work = item
            with self._lock:
                self._busy += 1
            job._start()
            try:
                status, reply = work(resource, job)
            except ApiError as e:
                status, reply = e.status, {"error": e.message}
            except Exception as e:  # a bug: said in the reply and the log, the worker goes on
                log.exception("job %s failed", job.id)
                status, reply = HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"internal error: {type(e).__name__}: {e}"}
            with self._lock:
                self._busy -= 1
                self.done += 1
                self.failed += int(status >= 400)
            job.finish(status, reply)
