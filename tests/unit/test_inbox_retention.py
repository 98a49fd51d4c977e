"""Inbox retention: done and failed items older than their retention are purged, pending ones never."""
from dacs_fhir.inbox import DONE, FAILED, PENDING, Inbox
from dacs_fhir.inbox_retention import DAY, purge

OLD = {DONE: 30, FAILED: 90}


def _filled(tmp_path):
    inbox = Inbox(tmp_path)
    items = {}
    for name, status in (("done", DONE), ("failed", FAILED), ("pending", PENDING)):
        item = inbox.put("fhir", f"body {name}".encode())
        if status != PENDING:
            inbox.mark(item.id, status, "refused: 422" if status == FAILED else "")
        items[name] = item
    return inbox, items


def test_purge_keeps_what_is_recent_and_what_is_pending(tmp_path):
    inbox, items = _filled(tmp_path)
    assert purge(inbox, OLD).items == []  # nothing is 30 days old yet
    in_40_days = items["done"].received + 40 * DAY
    out = purge(inbox, OLD, now=in_40_days)
    assert [i.id for i in out.items] == [items["done"].id] and out.bytes == len(b"body done")
    assert not inbox.path(items["done"].id).exists() and not inbox.state_path(items["done"].id).exists()
    assert sorted(i.status for i in inbox.list()) == [FAILED, PENDING]
    out = purge(inbox, {DONE: 0, FAILED: 0}, now=in_40_days + 400 * DAY)
    assert [i.id for i in out.items] == [items["failed"].id]
    assert [i.id for i in inbox.list()] == [items["pending"].id] and inbox.read(items["pending"].id) == b"body pending"


def test_dry_run_and_status_filter(tmp_path):
    inbox, items = _filled(tmp_path)
    later = items["done"].received + 1000 * DAY
    out = purge(inbox, {FAILED: 90}, dry_run=True, now=later)
    assert [i.id for i in out.items] == [items["failed"].id] and len(list(inbox.list())) == 3
    assert purge(inbox, {FAILED: None, DONE: None}, now=later).items == []  # None: kept
    assert [i.id for i in purge(inbox, {FAILED: 90}, now=later).items] == [items["failed"].id]
    assert sorted(i.status for i in inbox.list()) == [DONE, PENDING]


def test_a_journal_goes_whole_once_processed_and_no_longer_appended_to(tmp_path):
    inbox = Inbox(tmp_path)
    journal = inbox.journal("hl7v2")
    a = journal.append(b"MSH|a\r")
    b = journal.append(b"MSH|b\r")
    journal.set_status(a.key, DONE)
    later = a.received + 100 * DAY
    assert purge(inbox, OLD, now=later).items == []  # b is pending
    inbox.mark(b.id, FAILED, "AR: bad message")
    out = purge(Inbox(tmp_path), OLD, now=later)  # another process: the journal is still open here
    assert out.items == [] and out.kept_in_open_journals == 2 and inbox.read(a.id) == b"MSH|a\r"
    journal.close()
    out = purge(Inbox(tmp_path), OLD, now=later)
    assert sorted(i.id for i in out.items) == sorted([a.id, b.id])
    assert list(inbox.list(kind="hl7v2")) == [] and not inbox.state_path(b.id).exists()
    c = journal.append(b"MSH|c\r")  # the receiver goes on in a new journal file
    assert [i.id for i in inbox.list()] == [c.id]
