"""Segmenting and tagging the sentences of many requests together, in one thread per model.

A one-sentence request alone keeps the model busy for a batch of one; a batch of many
sentences costs little more than a batch of one (the network is run once per step for the
whole batch). So each request's sentences go to its model's ``Batcher``, which tags the
sentences of every request waiting at once in one call of ``Pipeline.tag_tokens`` (the
Python API's own tagging path) and gives each request its own sentences back. A request of
short raw text gives its text instead: the texts waiting are segmented together first, in a
thread of their own (``decoder.segmented_texts``: one run of the segmenter for all of them),
then join the sentences waiting to be tagged. A request
that finds the tagger idle waits at most ``wait`` seconds for others to join it; requests
that arrived while the tagger was busy go at once. A request whose client has gone (its
future cancelled) before its batch starts is dropped without being tagged.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Sequence

from lstm_tagger.corpus.rawtext import Segmented
from lstm_tagger.segmenter.decoder import segmented_texts
from lstm_tagger.tagging.pipeline import Pipeline
from lstm_tagger.tagging.predict import Tagged

DEFAULT_WAIT = 0.002
"""Seconds an idle tagger waits for more requests to join the first one's batch."""
BATCH_SENTENCES = 4096
"""Stop gathering requests into a batch once it holds this many sentences (a larger request goes alone)."""
BATCH_TEXT_CHARS = 1 << 16
"""... or once its raw texts hold this many characters."""
SHORT_TEXT_CHARS = 10_000
"""Raw text up to this long is segmented in the batch (``submit_text``); longer text, which
fills a batch of its own, is segmented by the request's own thread (``inputs.from_text``)."""
_STOP = None


@dataclass
class Job:
    """One request's sentences (lists of words), or its raw ``text`` to segment first (then
    ``segmented`` holds its sentences), and the future that receives their ``Tagged``."""

    words: Sequence[Sequence[str]]
    scores: bool
    text: str | None = None
    segmented: list[Segmented] = field(default_factory=list)
    future: Future = field(default_factory=Future)
    arrived: float = field(default_factory=time.monotonic)


class Batcher:
    """Two threads: one segments the raw texts of waiting requests together, the other tags the
    sentences of waiting requests together with ``pipeline``. Each stage's torch kernels release
    Python's lock, so one batch is segmented while the one before it is tagged."""

    def __init__(self, pipeline: Pipeline, wait: float = DEFAULT_WAIT, name: str = "model", lock: threading.Lock | None = None):
        self.pipeline, self.wait = pipeline, wait
        self.segmenting = lock if lock is not None else threading.Lock()
        """Held while the segmenter runs: it keeps a cache of characters one thread at a time may change."""
        self._texts: queue.Queue[Job | None] = queue.Queue()
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self.batches = 0
        """Batches tagged so far."""
        self._threads = [threading.Thread(target=target, name=f"lstm-tag {stage} ({name})", daemon=True)
                         for stage, target in (("segmenter", self._run_segmenting), ("tagger", self._run))]
        for thread in self._threads:
            thread.start()

    def submit(self, words: Sequence[Sequence[str]], scores: bool = False) -> Future:
        """Queue a request's sentences; the future gives their ``Tagged``, in order."""
        job = Job(words, scores)
        self._queue.put(job)
        return job.future

    def submit_text(self, text: str, scores: bool = False) -> tuple[Job, Future]:
        """Queue a request's raw text, segmented with the other texts waiting; once the future is
        done, the job's ``segmented`` holds its sentences and the future gives their ``Tagged``."""
        job = Job([], scores, text)
        self._texts.put(job)
        return job, job.future

    def close(self) -> None:
        """Segment and tag what is queued, then stop the threads."""
        self._texts.put(_STOP)  # the segmenting thread passes it on to the tagging thread
        for thread in self._threads:
            thread.join()

    def _run_segmenting(self) -> None:
        while True:
            jobs, stop = self._gather(self._texts)
            self._segment([job for job in jobs if not job.future.cancelled()])
            if stop:
                self._queue.put(_STOP)
                return

    def _run(self) -> None:
        while True:
            jobs, stop = self._gather(self._queue)
            for scores in (False, True):
                self._tag([job for job in jobs if job.scores == scores], scores)
            if stop:
                return

    def _gather(self, waiting: queue.Queue) -> tuple[list[Job], bool]:
        """The jobs of the next batch from ``waiting`` (the first one waited for), and whether to stop after it."""
        first = waiting.get()
        if first is _STOP:
            return [], True
        jobs, sentences, chars = [first], len(first.words), len(first.text or "")
        deadline = first.arrived + self.wait
        while sentences < BATCH_SENTENCES and chars < BATCH_TEXT_CHARS:
            try:
                job = waiting.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if job is _STOP:
                return jobs, True
            jobs.append(job)
            sentences += len(job.words)
            chars += len(job.text or "")
        return jobs, False

    def _segment(self, jobs: list[Job]) -> None:
        """Segment the texts of ``jobs`` together (each job's ``segmented`` sentences and their
        ``words``), then queue them for tagging; an error goes to each of them."""
        if not jobs:
            return
        checkpoint = self.pipeline.checkpoint
        try:
            with self.segmenting:
                found = segmented_texts(checkpoint.segmenter if checkpoint is not None else None, [job.text for job in jobs])
        except BaseException as exc:  # noqa: BLE001 -- every waiting request gets the error, the thread goes on
            for job in jobs:
                job.future.set_exception(exc)
            return
        for job, sentences in zip(jobs, found):
            job.segmented, job.words = sentences, [sentence.words for sentence in sentences]
            self._queue.put(job)

    def _tag(self, jobs: list[Job], scores: bool) -> None:
        """Tag the jobs still wanted in one call and hand each its sentences (or the error)."""
        live = [job for job in jobs if job.future.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            tagged = self.tagged([words for job in live for words in job.words], scores)
        except BaseException as exc:  # noqa: BLE001 -- every waiting request gets the error, the thread goes on
            for job in live:
                job.future.set_exception(exc)
            return
        self.batches += 1
        start = 0
        for job in live:
            job.future.set_result(tagged[start : start + len(job.words)])
            start += len(job.words)

    def tagged(self, sentences: list[Sequence[str]], scores: bool) -> list[Tagged]:
        """Each sentence's ``Tagged`` (an empty sentence's too), through ``Pipeline.tag_tokens``."""
        return [tagged for _, tagged in self.pipeline.tag_tokens(sentences, scores).records]
