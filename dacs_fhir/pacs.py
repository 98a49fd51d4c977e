"""Backfill from a PACS: C-FIND the studies of a period, pick their dose series, retrieve them.

Query/Retrieve SCU, Study Root information model (PS3.4 Annex C): a STUDY level
C-FIND on the study date range (and Modalities in Study), a SERIES level C-FIND
per study, then a SERIES level C-MOVE to our own Storage SCP (or a C-GET on the
same association, whose C-STOREs go through the SCP's store handler). Dose
series are the SR series (RDSR, Radiopharmaceutical RDSR, Enhanced / Comprehensive
SR) and series that name themselves dose screens; more modalities can be asked for.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Callable, Iterable, Iterator, Optional

from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind as FIND,
    StudyRootQueryRetrieveInformationModelGet as GET,
    StudyRootQueryRetrieveInformationModelMove as MOVE,
)

from .config import Settings
from .transport.dicom import (
    COMPRESSED_SYNTAXES,
    DOSE_SR_CLASSES,
    IMAGE_CLASSES,
    NATIVE_SYNTAXES,
    configure_ae,
    set_nodelay,
)

log = logging.getLogger(__name__)

DOSE_SERIES_MODALITIES = ("SR",)
# dose screens stored as secondary capture under the scanner's modality or OT (e.g. "Dose Info", "Dose Report")
DOSE_SERIES_DESCRIPTION = re.compile(r"\bdose\b", re.IGNORECASE)
PENDING = (0xFF00, 0xFF01)
MOVE_DESTINATION_UNKNOWN = 0xA801  # PS3.4 C.4.2.1.4


class PacsError(Exception):
    """The PACS refused or failed a request; ``str(err)`` is a one-line reason."""


@dataclass(frozen=True)
class Peer:
    """A remote AE: ``AET@host:port``."""

    ae_title: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> "Peer":
        m = re.fullmatch(r"\s*([^@\s]{1,16})@(\[[^\]]+\]|[^:\s]+):(\d{1,5})\s*", text or "")
        if not m:
            raise ValueError(f"expected AET@host:port, got {text!r}")
        return cls(m.group(1), m.group(2).strip("[]"), int(m.group(3)))

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


@dataclass(frozen=True)
class Series:
    study_uid: str
    series_uid: str
    modality: str
    instances: Optional[int]


@dataclass
class PullSummary:
    studies: int = 0
    series: int = 0
    completed: int = 0
    failed: int = 0
    warning: int = 0
    errors: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"{self.studies} studies, {self.series} dose series: {self.completed} objects retrieved, "
                f"{self.warning} with warnings, {self.failed} failed")


def date_range(since: date, until: Optional[date] = None) -> str:
    """DICOM range matching on a DA attribute (PS3.4 C.2.2.2.5)."""
    return f"{since:%Y%m%d}-{until:%Y%m%d}" if until else f"{since:%Y%m%d}-"


def is_dose_series(ds: Dataset, modalities: Iterable[str] = DOSE_SERIES_MODALITIES) -> bool:
    return str(ds.get("Modality", "")).upper() in set(modalities) or bool(
        DOSE_SERIES_DESCRIPTION.search(str(ds.get("SeriesDescription", "")))
    )


def _check_final(status: Optional[Dataset], what: str) -> None:
    if status is None or "Status" not in status:
        raise PacsError(f"{what}: no response from the PACS (timeout or aborted association)")
    if status.Status not in (0x0000, 0xB000) and status.Status not in PENDING:
        comment = str(status.get("ErrorComment", "")).strip()
        raise PacsError(f"{what} failed with status 0x{status.Status:04X}{': ' + comment if comment else ''}")


class PacsClient:
    """Query/Retrieve SCU towards one PACS, calling with our own AE title."""

    def __init__(self, settings: Settings, peer: Peer):
        self.settings = settings
        self.peer = peer

    def _ae(self) -> AE:
        return configure_ae(AE(ae_title=self.settings.ae_title), self.settings)

    def _associate(self, ae: AE, **kwargs):
        assoc = ae.associate(self.peer.host, self.peer.port, ae_title=self.peer.ae_title,
                             evt_handlers=[(evt.EVT_CONN_OPEN, set_nodelay)] + kwargs.pop("evt_handlers", []), **kwargs)
        if not assoc.is_established:
            why = "rejected" if assoc.is_rejected else "aborted" if assoc.is_aborted else "not established"
            raise PacsError(f"association with {self.peer} {why}")
        return assoc

    def _find(self, assoc, query: Dataset) -> Iterator[Dataset]:
        final = None
        for status, identifier in assoc.send_c_find(query, FIND):
            final = status
            if status and status.Status in PENDING and identifier is not None:
                yield identifier
        _check_final(final, f"C-FIND {query.QueryRetrieveLevel}")

    def find_studies(self, since: date, until: Optional[date] = None, modalities: Iterable[str] = ()) -> list[Dataset]:
        """Studies in the date range (any of ``modalities`` when given), one per Study Instance UID."""
        ae = self._ae()
        ae.add_requested_context(FIND)
        assoc = self._associate(ae)
        found: dict[str, Dataset] = {}
        try:
            for modality in list(modalities) or [""]:
                q = Dataset()
                q.QueryRetrieveLevel = "STUDY"
                q.StudyDate = date_range(since, until)
                q.StudyInstanceUID = ""
                q.ModalitiesInStudy = modality
                q.NumberOfStudyRelatedInstances = ""
                for ds in self._find(assoc, q):
                    value = ds.get("ModalitiesInStudy") or []
                    in_study = {str(m).upper() for m in ([value] if isinstance(value, str) else value)}
                    # a PACS may ignore the matching key: check what it returned
                    if modality and in_study and modality.upper() not in in_study:
                        continue
                    found.setdefault(str(ds.StudyInstanceUID), ds)
        finally:
            assoc.release()
        return list(found.values())

    def find_dose_series(self, study_uids: Iterable[str], modalities: Iterable[str] = DOSE_SERIES_MODALITIES) -> list[Series]:
        """The dose series of each study (SERIES level C-FIND, filtered here: PACS differ in what they match)."""
        ae = self._ae()
        ae.add_requested_context(FIND)
        assoc = self._associate(ae)
        modalities = {m.upper() for m in modalities}
        out: list[Series] = []
        try:
            for uid in study_uids:
                q = Dataset()
                q.QueryRetrieveLevel = "SERIES"
                q.StudyInstanceUID = uid
                q.SeriesInstanceUID = ""
                q.Modality = ""
                q.SeriesDescription = ""
                q.NumberOfSeriesRelatedInstances = ""
                for ds in self._find(assoc, q):
                    if is_dose_series(ds, modalities):
                        n = ds.get("NumberOfSeriesRelatedInstances")
                        out.append(Series(uid, str(ds.SeriesInstanceUID), str(ds.get("Modality", "")), int(n) if n not in (None, "") else None))
        finally:
            assoc.release()
        return out

    @staticmethod
    def _retrieve_identifier(series: Series) -> Dataset:
        q = Dataset()
        q.QueryRetrieveLevel = "SERIES"
        q.StudyInstanceUID = series.study_uid
        q.SeriesInstanceUID = series.series_uid
        return q

    @staticmethod
    def _counts(final: Dataset, summary: PullSummary) -> None:
        summary.completed += int(final.get("NumberOfCompletedSuboperations", 0) or 0)
        summary.failed += int(final.get("NumberOfFailedSuboperations", 0) or 0)
        summary.warning += int(final.get("NumberOfWarningSuboperations", 0) or 0)

    def move(self, series: list[Series], destination: str, summary: PullSummary, progress: Callable[[Series], None] = lambda s: None) -> None:
        """C-MOVE each series to ``destination`` (an AE title the PACS knows: normally our SCP)."""
        ae = self._ae()
        ae.add_requested_context(MOVE)
        assoc = self._associate(ae)
        try:
            for s in series:
                final = None
                for status, _ in assoc.send_c_move(self._retrieve_identifier(s), destination, MOVE):
                    final = status
                self._record(final, s, "C-MOVE", summary)
                progress(s)
        finally:
            if assoc.is_established:
                assoc.release()

    def get(self, series: list[Series], store_handler: Callable, summary: PullSummary, progress: Callable[[Series], None] = lambda s: None) -> None:
        """C-GET each series; the PACS's C-STOREs on the same association go to ``store_handler``."""
        ae = self._ae()
        ae.add_requested_context(GET)
        roles = []
        for cls in DOSE_SR_CLASSES + IMAGE_CLASSES:  # we are the Storage SCP on this association
            ae.add_requested_context(cls, list(NATIVE_SYNTAXES + (COMPRESSED_SYNTAXES if cls in IMAGE_CLASSES else ())))
            roles.append(build_role(cls, scp_role=True))
        assoc = self._associate(ae, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, store_handler)])
        try:
            for s in series:
                final = None
                for status, _ in assoc.send_c_get(self._retrieve_identifier(s), GET):
                    final = status
                self._record(final, s, "C-GET", summary)
                progress(s)
        finally:
            if assoc.is_established:
                assoc.release()

    def _record(self, final: Optional[Dataset], s: Series, what: str, summary: PullSummary) -> None:
        try:
            _check_final(final, what)
        except PacsError as err:
            summary.errors.append(f"series {s.series_uid}: {err}")
            log.warning("%s of series %s failed: %s", what, s.series_uid, err)
            if final is None or "Status" not in final or final.Status == MOVE_DESTINATION_UNKNOWN:
                raise  # nothing more can succeed on this association
        if final is not None:
            self._counts(final, summary)


def pull(client: PacsClient, since: date, until: Optional[date] = None, modalities: Iterable[str] = (),
         series_modalities: Iterable[str] = DOSE_SERIES_MODALITIES, method: str = "move", destination: str = "",
         store_handler: Optional[Callable] = None, progress: Optional[Callable[[str, int], object]] = None) -> PullSummary:
    """Find the period's studies, their dose series, and retrieve them; ``progress(stage, n)`` reports counts."""
    summary = PullSummary()
    studies = client.find_studies(since, until, modalities)
    summary.studies = len(studies)
    series = client.find_dose_series([str(s.StudyInstanceUID) for s in studies], series_modalities)
    summary.series = len(series)
    if progress:
        progress("series", len(series))

    def step(s: Series) -> None:
        if progress:
            progress("retrieved", 1)

    if method == "get":
        if store_handler is None:
            raise ValueError("C-GET needs a store handler")
        client.get(series, store_handler, summary, step)
    elif method == "move":
        client.move(series, destination or client.settings.ae_title, summary, step)
    else:
        raise ValueError(f"unknown retrieve method {method!r}")
    return summary
