"""Inbox ids bound for the broker go out in batches, each id once, in order (dacs_fhir.tasks)."""
from __future__ import annotations

import threading
import time

from dacs_fhir import tasks


class _Recorder:
    def __init__(self, fail_first: bool = False):
        self.batches: list[list[str]] = []
        self.fail_first = fail_first
        self.lock = threading.Lock()

    def apply_async(self, args):
        with self.lock:
            if self.fail_first:
                self.fail_first = False
                raise ConnectionError("broker down")
            self.batches.append(list(args[0]))


def test_ids_leave_in_batches_each_once_in_order():
    sent = _Recorder()
    batcher = tasks.Batcher(lambda ids: sent.apply_async(args=(ids,)), window=0.2, limit=4)
    ids = [f"dicom/{i}" for i in range(10)]
    for item_id in ids:
        batcher.add(item_id)
    batcher.flush(5)
    assert [i for b in sent.batches for i in b] == ids
    assert all(len(b) <= 4 for b in sent.batches) and len(sent.batches) == 3
    batcher.add("dicom/late")  # a lone id waits for its window, not for company
    t = time.monotonic()
    batcher.flush(5)
    assert sent.batches[-1] == ["dicom/late"] and time.monotonic() - t < 1


def test_a_batch_the_broker_refuses_is_logged_and_the_next_still_goes(caplog):
    sent = _Recorder(fail_first=True)
    batcher = tasks.Batcher(lambda ids: sent.apply_async(args=(ids,)), window=0.01, limit=2)
    batcher.add("dicom/a")
    batcher.add("dicom/b")
    batcher.flush(5)
    batcher.add("dicom/c")
    batcher.flush(5)
    assert sent.batches == [["dicom/c"]]  # a and b stay pending in the inbox, enqueued again on start
    assert "stay pending" in caplog.text
