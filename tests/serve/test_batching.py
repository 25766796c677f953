"""The batcher: the sentences of requests that wait together are tagged in one call, each request
gets its own back (the same tags as alone), a request whose client went away is not tagged, and
an error reaches every request of its batch without stopping the thread."""

from __future__ import annotations

import threading

import pytest

import lstm_tagger
from lstm_tagger.serve.batching import Batcher


class HeldBatcher(Batcher):
    """A batcher whose first batch waits for ``release``: the requests sent meanwhile queue up,
    as they do while the model is busy. Records the sentences of every call."""

    def __init__(self, pipeline, fail: bool = False):
        self.release, self.calls, self.fail = threading.Event(), [], fail
        super().__init__(pipeline, wait=0.0)

    def tagged(self, sentences, scores):
        self.calls.append([list(words) for words in sentences])
        if len(self.calls) == 1:
            self.release.wait()
        if self.fail and len(self.calls) == 2:
            raise RuntimeError("the model broke")
        return super().tagged(sentences, scores)


@pytest.fixture(scope="module")
def tagger(tiny_run) -> lstm_tagger.Pipeline:
    return lstm_tagger.load(tiny_run)


REQUESTS = [[["The", "dog", "ate", "the", "apple"]], [["Everybody", "read", "that", "book"], ["The", "dog"]], [[]], [["book"]]]


def alone(tagger, words):
    return [(t.words, t.columns) for _, t in tagger.tag_tokens(words).records]


def test_requests_that_wait_together_are_one_batch_and_get_their_own_tags(tagger):
    batcher = HeldBatcher(tagger)
    first = batcher.submit([["The", "dog"]])
    while not batcher.calls:  # the first batch has started (and waits)
        threading.Event().wait(0.001)
    futures = [batcher.submit(words) for words in REQUESTS]
    batcher.release.set()
    assert [(t.words, t.columns) for t in first.result()] == alone(tagger, [["The", "dog"]])
    for words, future in zip(REQUESTS, futures):
        assert [(t.words, t.columns) for t in future.result()] == alone(tagger, words)
    batcher.close()
    assert batcher.calls == [[["The", "dog"]], [words for request in REQUESTS for words in request]]
    assert batcher.batches == 2


def test_a_request_whose_client_went_away_is_not_tagged(tagger):
    batcher = HeldBatcher(tagger)
    batcher.submit([["The"]])
    while not batcher.calls:
        threading.Event().wait(0.001)
    gone, kept = batcher.submit([["gone"]]), batcher.submit([["kept"]])
    assert gone.cancel()
    batcher.release.set()
    assert [t.words for t in kept.result()] == [["kept"]] and gone.cancelled()
    batcher.close()
    assert batcher.calls == [[["The"]], [["kept"]]]


def test_scores_and_no_scores_are_tagged_apart(tagger):
    batcher = Batcher(tagger)
    plain, scored = batcher.submit([["The", "dog"]]), batcher.submit([["The", "dog"]], scores=True)
    assert plain.result()[0].probs is None and set(scored.result()[0].probs) == {"upos"}
    batcher.close()


def test_an_error_reaches_its_batch_and_the_thread_goes_on(tagger):
    batcher = HeldBatcher(tagger, fail=True)
    batcher.submit([["The"]])
    while not batcher.calls:
        threading.Event().wait(0.001)
    broken = [batcher.submit([["a"]]), batcher.submit([["b"]])]
    batcher.release.set()
    for future in broken:
        with pytest.raises(RuntimeError, match="the model broke"):
            future.result()
    assert [t.words for t in batcher.submit([["after"]]).result()] == [["after"]]
    batcher.close()


class HeldSegmenting(Batcher):
    """A batcher whose first run of the segmenter waits for ``release``; records each run's texts."""

    def __init__(self, pipeline):
        self.release, self.runs = threading.Event(), []
        super().__init__(pipeline, wait=0.0)

    def _segment(self, jobs):
        if jobs:
            self.runs.append([job.text for job in jobs])
        if len(self.runs) == 1:
            self.release.wait()
        super()._segment(jobs)


def test_the_texts_of_requests_that_wait_together_are_segmented_in_one_run(demo_run):
    tagger = lstm_tagger.load(demo_run)
    batcher = HeldSegmenting(tagger)
    batcher.submit_text("Held.")
    while not batcher.runs:  # the first run has started (and waits)
        threading.Event().wait(0.001)
    texts = ["Don't stop. The dog ate the apple", "", "Everybody read that book.\n\nWe can't stop now!"]
    jobs = [batcher.submit_text(text) for text in texts]
    batcher.release.set()
    for text, (job, future) in zip(texts, jobs):
        tags, expected = [t.columns["upos"] for t in future.result()], tagger(text)
        assert [sentence.words for sentence in job.segmented] == [[w.form for w in s.words] for s in expected.sentences]
        assert tags == [[w.upos for w in s.words] for s in expected.sentences]
    batcher.close()
    assert batcher.runs == [["Held."], texts]


def test_a_segmenting_error_reaches_its_requests_and_the_threads_go_on(tagger, monkeypatch):
    from lstm_tagger.serve import batching

    batcher = Batcher(tagger)
    monkeypatch.setattr(batching, "segmented_texts", lambda segmenter, texts: 1 / 0)
    _, broken = batcher.submit_text("The dog")
    with pytest.raises(ZeroDivisionError):
        broken.result()
    monkeypatch.undo()
    _, working = batcher.submit_text("The dog")
    assert [t.words for t in working.result()] == [["The", "dog"]]
    batcher.close()
