"""The raw inbox keeps every object durably and records processing outcomes."""
import hashlib
import os

import pytest

from dacs_fhir.inbox import DONE, FAILED, PENDING, Inbox, InboxError, split_id


def test_put_read_mark_list(tmp_path):
    inbox = Inbox(tmp_path)
    item = inbox.put("dicom", b"DICM-bytes", key="1.2.3.4", meta={"calling_ae": "CT1"})
    assert item.id == f"dicom/{item.key}" and item.status == PENDING and item.size == 10
    assert item.meta == {"calling_ae": "CT1", "ref": "1.2.3.4"}  # the caller's key is metadata only
    assert inbox.read(item.id) == b"DICM-bytes"
    inbox.mark(item.id, FAILED, "not a dose object\nsecond line dropped")
    got = inbox.get(item.id)
    assert (got.status, got.reason, got.attempts) == (FAILED, "not a dose object", 1)
    assert [i.id for i in inbox.list(status=FAILED)] == [item.id]
    assert list(inbox.list(status=DONE)) == []
    inbox.mark(item.id, DONE)
    assert inbox.get(item.id).attempts == 2


def test_every_put_is_a_new_item_and_nothing_is_replaced(tmp_path):
    inbox = Inbox(tmp_path)
    first = inbox.put("dicom", b"the original RDSR", key="1.2.3", meta={"sop_instance_uid": "1.2.3"})
    inbox.mark(first.id, DONE)
    again = inbox.put("dicom", b"the original RDSR", key="1.2.3", meta={"sop_instance_uid": "1.2.3"})
    forged = inbox.put("dicom", b"\0" * 420, key="1.2.3", meta={"sop_instance_uid": "1.2.3"})
    assert len({first.key, again.key, forged.key}) == 3 and again.sha256 == first.sha256 != forged.sha256
    assert inbox.read(first.id) == b"the original RDSR" and inbox.get(first.id).status == DONE
    assert [i.id for i in inbox.find("dicom", sop_instance_uid="1.2.3")] == [first.id, again.id, forged.id]  # oldest first


def test_peer_strings_never_become_paths(tmp_path):
    inbox = Inbox(tmp_path / "inbox")
    for ref in ("..", "../../../tmp/pwn", "/etc/passwd", "a/../../b"):
        item = inbox.put("dicom", b"x", key=ref)
        assert inbox.path(item.id).resolve().is_relative_to((tmp_path / "inbox").resolve())
        assert item.meta["ref"] == ref
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inbox"]
    assert len(list(inbox.list())) == 4


@pytest.mark.parametrize("bad", ["dicom/..", "dicom/../../etc/passwd", "../dicom/x", "dicom/a/b", "dicom/.hidden",
                                 "dicom/a..b", "DICOM/x", "dicom/", "/etc/passwd", "dicom/x\x00y"])
def test_ids_that_would_leave_the_inbox_are_refused(tmp_path, bad):
    inbox = Inbox(tmp_path / "inbox")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd.raw").write_bytes(b"secret")
    with pytest.raises(ValueError):
        split_id(bad)
    with pytest.raises(KeyError):
        inbox.get(bad)
    with pytest.raises(ValueError):
        inbox.read(bad)
    with pytest.raises(ValueError):
        inbox.mark(bad, DONE)


def test_folders_0700_and_files_0600(tmp_path):
    os.umask(0o022)
    inbox = Inbox(tmp_path / "inbox")
    item = inbox.put("fhir", b"{}")
    spooled = inbox.spool()
    spooled.write(b"DICM")
    streamed = inbox.put_spool("dicom", spooled)
    journal_item = inbox.journal("hl7v2").append(b"MSH|")
    for path in (tmp_path / "inbox").rglob("*"):
        assert path.stat().st_mode & 0o777 == (0o700 if path.is_dir() else 0o600), path
    assert inbox.read(streamed.id) == b"DICM" and streamed.size == 4 and inbox.get(journal_item.id).size == 4
    assert item.id in {i.id for i in inbox.list()}


def test_spooled_object_is_moved_not_copied_and_a_discarded_one_leaves_nothing(tmp_path):
    inbox = Inbox(tmp_path)
    spool = inbox.spool()
    spool.write(b"a" * 1000)
    spool.write(b"b" * 24)
    inode = os.stat(spool.path).st_ino
    item = inbox.put_spool("dicom", spool, meta={"sop_instance_uid": "1.2"})
    assert os.stat(inbox.path(item.id)).st_ino == inode and not spool.path.exists()
    assert item.size == 1024 and item.sha256 == hashlib.sha256(b"a" * 1000 + b"b" * 24).hexdigest()
    dropped = inbox.spool()
    dropped.write(b"too large")
    dropped.discard()
    assert list((tmp_path / ".incoming").iterdir()) == [] and [i.id for i in inbox.list()] == [item.id]


def test_items_of_an_earlier_inbox_keyed_by_uid_or_digest_are_still_read(tmp_path):
    folder = tmp_path / "dicom" / "1."
    folder.mkdir(parents=True)
    (folder / "1.2.840.5.raw").write_bytes(b"old RDSR")
    inbox = Inbox(tmp_path)
    assert [i.id for i in inbox.list()] == ["dicom/1.2.840.5"]
    assert inbox.read("dicom/1.2.840.5") == b"old RDSR" and inbox.get("dicom/1.2.840.5").status == PENDING
    inbox.mark("dicom/1.2.840.5", DONE)
    assert inbox.get("dicom/1.2.840.5").status == DONE


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
    state = inbox.state_path(item.id)
    state.unlink()  # a crash before the unsynced state reached the disk
    again = inbox.get(item.id)
    assert again.status == PENDING and again.size == 7
    assert [i.id for i in inbox.list(status=PENDING)] == [item.id]


@pytest.mark.parametrize("torn", [b"", b'{"kind": "dicom", "key": "1.2', b'{"unexpected": 1}'])
def test_raw_object_whose_state_write_was_torn_counts_as_pending(tmp_path, torn):
    inbox = Inbox(tmp_path)
    item = inbox.put("dicom", b"payload", key="1.2.3")
    inbox.mark(item.id, DONE)
    state = inbox.state_path(item.id)
    state.write_bytes(torn)  # a crash in the middle of the in-place overwrite
    assert inbox.get(item.id).status == PENDING
    assert [i.id for i in inbox.list(status=PENDING)] == [item.id]
    inbox.mark(item.id, DONE)  # and a later mark writes it whole again
    assert inbox.get(item.id).status == DONE and not list(state.parent.glob(".tmp-*"))


def test_state_is_rewritten_in_place_and_a_shorter_one_cut_to_its_length(tmp_path):
    inbox = Inbox(tmp_path)
    item = inbox.put("dicom", b"payload", key="1.2.3")
    state = inbox.state_path(item.id)
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
