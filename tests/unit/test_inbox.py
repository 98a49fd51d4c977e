"""The raw inbox keeps every object durably and records processing outcomes."""
import os

import pytest

from dacs_fhir.inbox import DONE, FAILED, PENDING, Inbox, InboxError


def test_put_read_mark_list(tmp_path):
    inbox = Inbox(tmp_path)
    item = inbox.put("dicom", b"DICM-bytes", key="1.2.3.4", meta={"calling_ae": "CT1"})
    assert item.id == "dicom/1.2.3.4" and item.status == PENDING and item.size == 10
    assert inbox.read(item.id) == b"DICM-bytes"
    inbox.mark(item.id, FAILED, "not a dose object\nsecond line dropped")
    got = inbox.get(item.id)
    assert (got.status, got.reason, got.attempts) == (FAILED, "not a dose object", 1)
    assert [i.id for i in inbox.list(status=FAILED)] == [item.id]
    assert list(inbox.list(status=DONE)) == []
    inbox.mark(item.id, DONE)
    assert inbox.get(item.id).attempts == 2


def test_content_addressed_when_no_key_and_same_key_replaces(tmp_path):
    inbox = Inbox(tmp_path)
    a = inbox.put("hl7v2", b"MSH|^~\\&|A")
    b = inbox.put("hl7v2", b"MSH|^~\\&|A")
    assert a.key == b.key and len(a.key) == 64
    inbox.put("dicom", b"v1", key="9.9")
    inbox.put("dicom", b"v2", key="9.9")
    assert inbox.read("dicom/9.9") == b"v2"


def test_unsafe_keys_are_sanitised(tmp_path):
    item = Inbox(tmp_path).put("dicom", b"x", key="../../etc/passwd")
    assert "/" not in item.key and (tmp_path / "dicom").exists()
    assert not (tmp_path.parent / "etc").exists()


def test_write_failure_raises_inbox_error(tmp_path):
    root = tmp_path / "ro"
    root.mkdir()
    os.chmod(root, 0o500)
    try:
        if os.access(root, os.W_OK):  # running as root: permissions do not stop us
            pytest.skip("permissions are not enforced for this user")
        with pytest.raises(InboxError):
            Inbox(root).put("dicom", b"x", key="1")
    finally:
        os.chmod(root, 0o700)


def test_write_failure_on_unwritable_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(InboxError):
        Inbox(blocker).put("dicom", b"x", key="1")  # root is a file, not a folder


def test_raw_object_whose_state_was_lost_counts_as_pending(tmp_path):
    inbox = Inbox(tmp_path)
    item = inbox.put("dicom", b"payload", key="1.2.3")
    inbox.mark(item.id, DONE)
    state = tmp_path / "dicom" / item.key[:2] / f"{item.key}.state.json"
    state.unlink()  # a crash before the unsynced state reached the disk
    again = inbox.get(item.id)
    assert again.status == PENDING and again.size == 7
    assert [i.id for i in inbox.list(status=PENDING)] == [item.id]


@pytest.mark.parametrize("torn", [b"", b'{"kind": "dicom", "key": "1.2', b'{"unexpected": 1}'])
def test_raw_object_whose_state_write_was_torn_counts_as_pending(tmp_path, torn):
    inbox = Inbox(tmp_path)
    item = inbox.put("dicom", b"payload", key="1.2.3")
    inbox.mark(item.id, DONE)
    state = tmp_path / "dicom" / item.key[:2] / f"{item.key}.state.json"
    state.write_bytes(torn)  # a crash in the middle of the in-place overwrite
    assert inbox.get(item.id).status == PENDING
    assert [i.id for i in inbox.list(status=PENDING)] == [item.id]
    inbox.mark(item.id, DONE)  # and a later mark writes it whole again
    assert inbox.get(item.id).status == DONE and not list(state.parent.glob(".tmp-*"))


def test_state_is_rewritten_in_place_and_a_shorter_one_cut_to_its_length(tmp_path):
    inbox = Inbox(tmp_path)
    item = inbox.put("dicom", b"payload", key="1.2.3")
    state = tmp_path / "dicom" / item.key[:2] / f"{item.key}.state.json"
    inbox.mark(item.id, FAILED, "mapping error: " + "x" * 700)
    long_size = state.stat().st_size
    inbox.mark(item.id, DONE)
    again = inbox.get(item.id)
    assert again.status == DONE and again.reason == "" and again.attempts == 2
    assert state.stat().st_size < long_size and state.stat().st_size % 512 == 0
    # a crash after the shorter state was written but before the file was cut: the old tail follows it
    state.write_bytes(state.read_bytes() + b'"x", "status": "done"}' + b" " * 400)
    assert inbox.get(item.id).status == PENDING


def test_journal_items_are_listed_read_and_marked_like_files(tmp_path):
    inbox = Inbox(tmp_path)
    journal = inbox.journal("hl7v2")
    assert inbox.journal("hl7v2") is journal
    first = journal.append(b"MSH|one\r", {"control_id": "1"})
    second = journal.append(b"MSH|two\r", {"control_id": "2"}, durable=True)
    inbox.put("hl7v2", b"MSH|file\r")  # a file item beside the journal
    assert first.key.startswith("j.") and first.key != second.key
    assert inbox.read(second.id) == b"MSH|two\r"
    assert inbox.get(first.id).meta == {"control_id": "1"} and inbox.get(first.id).status == PENDING
    assert journal.set_status(first.key, DONE)
    fresh = Inbox(tmp_path)  # another process reading the same folder
    assert fresh.get(first.id).status == DONE
    fresh.mark(second.id, FAILED, "AE 207: database unavailable")
    assert sorted(i.status for i in fresh.list(kind="hl7v2")) == [DONE, FAILED, PENDING]
    statuses = {i.id: i.status for i in fresh.list(kind="hl7v2") if i.key.startswith("j.")}
    assert statuses == {first.id: DONE, second.id: FAILED}
    assert fresh.get(second.id).reason.startswith("AE 207")
    assert fresh.path(first.id).suffix == ".jnl"
    assert not fresh.journal("hl7v2").set_status(first.key, FAILED)  # not the journal this inbox has open


def test_journal_record_torn_by_a_crash_ends_the_scan(tmp_path):
    inbox = Inbox(tmp_path)
    journal = inbox.journal("hl7v2")
    kept = journal.append(b"MSH|kept\r")
    torn = journal.append(b"MSH|torn-by-the-crash\r")
    path = inbox.path(kept.id)
    os.truncate(path, path.stat().st_size - 5)
    assert [i.id for i in Inbox(tmp_path).list(kind="hl7v2")] == [kept.id]
    with pytest.raises(ValueError):
        inbox.read(torn.id)
